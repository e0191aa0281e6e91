//go:build (!amd64 && !arm64) || purego

package asm

// archKernels: no assembly in this build, only the generic set.
func archKernels() []*kernels { return nil }
