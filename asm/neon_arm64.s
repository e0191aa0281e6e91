//go:build !purego

#include "textflag.h"

// NEON kernels for arm64. Lengths are multiples of the vector steps; the Go
// wrappers in impl_arm64.go do the tails. The Go assembler has no vector
// FADD, FADDP or FCVTL: those are WORD encodings, each commented with its
// instruction.

// func tile6x16NEON(kc int, a *float32, lda int, b *float32, c *float32, ldc int, alpha float32, load bool)
//
//	c[i·ldc + j] = alpha·Σ_{k<kc} a[i·lda + k]·b[k·16 + j]  (+ c[i·ldc + j] if load)
//
// Accumulators V0…V23 (row i in V4i…V4i+3); the panel row in V24…V27; a[i,k]
// broadcast by LD1R into V28/V29; alpha in V30. R1…R6 walk the six rows of a.
TEXT ·tile6x16NEON(SB), NOSPLIT, $0-53
	MOVD kc+0(FP), R0
	MOVD a+8(FP), R1
	MOVD lda+16(FP), R7
	LSL $2, R7, R7                 // lda in bytes
	ADD R7, R1, R2                 // a row 1
	ADD R7, R2, R3                 // a row 2
	ADD R7, R3, R4
	ADD R7, R4, R5
	ADD R7, R5, R6                 // a row 5
	MOVD b+24(FP), R8
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	VEOR V6.B16, V6.B16, V6.B16
	VEOR V7.B16, V7.B16, V7.B16
	VEOR V8.B16, V8.B16, V8.B16
	VEOR V9.B16, V9.B16, V9.B16
	VEOR V10.B16, V10.B16, V10.B16
	VEOR V11.B16, V11.B16, V11.B16
	VEOR V12.B16, V12.B16, V12.B16
	VEOR V13.B16, V13.B16, V13.B16
	VEOR V14.B16, V14.B16, V14.B16
	VEOR V15.B16, V15.B16, V15.B16
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16
	VEOR V20.B16, V20.B16, V20.B16
	VEOR V21.B16, V21.B16, V21.B16
	VEOR V22.B16, V22.B16, V22.B16
	VEOR V23.B16, V23.B16, V23.B16

tileloop:
	VLD1.P 64(R8), [V24.S4, V25.S4, V26.S4, V27.S4] // b[k, 0:16]
	VLD1R.P 4(R1), [V28.S4]       // a[0, k] in every lane
	VFMLA V28.S4, V24.S4, V0.S4     // acc[0] += a[0,k]·b[k]
	VFMLA V28.S4, V25.S4, V1.S4
	VFMLA V28.S4, V26.S4, V2.S4
	VFMLA V28.S4, V27.S4, V3.S4
	VLD1R.P 4(R2), [V29.S4]       // a[1, k] in every lane
	VFMLA V29.S4, V24.S4, V4.S4     // acc[1] += a[1,k]·b[k]
	VFMLA V29.S4, V25.S4, V5.S4
	VFMLA V29.S4, V26.S4, V6.S4
	VFMLA V29.S4, V27.S4, V7.S4
	VLD1R.P 4(R3), [V28.S4]       // a[2, k] in every lane
	VFMLA V28.S4, V24.S4, V8.S4     // acc[2] += a[2,k]·b[k]
	VFMLA V28.S4, V25.S4, V9.S4
	VFMLA V28.S4, V26.S4, V10.S4
	VFMLA V28.S4, V27.S4, V11.S4
	VLD1R.P 4(R4), [V29.S4]       // a[3, k] in every lane
	VFMLA V29.S4, V24.S4, V12.S4     // acc[3] += a[3,k]·b[k]
	VFMLA V29.S4, V25.S4, V13.S4
	VFMLA V29.S4, V26.S4, V14.S4
	VFMLA V29.S4, V27.S4, V15.S4
	VLD1R.P 4(R5), [V28.S4]       // a[4, k] in every lane
	VFMLA V28.S4, V24.S4, V16.S4     // acc[4] += a[4,k]·b[k]
	VFMLA V28.S4, V25.S4, V17.S4
	VFMLA V28.S4, V26.S4, V18.S4
	VFMLA V28.S4, V27.S4, V19.S4
	VLD1R.P 4(R6), [V29.S4]       // a[5, k] in every lane
	VFMLA V29.S4, V24.S4, V20.S4     // acc[5] += a[5,k]·b[k]
	VFMLA V29.S4, V25.S4, V21.S4
	VFMLA V29.S4, V26.S4, V22.S4
	VFMLA V29.S4, V27.S4, V23.S4
	SUBS $1, R0, R0                // k++
	BNE tileloop

	MOVD c+32(FP), R9
	MOVD ldc+40(FP), R10
	LSL $2, R10, R10               // ldc in bytes
	MOVD $alpha+48(FP), R11
	VLD1R (R11), [V30.S4]          // alpha in every lane
	MOVBU load+52(FP), R12
	CBZ R12, tileset
	VLD1 (R9), [V24.S4, V25.S4, V26.S4, V27.S4]       // c row 0
	VFMLA V30.S4, V0.S4, V24.S4                   // c += alpha·acc[0]
	VFMLA V30.S4, V1.S4, V25.S4
	VFMLA V30.S4, V2.S4, V26.S4
	VFMLA V30.S4, V3.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10) // next row
	VLD1 (R9), [V24.S4, V25.S4, V26.S4, V27.S4]       // c row 1
	VFMLA V30.S4, V4.S4, V24.S4                   // c += alpha·acc[1]
	VFMLA V30.S4, V5.S4, V25.S4
	VFMLA V30.S4, V6.S4, V26.S4
	VFMLA V30.S4, V7.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10) // next row
	VLD1 (R9), [V24.S4, V25.S4, V26.S4, V27.S4]       // c row 2
	VFMLA V30.S4, V8.S4, V24.S4                   // c += alpha·acc[2]
	VFMLA V30.S4, V9.S4, V25.S4
	VFMLA V30.S4, V10.S4, V26.S4
	VFMLA V30.S4, V11.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10) // next row
	VLD1 (R9), [V24.S4, V25.S4, V26.S4, V27.S4]       // c row 3
	VFMLA V30.S4, V12.S4, V24.S4                   // c += alpha·acc[3]
	VFMLA V30.S4, V13.S4, V25.S4
	VFMLA V30.S4, V14.S4, V26.S4
	VFMLA V30.S4, V15.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10) // next row
	VLD1 (R9), [V24.S4, V25.S4, V26.S4, V27.S4]       // c row 4
	VFMLA V30.S4, V16.S4, V24.S4                   // c += alpha·acc[4]
	VFMLA V30.S4, V17.S4, V25.S4
	VFMLA V30.S4, V18.S4, V26.S4
	VFMLA V30.S4, V19.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10) // next row
	VLD1 (R9), [V24.S4, V25.S4, V26.S4, V27.S4]       // c row 5
	VFMLA V30.S4, V20.S4, V24.S4                   // c += alpha·acc[5]
	VFMLA V30.S4, V21.S4, V25.S4
	VFMLA V30.S4, V22.S4, V26.S4
	VFMLA V30.S4, V23.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10) // next row
	RET

tileset:
	VEOR V24.B16, V24.B16, V24.B16                   // c row 0 = 0 + alpha·acc[0]
	VEOR V25.B16, V25.B16, V25.B16
	VEOR V26.B16, V26.B16, V26.B16
	VEOR V27.B16, V27.B16, V27.B16
	VFMLA V30.S4, V0.S4, V24.S4
	VFMLA V30.S4, V1.S4, V25.S4
	VFMLA V30.S4, V2.S4, V26.S4
	VFMLA V30.S4, V3.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10)
	VEOR V24.B16, V24.B16, V24.B16                   // c row 1 = 0 + alpha·acc[1]
	VEOR V25.B16, V25.B16, V25.B16
	VEOR V26.B16, V26.B16, V26.B16
	VEOR V27.B16, V27.B16, V27.B16
	VFMLA V30.S4, V4.S4, V24.S4
	VFMLA V30.S4, V5.S4, V25.S4
	VFMLA V30.S4, V6.S4, V26.S4
	VFMLA V30.S4, V7.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10)
	VEOR V24.B16, V24.B16, V24.B16                   // c row 2 = 0 + alpha·acc[2]
	VEOR V25.B16, V25.B16, V25.B16
	VEOR V26.B16, V26.B16, V26.B16
	VEOR V27.B16, V27.B16, V27.B16
	VFMLA V30.S4, V8.S4, V24.S4
	VFMLA V30.S4, V9.S4, V25.S4
	VFMLA V30.S4, V10.S4, V26.S4
	VFMLA V30.S4, V11.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10)
	VEOR V24.B16, V24.B16, V24.B16                   // c row 3 = 0 + alpha·acc[3]
	VEOR V25.B16, V25.B16, V25.B16
	VEOR V26.B16, V26.B16, V26.B16
	VEOR V27.B16, V27.B16, V27.B16
	VFMLA V30.S4, V12.S4, V24.S4
	VFMLA V30.S4, V13.S4, V25.S4
	VFMLA V30.S4, V14.S4, V26.S4
	VFMLA V30.S4, V15.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10)
	VEOR V24.B16, V24.B16, V24.B16                   // c row 4 = 0 + alpha·acc[4]
	VEOR V25.B16, V25.B16, V25.B16
	VEOR V26.B16, V26.B16, V26.B16
	VEOR V27.B16, V27.B16, V27.B16
	VFMLA V30.S4, V16.S4, V24.S4
	VFMLA V30.S4, V17.S4, V25.S4
	VFMLA V30.S4, V18.S4, V26.S4
	VFMLA V30.S4, V19.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10)
	VEOR V24.B16, V24.B16, V24.B16                   // c row 5 = 0 + alpha·acc[5]
	VEOR V25.B16, V25.B16, V25.B16
	VEOR V26.B16, V26.B16, V26.B16
	VEOR V27.B16, V27.B16, V27.B16
	VFMLA V30.S4, V20.S4, V24.S4
	VFMLA V30.S4, V21.S4, V25.S4
	VFMLA V30.S4, V22.S4, V26.S4
	VFMLA V30.S4, V23.S4, V27.S4
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], (R9)(R10)
	RET

// func dotNEON(x, y *float32, n int) float32
TEXT ·dotNEON(SB), NOSPLIT, $0-28
	MOVD x+0(FP), R0
	MOVD y+8(FP), R1
	MOVD n+16(FP), R2
	VEOR V0.B16, V0.B16, V0.B16    // four accumulators
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16

dotloop:
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]     // x[i:i+16]
	VLD1.P 64(R1), [V8.S4, V9.S4, V10.S4, V11.S4]   // y[i:i+16]
	VFMLA V8.S4, V4.S4, V0.S4      // s0 += x·y
	VFMLA V9.S4, V5.S4, V1.S4      // s1 += x·y
	VFMLA V10.S4, V6.S4, V2.S4     // s2 += x·y
	VFMLA V11.S4, V7.S4, V3.S4     // s3 += x·y
	SUBS $16, R2, R2               // i += 16
	BNE dotloop

	WORD $0x4e21d400               // FADD V0.4S, V0.4S, V1.4S: s0 += s1
	WORD $0x4e23d442               // FADD V2.4S, V2.4S, V3.4S: s2 += s3
	WORD $0x4e22d400               // FADD V0.4S, V0.4S, V2.4S: s0 += s2
	WORD $0x6e20d400               // FADDP V0.4S, V0.4S, V0.4S: pairwise sums
	WORD $0x7e30d800               // FADDP S0, V0.2S: the sum
	FMOVS F0, ret+24(FP)
	RET

// func axpyNEON(a float32, x, y *float32, n int)
TEXT ·axpyNEON(SB), NOSPLIT, $0-32
	MOVD $a+0(FP), R3
	VLD1R (R3), [V16.S4]           // a in every lane
	MOVD x+8(FP), R0
	MOVD y+16(FP), R1
	MOVD n+24(FP), R2

axpyloop:
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]     // x[i:i+16]
	VLD1 (R1), [V4.S4, V5.S4, V6.S4, V7.S4]         // y[i:i+16]
	VFMLA V16.S4, V0.S4, V4.S4     // y += a·x
	VFMLA V16.S4, V1.S4, V5.S4
	VFMLA V16.S4, V2.S4, V6.S4
	VFMLA V16.S4, V3.S4, V7.S4
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R1)
	SUBS $16, R2, R2
	BNE axpyloop
	RET

// func widenF16NEON(dst *float32, src *uint16, n int)
TEXT ·widenF16NEON(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2

widenloop:
	VLD1.P 16(R1), [V0.H8]         // src[i:i+8]
	WORD $0x0e217801               // FCVTL V1.4S, V0.4H: low four to float32
	WORD $0x4e217802               // FCVTL2 V2.4S, V0.8H: high four
	VST1.P [V1.S4, V2.S4], 32(R0)  // dst[i:i+8]
	SUBS $8, R2, R2
	BNE widenloop
	RET
