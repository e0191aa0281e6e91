// Package cpu is the CPU implementation of backend.Backend: plain host memory,
// the kernels of package asm, and a persistent worker pool that splits every
// op over GOMAXPROCS threads (matrix products over M×N tiles, attention over
// heads and query blocks, norms and activations over rows).
//
// Weights are used in place: an F16 or BF16 matrix on a memory-mapped
// checkpoint is read, widened tile by tile into per-task scratch, and never
// copied whole. Vectors (norm weights, biases) are widened to F32 once at Load;
// they are a negligible share of a model's bytes.
//
// Allowed imports: the standard library, tensor, asm and backend.
package cpu
