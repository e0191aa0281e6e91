//go:build !purego

#include "textflag.h"

// Register-tile micro-kernels of the matrix product (see Gemm.Tile):
//
//	c[i·ldc + j] = alpha·Σ_{k<kc} a[i·lda + k]·b[k·NR + j]  (+ c[i·ldc + j] if load)
//
// The rows of a are read in place (stride lda); b is a packed panel. Rows of
// a are addressed from one base per three rows: base, base+lda, base+2·lda.

#define KC CX
#define A0 R8
#define A3 R9
#define A6 R10
#define A9 R11
#define LDA DX
#define B_PTR SI
#define C_PTR DI
#define LDC BX

// ---------------------------------------------------------------- AVX2 6×16
// Accumulators Y0…Y11 (row i in Y(2i), Y(2i+1)); panel row in Y12, Y13;
// broadcasts of a alternate between Y14 and Y15.

#define ROW2(addr, bc, lo, hi) \
	VBROADCASTSS addr, bc; \
	VFMADD231PS bc, Y12, lo; \
	VFMADD231PS bc, Y13, hi

// c[0:16] = alpha·(lo, hi) + c[0:16], then next row.
#define ACC2(lo, hi) \
	VFMADD213PS (C_PTR), Y14, lo; \
	VFMADD213PS 32(C_PTR), Y14, hi; \
	VMOVUPS lo, (C_PTR); \
	VMOVUPS hi, 32(C_PTR); \
	ADDQ LDC, C_PTR

// c[0:16] = alpha·(lo, hi), then next row.
#define SET2(lo, hi) \
	VMULPS Y14, lo, lo; \
	VMULPS Y14, hi, hi; \
	VMOVUPS lo, (C_PTR); \
	VMOVUPS hi, 32(C_PTR); \
	ADDQ LDC, C_PTR

// func tile6x16AVX2(kc int, a *float32, lda int, b *float32, c *float32, ldc int, alpha float32, load bool)
TEXT ·tile6x16AVX2(SB), NOSPLIT, $0-53
	MOVQ kc+0(FP), KC
	MOVQ a+8(FP), A0
	MOVQ lda+16(FP), LDA
	SHLQ $2, LDA                    // lda in bytes
	LEAQ (LDA)(LDA*2), A3
	ADDQ A0, A3                     // a row 3
	MOVQ b+24(FP), B_PTR
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

loop6x16:
	VMOVUPS (B_PTR), Y12            // b[k, 0:8]
	VMOVUPS 32(B_PTR), Y13          // b[k, 8:16]
	ROW2((A0), Y14, Y0, Y1)         // acc[0] += a[0,k]·b[k]
	ROW2((A0)(LDA*1), Y15, Y2, Y3)  // acc[1] += a[1,k]·b[k]
	ROW2((A0)(LDA*2), Y14, Y4, Y5)  // acc[2] += a[2,k]·b[k]
	ROW2((A3), Y15, Y6, Y7)         // acc[3] += a[3,k]·b[k]
	ROW2((A3)(LDA*1), Y14, Y8, Y9)  // acc[4] += a[4,k]·b[k]
	ROW2((A3)(LDA*2), Y15, Y10, Y11) // acc[5] += a[5,k]·b[k]
	ADDQ $64, B_PTR                 // next panel row
	ADDQ $4, A0                     // k++
	ADDQ $4, A3
	DECQ KC
	JNZ loop6x16

	MOVQ c+32(FP), C_PTR
	MOVQ ldc+40(FP), LDC
	SHLQ $2, LDC                    // ldc in bytes
	VBROADCASTSS alpha+48(FP), Y14
	CMPB load+52(FP), $0
	JEQ set6x16
	ACC2(Y0, Y1)
	ACC2(Y2, Y3)
	ACC2(Y4, Y5)
	ACC2(Y6, Y7)
	ACC2(Y8, Y9)
	ACC2(Y10, Y11)
	VZEROUPPER
	RET

set6x16:
	SET2(Y0, Y1)
	SET2(Y2, Y3)
	SET2(Y4, Y5)
	SET2(Y6, Y7)
	SET2(Y8, Y9)
	SET2(Y10, Y11)
	VZEROUPPER
	RET

// ------------------------------------------------------------ AVX-512 12×32
// Accumulators Z0…Z23 (row i in Z(2i), Z(2i+1)); panel row in Z24, Z25;
// broadcasts of a rotate through Z26…Z31.

#define ZROW2(addr, bc, lo, hi) \
	VBROADCASTSS addr, bc; \
	VFMADD231PS bc, Z24, lo; \
	VFMADD231PS bc, Z25, hi

// ZSTEP(ao, bo): one k of the 12×32 tile, a at byte offset ao from the row
// bases, the panel row at byte offset bo.
#define ZSTEP(ao, bo) \
	VMOVUPS bo(B_PTR), Z24; \
	VMOVUPS (bo+64)(B_PTR), Z25; \
	ZROW2(ao(A0), Z26, Z0, Z1); \
	ZROW2(ao(A0)(LDA*1), Z27, Z2, Z3); \
	ZROW2(ao(A0)(LDA*2), Z28, Z4, Z5); \
	ZROW2(ao(A3), Z29, Z6, Z7); \
	ZROW2(ao(A3)(LDA*1), Z30, Z8, Z9); \
	ZROW2(ao(A3)(LDA*2), Z31, Z10, Z11); \
	ZROW2(ao(A6), Z26, Z12, Z13); \
	ZROW2(ao(A6)(LDA*1), Z27, Z14, Z15); \
	ZROW2(ao(A6)(LDA*2), Z28, Z16, Z17); \
	ZROW2(ao(A9), Z29, Z18, Z19); \
	ZROW2(ao(A9)(LDA*1), Z30, Z20, Z21); \
	ZROW2(ao(A9)(LDA*2), Z31, Z22, Z23)

#define ZACC2(lo, hi) \
	VFMADD213PS (C_PTR), Z26, lo; \
	VFMADD213PS 64(C_PTR), Z26, hi; \
	VMOVUPS lo, (C_PTR); \
	VMOVUPS hi, 64(C_PTR); \
	ADDQ LDC, C_PTR

#define ZSET2(lo, hi) \
	VMULPS Z26, lo, lo; \
	VMULPS Z26, hi, hi; \
	VMOVUPS lo, (C_PTR); \
	VMOVUPS hi, 64(C_PTR); \
	ADDQ LDC, C_PTR

// func tile12x32AVX512(kc int, a *float32, lda int, b *float32, c *float32, ldc int, alpha float32, load bool)
TEXT ·tile12x32AVX512(SB), NOSPLIT, $0-53
	MOVQ kc+0(FP), KC
	MOVQ a+8(FP), A0
	MOVQ lda+16(FP), LDA
	SHLQ $2, LDA                    // lda in bytes
	LEAQ (LDA)(LDA*2), R12          // 3·lda
	LEAQ (A0)(R12*1), A3            // a row 3
	LEAQ (A3)(R12*1), A6            // a row 6
	LEAQ (A6)(R12*1), A9            // a row 9
	MOVQ b+24(FP), B_PTR
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

	MOVQ KC, R13
	SHRQ $2, R13                    // kc/4 steps of four
	JZ tail12x32

loop12x32:
	ZSTEP(0, 0)
	ZSTEP(4, 128)
	ZSTEP(8, 256)
	ZSTEP(12, 384)
	ADDQ $512, B_PTR                // four panel rows on
	ADDQ $16, A0                    // k += 4
	ADDQ $16, A3
	ADDQ $16, A6
	ADDQ $16, A9
	DECQ R13
	JNZ loop12x32

tail12x32:
	ANDQ $3, KC                     // the last kc%4 steps
	JZ store12x32

onek12x32:
	ZSTEP(0, 0)
	ADDQ $128, B_PTR
	ADDQ $4, A0
	ADDQ $4, A3
	ADDQ $4, A6
	ADDQ $4, A9
	DECQ KC
	JNZ onek12x32

store12x32:
	MOVQ c+32(FP), C_PTR
	MOVQ ldc+40(FP), LDC
	SHLQ $2, LDC                    // ldc in bytes
	VBROADCASTSS alpha+48(FP), Z26
	CMPB load+52(FP), $0
	JEQ set12x32
	ZACC2(Z0, Z1)
	ZACC2(Z2, Z3)
	ZACC2(Z4, Z5)
	ZACC2(Z6, Z7)
	ZACC2(Z8, Z9)
	ZACC2(Z10, Z11)
	ZACC2(Z12, Z13)
	ZACC2(Z14, Z15)
	ZACC2(Z16, Z17)
	ZACC2(Z18, Z19)
	ZACC2(Z20, Z21)
	ZACC2(Z22, Z23)
	VZEROUPPER
	RET

set12x32:
	ZSET2(Z0, Z1)
	ZSET2(Z2, Z3)
	ZSET2(Z4, Z5)
	ZSET2(Z6, Z7)
	ZSET2(Z8, Z9)
	ZSET2(Z10, Z11)
	ZSET2(Z12, Z13)
	ZSET2(Z14, Z15)
	ZSET2(Z16, Z17)
	ZSET2(Z18, Z19)
	ZSET2(Z20, Z21)
	ZSET2(Z22, Z23)
	VZEROUPPER
	RET

// func tile4x32AVX512(kc int, a *float32, lda int, b *float32, c *float32, ldc int, alpha float32, load bool)
// The first four rows of the 12×32 tile, for the last rows of a matrix: eight
// accumulators are still enough to keep both FMA pipes busy.
TEXT ·tile4x32AVX512(SB), NOSPLIT, $0-53
	MOVQ kc+0(FP), KC
	MOVQ a+8(FP), A0
	MOVQ lda+16(FP), LDA
	SHLQ $2, LDA                    // lda in bytes
	LEAQ (LDA)(LDA*2), R12
	LEAQ (A0)(R12*1), A3            // a row 3
	MOVQ b+24(FP), B_PTR
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7

loop4x32:
	VMOVUPS (B_PTR), Z24            // b[k, 0:16]
	VMOVUPS 64(B_PTR), Z25          // b[k, 16:32]
	ZROW2((A0), Z26, Z0, Z1)        // acc[0] += a[0,k]·b[k]
	ZROW2((A0)(LDA*1), Z27, Z2, Z3) // acc[1]
	ZROW2((A0)(LDA*2), Z28, Z4, Z5) // acc[2]
	ZROW2((A3), Z29, Z6, Z7)        // acc[3]
	ADDQ $128, B_PTR
	ADDQ $4, A0
	ADDQ $4, A3
	DECQ KC
	JNZ loop4x32

	MOVQ c+32(FP), C_PTR
	MOVQ ldc+40(FP), LDC
	SHLQ $2, LDC
	VBROADCASTSS alpha+48(FP), Z26
	CMPB load+52(FP), $0
	JEQ set4x32
	ZACC2(Z0, Z1)
	ZACC2(Z2, Z3)
	ZACC2(Z4, Z5)
	ZACC2(Z6, Z7)
	VZEROUPPER
	RET

set4x32:
	ZSET2(Z0, Z1)
	ZSET2(Z2, Z3)
	ZSET2(Z4, Z5)
	ZSET2(Z6, Z7)
	VZEROUPPER
	RET
