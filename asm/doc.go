// Package asm holds the slice-level compute kernels that everything heavy runs
// on: dot products, axpy, fp16/bf16 widening, the fp16-weight GEMV of one-token
// decoding, the packing routines and register-tile micro-kernel of the matrix
// product, and the row kernels of softmax, the sigmoid-gated activations and
// the norms. Blocking, packing order, tails and threads stay in Go, in
// backend/cpu; the assembly is only the inner loops.
//
// Every kernel has a pure-Go twin (the *Generic functions) that is always
// compiled: it is the reference the assembly is tested against, and the
// fallback where a CPU lacks an instruction set. The implementations are
// chosen once at start-up from the CPU's features (klauspost/cpuid/v2, F16C
// included; a GODEBUG=cpu.avx512f=off or cpu.avx2=off setting, as read by
// golang.org/x/sys/cpu, also turns a set off):
//
//	avx512   amd64 with AVX-512F, AVX2, FMA and F16C: the 12×32 fp32
//	         micro-kernel and the fp16 GEMV in zmm registers; the rest as avx2
//	avx2     amd64 with AVX2, FMA and F16C: the 6×16 micro-kernel, the 8×8
//	         transposing pack with F16C/BF16 widening, dot, axpy, GEMV,
//	         widening, Exp32 in float64 lanes for softmax and XSigmoid, and
//	         the float64 moments and fp32 affine step of the norms
//	neon     arm64 (ASIMD is baseline): the 6×16 FMLA micro-kernel, FCVTL
//	         fp16 widening, dot, axpy; the rest generic
//	generic  pure Go, everywhere
//
// Implementations lists them and Select switches between them, for tests and
// benchmarks; models never call either.
//
// The build tag purego disables all assembly (the golang/go convention for
// "no assembly"): only the generic set is compiled. It is unrelated to the
// github.com/ebitengine/purego library that the CUDA backend uses to load
// libcuda without cgo; building with -tags purego does not disable CUDA.
//
// The exported functions check their arguments once and panic with a constant
// "asm: ..." message on a programmer error (mismatched lengths); inner
// routines never re-check.
//
// Allowed imports: the standard library, golang.org/x/sys/cpu and
// github.com/klauspost/cpuid/v2. Never tensor: kernels work on plain slices.
package asm
