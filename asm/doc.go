// Package asm holds the slice-level compute kernels that everything heavy runs
// on: dot products, axpy, and fp16/bf16 widening. Each kernel has a pure-Go
// twin that is always compiled; it is the reference the assembly versions are
// tested against, and the fallback where a CPU lacks an instruction set.
//
// The exported functions check their arguments once and panic with a constant
// "asm: ..." message on a programmer error (mismatched lengths); inner
// routines never re-check.
//
// Allowed imports: the standard library, golang.org/x/sys/cpu and
// github.com/klauspost/cpuid/v2. Never tensor: kernels work on plain slices.
package asm
