// Package cpu is the CPU implementation of backend.Backend: plain host memory,
// the kernels of package asm, and a persistent worker pool that splits every
// op over its threads: matrix products over M×N blocks, attention over heads,
// norms and activations over rows.
//
// Matrix products are blocked the GotoBLAS way (matmul.go): each task packs
// its kc × NR panels of W — transposed, and widened from F16 or BF16 on the
// way — and runs the asm micro-kernel over MR-row blocks of x. A one-row
// product (a decoding step) is a GEMV that streams an F16 W directly. Weights
// are used in place: a matrix on a memory-mapped checkpoint is read panel by
// panel into per-thread scratch and never copied whole. Vectors (norm weights,
// biases) are widened to F32 once at Load; they are a negligible share of a
// model's bytes.
//
// Attention with several queries runs q·kᵀ and p·v per head on the same
// micro-kernel; a single query uses dot products and axpys.
//
// Nothing an op does on its hot path allocates: tasks and jobs are recycled,
// and each thread's scratch grows to the largest request and stays. Idle
// workers spin briefly before parking, so that a decoding step's many small
// ops do not each pay a goroutine wake-up.
//
// Allowed imports: the standard library, tensor, asm and backend.
package cpu
