//go:build !purego

#include "textflag.h"

// Vector kernels for AVX2 + FMA + F16C. Lengths are multiples of 8; the Go
// wrappers in impl_amd64.go do the tails.

#define X_PTR SI
#define Y_PTR DI
#define LEN CX
#define LEN32 DX
#define IDX AX

// func dotAVX2(x, y *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), X_PTR
	MOVQ y+8(FP), Y_PTR
	MOVQ n+16(FP), LEN
	VXORPS Y0, Y0, Y0               // s0 = 0
	VXORPS Y1, Y1, Y1               // s1 = 0
	VXORPS Y2, Y2, Y2               // s2 = 0
	VXORPS Y3, Y3, Y3               // s3 = 0
	XORQ IDX, IDX                   // i = 0
	MOVQ LEN, LEN32
	ANDQ $~31, LEN32                // n32 = n &^ 31
	JZ dot8

dot32:
	VMOVUPS (X_PTR)(IDX*4), Y4      // x[i:i+8]
	VMOVUPS 32(X_PTR)(IDX*4), Y5    // x[i+8:i+16]
	VMOVUPS 64(X_PTR)(IDX*4), Y6    // x[i+16:i+24]
	VMOVUPS 96(X_PTR)(IDX*4), Y7    // x[i+24:i+32]
	VFMADD231PS (Y_PTR)(IDX*4), Y4, Y0   // s0 += x·y
	VFMADD231PS 32(Y_PTR)(IDX*4), Y5, Y1 // s1 += x·y
	VFMADD231PS 64(Y_PTR)(IDX*4), Y6, Y2 // s2 += x·y
	VFMADD231PS 96(Y_PTR)(IDX*4), Y7, Y3 // s3 += x·y
	ADDQ $32, IDX                   // i += 32
	CMPQ IDX, LEN32
	JB dot32                        // for i < n32

dot8:
	CMPQ IDX, LEN
	JAE dotreduce                   // for i < n
	VMOVUPS (X_PTR)(IDX*4), Y4      // x[i:i+8]
	VFMADD231PS (Y_PTR)(IDX*4), Y4, Y0 // s0 += x·y
	ADDQ $8, IDX                    // i += 8
	JMP dot8

dotreduce:
	VADDPS Y1, Y0, Y0               // s0 += s1
	VADDPS Y3, Y2, Y2               // s2 += s3
	VADDPS Y2, Y0, Y0               // s0 += s2
	VEXTRACTF128 $1, Y0, X1         // high half
	VADDPS X1, X0, X0               // 4 partial sums
	VHADDPS X0, X0, X0              // 2 partial sums
	VHADDPS X0, X0, X0              // the sum
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func axpyAVX2(a float32, x, y *float32, n int)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS a+0(FP), Y0        // a in every lane
	MOVQ x+8(FP), X_PTR
	MOVQ y+16(FP), Y_PTR
	MOVQ n+24(FP), LEN
	XORQ IDX, IDX                   // i = 0
	MOVQ LEN, LEN32
	ANDQ $~31, LEN32                // n32 = n &^ 31
	JZ axpy8

axpy32:
	VMOVUPS (Y_PTR)(IDX*4), Y1      // y[i:i+8]
	VMOVUPS 32(Y_PTR)(IDX*4), Y2
	VMOVUPS 64(Y_PTR)(IDX*4), Y3
	VMOVUPS 96(Y_PTR)(IDX*4), Y4
	VFMADD231PS (X_PTR)(IDX*4), Y0, Y1   // y += a·x
	VFMADD231PS 32(X_PTR)(IDX*4), Y0, Y2
	VFMADD231PS 64(X_PTR)(IDX*4), Y0, Y3
	VFMADD231PS 96(X_PTR)(IDX*4), Y0, Y4
	VMOVUPS Y1, (Y_PTR)(IDX*4)      // store y[i:i+32]
	VMOVUPS Y2, 32(Y_PTR)(IDX*4)
	VMOVUPS Y3, 64(Y_PTR)(IDX*4)
	VMOVUPS Y4, 96(Y_PTR)(IDX*4)
	ADDQ $32, IDX                   // i += 32
	CMPQ IDX, LEN32
	JB axpy32

axpy8:
	CMPQ IDX, LEN
	JAE axpydone
	VMOVUPS (Y_PTR)(IDX*4), Y1      // y[i:i+8]
	VFMADD231PS (X_PTR)(IDX*4), Y0, Y1 // y += a·x
	VMOVUPS Y1, (Y_PTR)(IDX*4)
	ADDQ $8, IDX
	JMP axpy8

axpydone:
	VZEROUPPER
	RET

// func widenF16AVX2(dst *float32, src *uint16, n int)
TEXT ·widenF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), Y_PTR
	MOVQ src+8(FP), X_PTR
	MOVQ n+16(FP), LEN
	XORQ IDX, IDX                   // i = 0
	MOVQ LEN, LEN32
	ANDQ $~31, LEN32
	JZ f16x8

f16x32:
	VCVTPH2PS (X_PTR)(IDX*2), Y0    // float32(src[i:i+8])
	VCVTPH2PS 16(X_PTR)(IDX*2), Y1
	VCVTPH2PS 32(X_PTR)(IDX*2), Y2
	VCVTPH2PS 48(X_PTR)(IDX*2), Y3
	VMOVUPS Y0, (Y_PTR)(IDX*4)      // dst[i:i+32]
	VMOVUPS Y1, 32(Y_PTR)(IDX*4)
	VMOVUPS Y2, 64(Y_PTR)(IDX*4)
	VMOVUPS Y3, 96(Y_PTR)(IDX*4)
	ADDQ $32, IDX
	CMPQ IDX, LEN32
	JB f16x32

f16x8:
	CMPQ IDX, LEN
	JAE f16done
	VCVTPH2PS (X_PTR)(IDX*2), Y0
	VMOVUPS Y0, (Y_PTR)(IDX*4)
	ADDQ $8, IDX
	JMP f16x8

f16done:
	VZEROUPPER
	RET

// func widenBF16AVX2(dst *float32, src *uint16, n int)
TEXT ·widenBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), Y_PTR
	MOVQ src+8(FP), X_PTR
	MOVQ n+16(FP), LEN
	XORQ IDX, IDX

bf16x8:
	CMPQ IDX, LEN
	JAE bf16done
	VPMOVZXWD (X_PTR)(IDX*2), Y0    // uint32(src[i:i+8])
	VPSLLD $16, Y0, Y0              // << 16: the float32 bits
	VMOVUPS Y0, (Y_PTR)(IDX*4)
	ADDQ $8, IDX
	JMP bf16x8

bf16done:
	VZEROUPPER
	RET
