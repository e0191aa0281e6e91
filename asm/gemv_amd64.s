//go:build !purego

#include "textflag.h"

// GEMV: y[r] = Σ_{k<kv} w[r·ld + k]·x[k] for r < rows, w fp16 or fp32. One row
// at a time, front to back, so the weights are read as one sequential stream
// (rows are contiguous in memory), which keeps the DRAM pages and the
// hardware prefetchers on a single run; four accumulators hide the FMA
// latency, and a software prefetch PF bytes ahead (reaching into the next
// rows) keeps more lines in flight than the hardware prefetchers alone.
// x is re-read from L1/L2 for every row. The loop is bound by memory
// bandwidth, not by the conversions or FMAs.

#define Y_PTR DI
#define W_PTR R8
#define LDW DX
#define X_PTR SI
#define ROWS CX
#define KV R13
#define KVBIG R9
#define OFF AX
#define PF 4096 // prefetch distance, bytes

// ZSUM / YSUM: the row's sum of accumulators 0…3 to y, then the next row.
#define ZSUM \
	VADDPS Z1, Z0, Z0; \
	VADDPS Z3, Z2, Z2; \
	VADDPS Z2, Z0, Z0; \
	VEXTRACTF64X4 $1, Z0, Y4; \
	VADDPS Y4, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X4; \
	VADDPS X4, X0, X0; \
	VHADDPS X0, X0, X0; \
	VHADDPS X0, X0, X0; \
	MOVSS X0, (Y_PTR); \
	ADDQ $4, Y_PTR; \
	ADDQ LDW, W_PTR; \
	DECQ ROWS

#define YSUM \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X4; \
	VADDPS X4, X0, X0; \
	VHADDPS X0, X0, X0; \
	VHADDPS X0, X0, X0; \
	MOVSS X0, (Y_PTR); \
	ADDQ $4, Y_PTR; \
	ADDQ LDW, W_PTR; \
	DECQ ROWS

// SETUP(esize shift, big step): arguments, strides in bytes, KVBIG = the
// bytes of a row covered by whole big steps.
#define SETUP(shift, big) \
	MOVQ y+0(FP), Y_PTR; \
	MOVQ w+8(FP), W_PTR; \
	MOVQ ld+16(FP), LDW; \
	SHLQ $shift, LDW; \
	MOVQ x+24(FP), X_PTR; \
	MOVQ rows+32(FP), ROWS; \
	MOVQ kv+40(FP), KV; \
	SHLQ $shift, KV; \
	MOVQ KV, KVBIG; \
	ANDQ $~(big-1), KVBIG

// func gemvF16AVX512(y *float32, w *uint16, ld int, x *float32, rows int, kv int)
// kv is a multiple of 32; 64 halves (128 bytes) a step, then one of 32.
TEXT ·gemvF16AVX512(SB), NOSPLIT, $0-48
	SETUP(1, 128)

f16zrow:
	TESTQ ROWS, ROWS
	JZ f16zdone
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	XORQ OFF, OFF
	CMPQ OFF, KVBIG
	JAE f16zrest

f16zloop:
	PREFETCHT0 PF(W_PTR)(OFF*1)     // the lines PF bytes on
	PREFETCHT0 (PF+64)(W_PTR)(OFF*1)
	VCVTPH2PS (W_PTR)(OFF*1), Z16   // w[r, k:k+16]
	VCVTPH2PS 32(W_PTR)(OFF*1), Z17
	VCVTPH2PS 64(W_PTR)(OFF*1), Z18
	VCVTPH2PS 96(W_PTR)(OFF*1), Z19
	VFMADD231PS (X_PTR)(OFF*2), Z16, Z0     // acc0 += w·x[k:k+16]
	VFMADD231PS 64(X_PTR)(OFF*2), Z17, Z1
	VFMADD231PS 128(X_PTR)(OFF*2), Z18, Z2
	VFMADD231PS 192(X_PTR)(OFF*2), Z19, Z3
	ADDQ $128, OFF                  // k += 64
	CMPQ OFF, KVBIG
	JB f16zloop

f16zrest:
	CMPQ OFF, KV
	JAE f16zsum
	VCVTPH2PS (W_PTR)(OFF*1), Z16   // the last 32
	VCVTPH2PS 32(W_PTR)(OFF*1), Z17
	VFMADD231PS (X_PTR)(OFF*2), Z16, Z0
	VFMADD231PS 64(X_PTR)(OFF*2), Z17, Z1

f16zsum:
	ZSUM
	JMP f16zrow

f16zdone:
	VZEROUPPER
	RET

// func gemvF16AVX2(y *float32, w *uint16, ld int, x *float32, rows int, kv int)
// kv is a multiple of 16; 32 halves (64 bytes) a step, then one of 16.
TEXT ·gemvF16AVX2(SB), NOSPLIT, $0-48
	SETUP(1, 64)

f16yrow:
	TESTQ ROWS, ROWS
	JZ f16ydone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ OFF, OFF
	CMPQ OFF, KVBIG
	JAE f16yrest

f16yloop:
	PREFETCHT0 PF(W_PTR)(OFF*1)
	VCVTPH2PS (W_PTR)(OFF*1), Y8    // w[r, k:k+8]
	VCVTPH2PS 16(W_PTR)(OFF*1), Y9
	VCVTPH2PS 32(W_PTR)(OFF*1), Y10
	VCVTPH2PS 48(W_PTR)(OFF*1), Y11
	VFMADD231PS (X_PTR)(OFF*2), Y8, Y0
	VFMADD231PS 32(X_PTR)(OFF*2), Y9, Y1
	VFMADD231PS 64(X_PTR)(OFF*2), Y10, Y2
	VFMADD231PS 96(X_PTR)(OFF*2), Y11, Y3
	ADDQ $64, OFF                   // k += 32
	CMPQ OFF, KVBIG
	JB f16yloop

f16yrest:
	CMPQ OFF, KV
	JAE f16ysum
	VCVTPH2PS (W_PTR)(OFF*1), Y8    // the last 16
	VCVTPH2PS 16(W_PTR)(OFF*1), Y9
	VFMADD231PS (X_PTR)(OFF*2), Y8, Y0
	VFMADD231PS 32(X_PTR)(OFF*2), Y9, Y1

f16ysum:
	YSUM
	JMP f16yrow

f16ydone:
	VZEROUPPER
	RET

// func gemvF32AVX512(y *float32, w *float32, ld int, x *float32, rows int, kv int)
// kv is a multiple of 16; 64 floats (256 bytes) a step, then steps of 16.
TEXT ·gemvF32AVX512(SB), NOSPLIT, $0-48
	SETUP(2, 256)

f32zrow:
	TESTQ ROWS, ROWS
	JZ f32zdone
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	XORQ OFF, OFF
	CMPQ OFF, KVBIG
	JAE f32zrest

f32zloop:
	PREFETCHT0 PF(W_PTR)(OFF*1)
	PREFETCHT0 (PF+64)(W_PTR)(OFF*1)
	PREFETCHT0 (PF+128)(W_PTR)(OFF*1)
	PREFETCHT0 (PF+192)(W_PTR)(OFF*1)
	VMOVUPS (X_PTR)(OFF*1), Z16     // x[k:k+16]
	VMOVUPS 64(X_PTR)(OFF*1), Z17
	VMOVUPS 128(X_PTR)(OFF*1), Z18
	VMOVUPS 192(X_PTR)(OFF*1), Z19
	VFMADD231PS (W_PTR)(OFF*1), Z16, Z0     // acc0 += w[r, k:k+16]·x
	VFMADD231PS 64(W_PTR)(OFF*1), Z17, Z1
	VFMADD231PS 128(W_PTR)(OFF*1), Z18, Z2
	VFMADD231PS 192(W_PTR)(OFF*1), Z19, Z3
	ADDQ $256, OFF                  // k += 64
	CMPQ OFF, KVBIG
	JB f32zloop

f32zrest:
	CMPQ OFF, KV
	JAE f32zsum
	VMOVUPS (X_PTR)(OFF*1), Z16     // 16 more
	VFMADD231PS (W_PTR)(OFF*1), Z16, Z0
	ADDQ $64, OFF
	JMP f32zrest

f32zsum:
	ZSUM
	JMP f32zrow

f32zdone:
	VZEROUPPER
	RET

// func gemvF32AVX2(y *float32, w *float32, ld int, x *float32, rows int, kv int)
// kv is a multiple of 8; 32 floats (128 bytes) a step, then steps of 8.
TEXT ·gemvF32AVX2(SB), NOSPLIT, $0-48
	SETUP(2, 128)

f32yrow:
	TESTQ ROWS, ROWS
	JZ f32ydone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ OFF, OFF
	CMPQ OFF, KVBIG
	JAE f32yrest

f32yloop:
	PREFETCHT0 PF(W_PTR)(OFF*1)
	PREFETCHT0 (PF+64)(W_PTR)(OFF*1)
	VMOVUPS (X_PTR)(OFF*1), Y8      // x[k:k+8]
	VMOVUPS 32(X_PTR)(OFF*1), Y9
	VMOVUPS 64(X_PTR)(OFF*1), Y10
	VMOVUPS 96(X_PTR)(OFF*1), Y11
	VFMADD231PS (W_PTR)(OFF*1), Y8, Y0
	VFMADD231PS 32(W_PTR)(OFF*1), Y9, Y1
	VFMADD231PS 64(W_PTR)(OFF*1), Y10, Y2
	VFMADD231PS 96(W_PTR)(OFF*1), Y11, Y3
	ADDQ $128, OFF                  // k += 32
	CMPQ OFF, KVBIG
	JB f32yloop

f32yrest:
	CMPQ OFF, KV
	JAE f32ysum
	VMOVUPS (X_PTR)(OFF*1), Y8      // 8 more
	VFMADD231PS (W_PTR)(OFF*1), Y8, Y0
	ADDQ $32, OFF
	JMP f32yrest

f32ysum:
	YSUM
	JMP f32yrow

f32ydone:
	VZEROUPPER
	RET

// Transposed GEMV: y[c] += Σ_{j<n} p[j]·w[j·ld + c] for the block of columns
// c < 64 (zmm) or c < 32 (ymm): attention's p·v for one query. Two rows a
// step, each with its own accumulators; the rows four on are prefetched.

// func gemvT64AVX512(y *float32, w *float32, ld int, p *float32, n int)
TEXT ·gemvT64AVX512(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), Y_PTR
	MOVQ w+8(FP), W_PTR
	MOVQ ld+16(FP), LDW
	SHLQ $2, LDW                    // row stride in bytes
	MOVQ p+24(FP), X_PTR
	MOVQ n+32(FP), ROWS
	VMOVUPS (Y_PTR), Z0             // y[0:16]
	VMOVUPS 64(Y_PTR), Z1
	VMOVUPS 128(Y_PTR), Z2
	VMOVUPS 192(Y_PTR), Z3
	VPXORD Z4, Z4, Z4               // the odd rows' accumulators
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7

t64pair:
	CMPQ ROWS, $2
	JB t64one
	PREFETCHT0 (W_PTR)(LDW*4)       // row j+4
	PREFETCHT0 64(W_PTR)(LDW*4)
	PREFETCHT0 128(W_PTR)(LDW*4)
	PREFETCHT0 192(W_PTR)(LDW*4)
	VBROADCASTSS (X_PTR), Z16       // p[j]
	VBROADCASTSS 4(X_PTR), Z17      // p[j+1]
	VFMADD231PS (W_PTR), Z16, Z0    // y += p[j]·w[j, 0:64]
	VFMADD231PS 64(W_PTR), Z16, Z1
	VFMADD231PS 128(W_PTR), Z16, Z2
	VFMADD231PS 192(W_PTR), Z16, Z3
	VFMADD231PS (W_PTR)(LDW*1), Z17, Z4     // + p[j+1]·w[j+1, 0:64]
	VFMADD231PS 64(W_PTR)(LDW*1), Z17, Z5
	VFMADD231PS 128(W_PTR)(LDW*1), Z17, Z6
	VFMADD231PS 192(W_PTR)(LDW*1), Z17, Z7
	LEAQ (W_PTR)(LDW*2), W_PTR      // j += 2
	ADDQ $8, X_PTR
	SUBQ $2, ROWS
	JMP t64pair

t64one:
	TESTQ ROWS, ROWS
	JZ t64store
	VBROADCASTSS (X_PTR), Z16       // the last row
	VFMADD231PS (W_PTR), Z16, Z0
	VFMADD231PS 64(W_PTR), Z16, Z1
	VFMADD231PS 128(W_PTR), Z16, Z2
	VFMADD231PS 192(W_PTR), Z16, Z3

t64store:
	VADDPS Z4, Z0, Z0
	VADDPS Z5, Z1, Z1
	VADDPS Z6, Z2, Z2
	VADDPS Z7, Z3, Z3
	VMOVUPS Z0, (Y_PTR)
	VMOVUPS Z1, 64(Y_PTR)
	VMOVUPS Z2, 128(Y_PTR)
	VMOVUPS Z3, 192(Y_PTR)
	VZEROUPPER
	RET

// func gemvT32AVX2(y *float32, w *float32, ld int, p *float32, n int)
TEXT ·gemvT32AVX2(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), Y_PTR
	MOVQ w+8(FP), W_PTR
	MOVQ ld+16(FP), LDW
	SHLQ $2, LDW
	MOVQ p+24(FP), X_PTR
	MOVQ n+32(FP), ROWS
	VMOVUPS (Y_PTR), Y0             // y[0:8]
	VMOVUPS 32(Y_PTR), Y1
	VMOVUPS 64(Y_PTR), Y2
	VMOVUPS 96(Y_PTR), Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7

t32pair:
	CMPQ ROWS, $2
	JB t32one
	PREFETCHT0 (W_PTR)(LDW*4)
	PREFETCHT0 64(W_PTR)(LDW*4)
	VBROADCASTSS (X_PTR), Y8
	VBROADCASTSS 4(X_PTR), Y9
	VFMADD231PS (W_PTR), Y8, Y0
	VFMADD231PS 32(W_PTR), Y8, Y1
	VFMADD231PS 64(W_PTR), Y8, Y2
	VFMADD231PS 96(W_PTR), Y8, Y3
	VFMADD231PS (W_PTR)(LDW*1), Y9, Y4
	VFMADD231PS 32(W_PTR)(LDW*1), Y9, Y5
	VFMADD231PS 64(W_PTR)(LDW*1), Y9, Y6
	VFMADD231PS 96(W_PTR)(LDW*1), Y9, Y7
	LEAQ (W_PTR)(LDW*2), W_PTR
	ADDQ $8, X_PTR
	SUBQ $2, ROWS
	JMP t32pair

t32one:
	TESTQ ROWS, ROWS
	JZ t32store
	VBROADCASTSS (X_PTR), Y8
	VFMADD231PS (W_PTR), Y8, Y0
	VFMADD231PS 32(W_PTR), Y8, Y1
	VFMADD231PS 64(W_PTR), Y8, Y2
	VFMADD231PS 96(W_PTR), Y8, Y3

t32store:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VMOVUPS Y0, (Y_PTR)
	VMOVUPS Y1, 32(Y_PTR)
	VMOVUPS Y2, 64(Y_PTR)
	VMOVUPS Y3, 96(Y_PTR)
	VZEROUPPER
	RET
