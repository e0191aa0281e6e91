//go:build !purego

#include "textflag.h"

// Packing of the matrix product's right-hand operand (see Gemm.PackT):
// dst[k·ds + j] = src[j·ld + k] for j < 8, k < 8·k8. Eight source rows (from
// S0, S3, S6, each the base of three rows: base, base+ld, base+2·ld) are
// loaded eight columns at a time into Y0…Y7 (widened on the way for
// fp16/bf16), transposed, and stored as eight panel rows.

#define KC CX
#define C_PTR DI
#define S0 R8
#define S3 R9
#define S6 R10
#define LD DX
#define DS BX
#define D3 R11
#define DS3 R13

// Y0…Y7 rows r0…r7 → Y8…Y15 columns c0…c7 (c_k[j] = r_j[k]).
#define TRANSPOSE8 \
	VUNPCKLPS Y1, Y0, Y8;           /* t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] … */ \
	VUNPCKHPS Y1, Y0, Y9;           /* t1 = r0[2] r1[2] r0[3] r1[3] | r0[6] … */ \
	VUNPCKLPS Y3, Y2, Y10;          /* t2 = rows 2,3 */ \
	VUNPCKHPS Y3, Y2, Y11;          /* t3 */ \
	VUNPCKLPS Y5, Y4, Y12;          /* t4 = rows 4,5 */ \
	VUNPCKHPS Y5, Y4, Y13;          /* t5 */ \
	VUNPCKLPS Y7, Y6, Y14;          /* t6 = rows 6,7 */ \
	VUNPCKHPS Y7, Y6, Y15;          /* t7 */ \
	VSHUFPS $0x44, Y10, Y8, Y0;     /* s0 = r0..3[0] | r0..3[4] */ \
	VSHUFPS $0xEE, Y10, Y8, Y1;     /* s1 = r0..3[1] | r0..3[5] */ \
	VSHUFPS $0x44, Y11, Y9, Y2;     /* s2 = r0..3[2] | r0..3[6] */ \
	VSHUFPS $0xEE, Y11, Y9, Y3;     /* s3 = r0..3[3] | r0..3[7] */ \
	VSHUFPS $0x44, Y14, Y12, Y4;    /* s4 = r4..7[0] | r4..7[4] */ \
	VSHUFPS $0xEE, Y14, Y12, Y5;    /* s5 */ \
	VSHUFPS $0x44, Y15, Y13, Y6;    /* s6 */ \
	VSHUFPS $0xEE, Y15, Y13, Y7;    /* s7 */ \
	VPERM2F128 $0x20, Y4, Y0, Y8;   /* c0 = s0.lo | s4.lo */ \
	VPERM2F128 $0x20, Y5, Y1, Y9;   /* c1 */ \
	VPERM2F128 $0x20, Y6, Y2, Y10;  /* c2 */ \
	VPERM2F128 $0x20, Y7, Y3, Y11;  /* c3 */ \
	VPERM2F128 $0x31, Y4, Y0, Y12;  /* c4 = s0.hi | s4.hi */ \
	VPERM2F128 $0x31, Y5, Y1, Y13;  /* c5 */ \
	VPERM2F128 $0x31, Y6, Y2, Y14;  /* c6 */ \
	VPERM2F128 $0x31, Y7, Y3, Y15   /* c7 */

// Store c0…c7 as panel rows k…k+7 and advance to row k+8.
#define STORE8 \
	VMOVUPS Y8, (C_PTR); \
	VMOVUPS Y9, (C_PTR)(DS*1); \
	VMOVUPS Y10, (C_PTR)(DS*2); \
	LEAQ (C_PTR)(DS3*1), D3; \
	VMOVUPS Y11, (D3); \
	VMOVUPS Y12, (D3)(DS*1); \
	VMOVUPS Y13, (D3)(DS*2); \
	ADDQ DS3, D3; \
	VMOVUPS Y14, (D3); \
	VMOVUPS Y15, (D3)(DS*1); \
	LEAQ (C_PTR)(DS*8), C_PTR

// Shared prologue: strides to bytes (shift = log2 of a source element's bytes), row
// bases, and a zero-trip guard.
#define PACK_SETUP(shift) \
	MOVQ dst+0(FP), C_PTR; \
	MOVQ ds+8(FP), DS; \
	SHLQ $2, DS; \
	LEAQ (DS)(DS*2), DS3; \
	MOVQ src+16(FP), S0; \
	MOVQ ld+24(FP), LD; \
	SHLQ $shift, LD; \
	LEAQ (LD)(LD*2), R12; \
	LEAQ (S0)(R12*1), S3; \
	LEAQ (S3)(R12*1), S6; \
	MOVQ k8+32(FP), KC; \
	TESTQ KC, KC

// func packT8F32AVX2(dst *float32, ds int, src *float32, ld int, k8 int)
TEXT ·packT8F32AVX2(SB), NOSPLIT, $0-40
	PACK_SETUP(2)
	JZ packf32done

packf32:
	VMOVUPS (S0), Y0                // r0 = src[0, k:k+8]
	VMOVUPS (S0)(LD*1), Y1          // r1
	VMOVUPS (S0)(LD*2), Y2          // r2
	VMOVUPS (S3), Y3                // r3
	VMOVUPS (S3)(LD*1), Y4          // r4
	VMOVUPS (S3)(LD*2), Y5          // r5
	VMOVUPS (S6), Y6                // r6
	VMOVUPS (S6)(LD*1), Y7          // r7
	TRANSPOSE8
	STORE8
	ADDQ $32, S0                    // k += 8
	ADDQ $32, S3
	ADDQ $32, S6
	DECQ KC
	JNZ packf32

packf32done:
	VZEROUPPER
	RET

// func packT8F16AVX2(dst *float32, ds int, src *uint16, ld int, k8 int)
TEXT ·packT8F16AVX2(SB), NOSPLIT, $0-40
	PACK_SETUP(1)
	JZ packf16done

packf16:
	VCVTPH2PS (S0), Y0              // r0 = float32(src[0, k:k+8])
	VCVTPH2PS (S0)(LD*1), Y1
	VCVTPH2PS (S0)(LD*2), Y2
	VCVTPH2PS (S3), Y3
	VCVTPH2PS (S3)(LD*1), Y4
	VCVTPH2PS (S3)(LD*2), Y5
	VCVTPH2PS (S6), Y6
	VCVTPH2PS (S6)(LD*1), Y7
	TRANSPOSE8
	STORE8
	ADDQ $16, S0                    // k += 8
	ADDQ $16, S3
	ADDQ $16, S6
	DECQ KC
	JNZ packf16

packf16done:
	VZEROUPPER
	RET

// func packT8BF16AVX2(dst *float32, ds int, src *uint16, ld int, k8 int)
TEXT ·packT8BF16AVX2(SB), NOSPLIT, $0-40
	PACK_SETUP(1)
	JZ packbf16done

packbf16:
	VPMOVZXWD (S0), Y0              // r0 = uint32(src[0, k:k+8])
	VPMOVZXWD (S0)(LD*1), Y1
	VPMOVZXWD (S0)(LD*2), Y2
	VPMOVZXWD (S3), Y3
	VPMOVZXWD (S3)(LD*1), Y4
	VPMOVZXWD (S3)(LD*2), Y5
	VPMOVZXWD (S6), Y6
	VPMOVZXWD (S6)(LD*1), Y7
	VPSLLD $16, Y0, Y0              // << 16: float32 bits
	VPSLLD $16, Y1, Y1
	VPSLLD $16, Y2, Y2
	VPSLLD $16, Y3, Y3
	VPSLLD $16, Y4, Y4
	VPSLLD $16, Y5, Y5
	VPSLLD $16, Y6, Y6
	VPSLLD $16, Y7, Y7
	TRANSPOSE8
	STORE8
	ADDQ $16, S0                    // k += 8
	ADDQ $16, S3
	ADDQ $16, S6
	DECQ KC
	JNZ packbf16

packbf16done:
	VZEROUPPER
	RET
