//go:build !purego

#include "textflag.h"

// Exp32 in four float64 lanes, for softmax and the sigmoid-gated activations
// (AVX2 + FMA). It is Exp32's rule: clamp, x = k·ln2 + r (ln2 in two parts),
// the degree-7 Taylor polynomial of e^r by Horner, times 2^k built from bits.
// Rounding to nearest instead of floor(·+0.5) for k and FMAs instead of
// separate roundings change nothing a float32 result can see, except rarely
// its last bit. Inputs are converted from float32 and results back.

// −110: below it exp rounds to fp32 0
DATA expLo<>+0(SB)/8, $0xc05b800000000000
DATA expLo<>+8(SB)/8, $0xc05b800000000000
DATA expLo<>+16(SB)/8, $0xc05b800000000000
DATA expLo<>+24(SB)/8, $0xc05b800000000000
GLOBL expLo<>(SB), RODATA|NOPTR, $32
// 100: above it exp is fp32 +Inf
DATA expHi<>+0(SB)/8, $0x4059000000000000
DATA expHi<>+8(SB)/8, $0x4059000000000000
DATA expHi<>+16(SB)/8, $0x4059000000000000
DATA expHi<>+24(SB)/8, $0x4059000000000000
GLOBL expHi<>(SB), RODATA|NOPTR, $32
// log2(e)
DATA expLog2e<>+0(SB)/8, $0x3ff71547652b82fe
DATA expLog2e<>+8(SB)/8, $0x3ff71547652b82fe
DATA expLog2e<>+16(SB)/8, $0x3ff71547652b82fe
DATA expLog2e<>+24(SB)/8, $0x3ff71547652b82fe
GLOBL expLog2e<>(SB), RODATA|NOPTR, $32
// ln2, high part
DATA expLn2hi<>+0(SB)/8, $0x3fe62e42fee00000
DATA expLn2hi<>+8(SB)/8, $0x3fe62e42fee00000
DATA expLn2hi<>+16(SB)/8, $0x3fe62e42fee00000
DATA expLn2hi<>+24(SB)/8, $0x3fe62e42fee00000
GLOBL expLn2hi<>(SB), RODATA|NOPTR, $32
// ln2, low part
DATA expLn2lo<>+0(SB)/8, $0x3dea39ef35793c76
DATA expLn2lo<>+8(SB)/8, $0x3dea39ef35793c76
DATA expLn2lo<>+16(SB)/8, $0x3dea39ef35793c76
DATA expLn2lo<>+24(SB)/8, $0x3dea39ef35793c76
GLOBL expLn2lo<>(SB), RODATA|NOPTR, $32
// 1/5040
DATA expC7<>+0(SB)/8, $0x3f2a01a01a01a01a
DATA expC7<>+8(SB)/8, $0x3f2a01a01a01a01a
DATA expC7<>+16(SB)/8, $0x3f2a01a01a01a01a
DATA expC7<>+24(SB)/8, $0x3f2a01a01a01a01a
GLOBL expC7<>(SB), RODATA|NOPTR, $32
// 1/720
DATA expC6<>+0(SB)/8, $0x3f56c16c16c16c17
DATA expC6<>+8(SB)/8, $0x3f56c16c16c16c17
DATA expC6<>+16(SB)/8, $0x3f56c16c16c16c17
DATA expC6<>+24(SB)/8, $0x3f56c16c16c16c17
GLOBL expC6<>(SB), RODATA|NOPTR, $32
// 1/120
DATA expC5<>+0(SB)/8, $0x3f81111111111111
DATA expC5<>+8(SB)/8, $0x3f81111111111111
DATA expC5<>+16(SB)/8, $0x3f81111111111111
DATA expC5<>+24(SB)/8, $0x3f81111111111111
GLOBL expC5<>(SB), RODATA|NOPTR, $32
// 1/24
DATA expC4<>+0(SB)/8, $0x3fa5555555555555
DATA expC4<>+8(SB)/8, $0x3fa5555555555555
DATA expC4<>+16(SB)/8, $0x3fa5555555555555
DATA expC4<>+24(SB)/8, $0x3fa5555555555555
GLOBL expC4<>(SB), RODATA|NOPTR, $32
// 1/6
DATA expC3<>+0(SB)/8, $0x3fc5555555555555
DATA expC3<>+8(SB)/8, $0x3fc5555555555555
DATA expC3<>+16(SB)/8, $0x3fc5555555555555
DATA expC3<>+24(SB)/8, $0x3fc5555555555555
GLOBL expC3<>(SB), RODATA|NOPTR, $32
// 1/2
DATA expC2<>+0(SB)/8, $0x3fe0000000000000
DATA expC2<>+8(SB)/8, $0x3fe0000000000000
DATA expC2<>+16(SB)/8, $0x3fe0000000000000
DATA expC2<>+24(SB)/8, $0x3fe0000000000000
GLOBL expC2<>(SB), RODATA|NOPTR, $32
// 1
DATA expOne<>+0(SB)/8, $0x3ff0000000000000
DATA expOne<>+8(SB)/8, $0x3ff0000000000000
DATA expOne<>+16(SB)/8, $0x3ff0000000000000
DATA expOne<>+24(SB)/8, $0x3ff0000000000000
GLOBL expOne<>(SB), RODATA|NOPTR, $32
// 1.5·2^52: adding it puts an integer k in the low bits
DATA expMagic<>+0(SB)/8, $0x4338000000000000
DATA expMagic<>+8(SB)/8, $0x4338000000000000
DATA expMagic<>+16(SB)/8, $0x4338000000000000
DATA expMagic<>+24(SB)/8, $0x4338000000000000
GLOBL expMagic<>(SB), RODATA|NOPTR, $32
// 1023 − bits(1.5·2^52): turns those bits into k+1023
DATA expBias<>+0(SB)/8, $0xbcc80000000003ff
DATA expBias<>+8(SB)/8, $0xbcc80000000003ff
DATA expBias<>+16(SB)/8, $0xbcc80000000003ff
DATA expBias<>+24(SB)/8, $0xbcc80000000003ff
GLOBL expBias<>(SB), RODATA|NOPTR, $32
// 1.0 as float32
DATA oneF32<>+0(SB)/4, $0x3f800000
DATA oneF32<>+4(SB)/4, $0x3f800000
DATA oneF32<>+8(SB)/4, $0x3f800000
DATA oneF32<>+12(SB)/4, $0x3f800000
DATA oneF32<>+16(SB)/4, $0x3f800000
DATA oneF32<>+20(SB)/4, $0x3f800000
DATA oneF32<>+24(SB)/4, $0x3f800000
DATA oneF32<>+28(SB)/4, $0x3f800000
GLOBL oneF32<>(SB), RODATA|NOPTR, $32

// EXP4(x, k, p): x = exp(x) in 4 float64 lanes; k, p are scratch. Needs
// Y15 = expLo, Y14 = expHi. A NaN stays a NaN (it is the operand MAXPD and
// MINPD return when one is NaN).
#define EXP4(x, k, p) \
	VMAXPD x, Y15, x;                  /* x = max(−110, x) */ \
	VMINPD x, Y14, x;                  /* x = min(100, x) */ \
	VMULPD expLog2e<>(SB), x, k;       /* x·log2e */ \
	VROUNDPD $0, k, k;                 /* k = nearest integer */ \
	VFNMADD231PD expLn2hi<>(SB), k, x; /* r = x − k·ln2hi */ \
	VFNMADD231PD expLn2lo<>(SB), k, x; /* r −= k·ln2lo */ \
	VMOVUPD expC7<>(SB), p;            /* p = 1/5040 */ \
	VFMADD213PD expC6<>(SB), x, p;     /* p = p·r + 1/720 */ \
	VFMADD213PD expC5<>(SB), x, p;     /* p = p·r + 1/120 */ \
	VFMADD213PD expC4<>(SB), x, p;     /* p = p·r + 1/24 */ \
	VFMADD213PD expC3<>(SB), x, p;     /* p = p·r + 1/6 */ \
	VFMADD213PD expC2<>(SB), x, p;     /* p = p·r + 1/2 */ \
	VFMADD213PD expOne<>(SB), x, p;    /* p = p·r + 1 */ \
	VFMADD213PD expOne<>(SB), x, p;    /* p = p·r + 1 */ \
	VADDPD expMagic<>(SB), k, k;       /* k in the low bits */ \
	VPADDQ expBias<>(SB), k, k;        /* k + 1023 */ \
	VPSLLQ $52, k, k;                  /* 2^k */ \
	VMULPD k, p, x                     /* p·2^k */

// EXP8(v, vx, lo, lox, hi, hix, k0, p0, k1, p1): v = float32(exp(v)) for 8
// float32 lanes; vx, lox, hix are the xmm halves of v, lo, hi.
#define EXP8(v, vx, lo, lox, hi, hix, k0, p0, k1, p1) \
	VCVTPS2PD vx, lo;                  /* low four to float64 */ \
	VEXTRACTF128 $1, v, hix; \
	VCVTPS2PD hix, hi;                 /* high four */ \
	EXP4(lo, k0, p0); \
	EXP4(hi, k1, p1); \
	VCVTPD2PSY lo, lox;                /* back to float32 */ \
	VCVTPD2PSY hi, hix; \
	VINSERTF128 $1, hix, lo, v

#define EXP_SETUP \
	VMOVUPD expLo<>(SB), Y15; \
	VMOVUPD expHi<>(SB), Y14

// func expSumAVX2(x *float32, n int, m float32) float32
// for i < n: x[i] = Exp32(x[i] − m); returns Σ x[i]. n is a multiple of 8.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y13         // m
	EXP_SETUP
	VXORPS Y12, Y12, Y12               // sum
	XORQ AX, AX

expsum:
	CMPQ AX, CX
	JAE expsumdone
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS Y13, Y0, Y0                 // v − m, in float32
	EXP8(Y0, X0, Y1, X1, Y2, X2, Y3, Y4, Y5, Y6)
	VMOVUPS Y0, (SI)(AX*4)
	VADDPS Y0, Y12, Y12                // sum += e
	ADDQ $8, AX
	JMP expsum

expsumdone:
	VEXTRACTF128 $1, Y12, X0
	VADDPS X0, X12, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func xSigmoidAVX2(dst, x *float32, n int, a float32)
// for i < n: dst[i] = x[i] / (1 + Exp32(−a·x[i])). n is a multiple of 8.
TEXT ·xSigmoidAVX2(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y13
	VXORPS Y12, Y12, Y12
	VSUBPS Y13, Y12, Y13               // −a
	VMOVUPS oneF32<>(SB), Y12          // 1
	EXP_SETUP
	XORQ AX, AX

xsig:
	CMPQ AX, CX
	JAE xsigdone
	VMOVUPS (SI)(AX*4), Y7             // x
	VMULPS Y13, Y7, Y0                 // −a·x, in float32
	EXP8(Y0, X0, Y1, X1, Y2, X2, Y3, Y4, Y5, Y6)
	VADDPS Y12, Y0, Y0                 // 1 + e
	VDIVPS Y0, Y7, Y0                  // x / (1 + e)
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	JMP xsig

xsigdone:
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
// max over x[:n]; n is a positive multiple of 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
	MOVQ $8, AX

maxloop:
	CMPQ AX, CX
	JAE maxdone
	VMAXPS (SI)(AX*4), Y0, Y0
	ADDQ $8, AX
	JMP maxloop

maxdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1            // swap 64-bit halves
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1            // swap neighbours
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func scaleAVX2(x *float32, n int, s float32)
// for i < n: x[i] *= s. n is a multiple of 8.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1
	XORQ AX, AX

scaleloop:
	CMPQ AX, CX
	JAE scaledone
	VMULPS (SI)(AX*4), Y1, Y0
	VMOVUPS Y0, (SI)(AX*4)
	ADDQ $8, AX
	JMP scaleloop

scaledone:
	VZEROUPPER
	RET
