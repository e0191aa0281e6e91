package asm

import (
	"fmt"
	"sync/atomic"
)

// kernels is one implementation of the whole kernel set. Every field is a
// complete kernel: the amd64 and arm64 entries wrap their assembly with the Go
// that handles lengths the assembly does not (tails), so callers never see a
// partial kernel.
type kernels struct {
	name      string
	available bool // this CPU can run it

	dot       func(x, y []float32) float32
	axpy      func(a float32, x, y []float32)
	widenF16  func(dst []float32, src []uint16)
	widenBF16 func(dst []float32, src []uint16)
	gemvF16   func(y []float32, w []uint16, ld int, x []float32)
	gemvF32   func(y, w []float32, ld int, x []float32)
	gemvT     func(y, w []float32, ld int, p []float32)
	softmax   func(x []float32) // len(x) ≥ 1
	xSigmoid  func(dst, x []float32, a float32)

	// The parts of LayerNorm and RMSNorm (see norm.go).
	sumF64      func(x []float32) float64
	sumSqDevF64 func(x []float32, mean float64) float64
	normAffine  func(dst, x, w, b []float32, m, r float32)

	// The matrix product's register tile (see Gemm).
	mr, nr int
	tile   func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha float32, load bool)
	// An optional shorter tile of mrShort rows (same panel), for the last
	// rows of a matrix; nil when the set has none.
	mrShort   int
	tileShort func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha float32, load bool)
	packT     func(dst []float32, nr int, src []float32, ld, rows, kc int)
	packTF16  func(dst []float32, nr int, src []uint16, ld, rows, kc int)
	packTBF16 func(dst []float32, nr int, src []uint16, ld, rows, kc int)
}

var generic = &kernels{
	name: "generic", available: true,
	dot: dotGeneric, axpy: axpyGeneric, widenF16: widenF16Generic, widenBF16: widenBF16Generic,
	gemvF16: gemvF16Generic, gemvF32: gemvF32Generic, gemvT: gemvTGeneric, softmax: softmaxGeneric, xSigmoid: xSigmoidGeneric,
	sumF64: sumF64Generic, sumSqDevF64: sumSqDevF64Generic, normAffine: normAffineGeneric,
	mr: 4, nr: 4, tile: tileGeneric,
	packT: packTGeneric, packTF16: packTF16Generic, packTBF16: packTBF16Generic,
}

// all is every implementation compiled into this binary, best first, ending
// with generic; archKernels (per architecture and build tag) supplies the
// others.
var all = append(archKernels(), generic)

// use is the implementation in force: the best available one, unless a test
// or benchmark has called Select.
var use atomic.Pointer[kernels]

func init() { use.Store(best()) }

func best() *kernels {
	for _, k := range all {
		if k.available {
			return k
		}
	}
	return generic
}

// Implementation describes one kernel set compiled into this binary.
type Implementation struct {
	Name      string
	Available bool // the CPU has the instructions it needs
}

// Implementations lists the kernel sets compiled into this binary, best
// first; the last is always "generic".
func Implementations() []Implementation {
	out := make([]Implementation, len(all))
	for i, k := range all {
		out[i] = Implementation{k.name, k.available}
	}
	return out
}

// Selected is the name of the kernel set in use.
func Selected() string { return use.Load().name }

// Select makes the named kernel set the one in use; "" restores the default
// (the best available). It is for tests and benchmarks and must not be
// called while kernels are running: a Gemm obtained before keeps the set it
// was obtained from.
func Select(name string) error {
	if name == "" {
		use.Store(best())
		return nil
	}
	for _, k := range all {
		if k.name == name {
			if !k.available {
				return fmt.Errorf("asm: implementation %q needs instructions this CPU lacks", name)
			}
			use.Store(k)
			return nil
		}
	}
	return fmt.Errorf("asm: no implementation %q in this build", name)
}
