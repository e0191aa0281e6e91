// Package mmap maps a whole file read-only, or, where mapping is unavailable or
// refused, reads ranges of it on demand. It is the one place that calls mmap:
// safetensors and ptfile both open checkpoints through it.
//
// Allowed imports: the standard library and golang.org/x/sys/unix.
package mmap
