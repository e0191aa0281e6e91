//go:build !purego

package asm

// archKernels returns neon. ASIMD (NEON, with the fp16 conversions FCVTL and
// FCVTL2) is baseline on arm64, so there is nothing to detect.
func archKernels() []*kernels {
	neon := *generic
	neon.name = "neon"
	neon.dot, neon.axpy, neon.widenF16 = dotNEONTail, axpyNEONTail, widenF16NEONTail
	neon.mr, neon.nr = 6, 16
	neon.tile = func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha float32, load bool) {
		if kc == 0 {
			zeroTile(6, 16, c, ldc, load)
			return
		}
		tile6x16NEON(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, load)
	}
	// gemvF16 stays generic: it widens blocks of a row and dots them, which
	// runs on the NEON widening and dot above.
	return []*kernels{&neon}
}

// dotNEON returns Σ x[i]·y[i] for i < n, n a multiple of 16: four
// accumulators of four lanes, added pairwise, then across.
//
//go:noescape
func dotNEON(x, y *float32, n int) float32

// axpyNEON is y[i] += a·x[i] for i < n, n a multiple of 16 (one FMLA each).
//
//go:noescape
func axpyNEON(a float32, x, y *float32, n int)

// widenF16NEON is dst[i] = float32(src[i]) for i < n, n a multiple of 8
// (FCVTL, FCVTL2).
//
//go:noescape
func widenF16NEON(dst *float32, src *uint16, n int)

// tile6x16NEON is Gemm.Tile for a 6×16 tile, kc ≥ 1: twenty-four
// accumulators of four lanes; per k, the panel row in four registers and
// each row's a broadcast by LD1R.
//
//go:noescape
func tile6x16NEON(kc int, a *float32, lda int, b, c *float32, ldc int, alpha float32, load bool)

func dotNEONTail(x, y []float32) float32 {
	n16 := len(x) &^ 15
	var s float32
	if n16 > 0 {
		s = dotNEON(&x[0], &y[0], n16)
	}
	for i := n16; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}

func axpyNEONTail(a float32, x, y []float32) {
	n16 := len(x) &^ 15
	if n16 > 0 {
		axpyNEON(a, &x[0], &y[0], n16)
	}
	axpyGeneric(a, x[n16:], y[n16:len(x)])
}

func widenF16NEONTail(dst []float32, src []uint16) {
	n8 := len(src) &^ 7
	if n8 > 0 {
		widenF16NEON(&dst[0], &src[0], n8)
	}
	widenF16Generic(dst[n8:], src[n8:])
}
