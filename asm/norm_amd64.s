//go:build !purego

#include "textflag.h"

// The parts of LayerNorm and RMSNorm (see norm.go) for AVX2: float64 sums
// over fp32 rows, and the fp32 affine step. n is a multiple of 8; the Go
// wrappers in impl_amd64.go do the tails.

// func sumF64AVX2(x *float32, n int) float64
TEXT ·sumF64AVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Y0, Y0, Y0               // two float64 accumulators of 4 lanes
	VXORPD Y1, Y1, Y1
	XORQ AX, AX

sumloop:
	CMPQ AX, CX
	JAE sumdone
	VCVTPS2PD (SI)(AX*4), Y4        // float64(x[i:i+4])
	VCVTPS2PD 16(SI)(AX*4), Y5      // float64(x[i+4:i+8])
	VADDPD Y4, Y0, Y0
	VADDPD Y5, Y1, Y1
	ADDQ $8, AX
	JMP sumloop

sumdone:
	VADDPD Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VHADDPD X0, X0, X0
	VZEROUPPER
	MOVSD X0, ret+16(FP)
	RET

// func sumSqDevF64AVX2(x *float32, n int, mean float64) float64
TEXT ·sumSqDevF64AVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD mean+16(FP), Y6
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	XORQ AX, AX

sqloop:
	CMPQ AX, CX
	JAE sqdone
	VCVTPS2PD (SI)(AX*4), Y4
	VCVTPS2PD 16(SI)(AX*4), Y5
	VSUBPD Y6, Y4, Y4               // x − mean, float64
	VSUBPD Y6, Y5, Y5
	VFMADD231PD Y4, Y4, Y0          // += (x − mean)²
	VFMADD231PD Y5, Y5, Y1
	ADDQ $8, AX
	JMP sqloop

sqdone:
	VADDPD Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VHADDPD X0, X0, X0
	VZEROUPPER
	MOVSD X0, ret+24(FP)
	RET

// func normAffineAVX2(dst, x, w, b *float32, n int, m, r float32)
// dst = (x − m)·r·w (+ b), fp32, each operation rounded; b may be nil.
TEXT ·normAffineAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	MOVQ b+24(FP), BX
	MOVQ n+32(FP), CX
	VBROADCASTSS m+40(FP), Y6
	VBROADCASTSS r+44(FP), Y7
	XORQ AX, AX
	TESTQ BX, BX
	JZ scaleonly

affine:
	CMPQ AX, CX
	JAE normdone
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS Y6, Y0, Y0               // x − m
	VMULPS Y7, Y0, Y0               // ·r
	VMULPS (DX)(AX*4), Y0, Y0       // ·w
	VADDPS (BX)(AX*4), Y0, Y0       // + b
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	JMP affine

scaleonly:
	CMPQ AX, CX
	JAE normdone
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS Y6, Y0, Y0
	VMULPS Y7, Y0, Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	JMP scaleonly

normdone:
	VZEROUPPER
	RET
