//go:build !purego

package asm

import (
	"math"

	"github.com/klauspost/cpuid/v2"
	"golang.org/x/sys/cpu"
)

// archKernels returns avx512 and avx2. cpuid detects the instructions (and
// whether the OS saves the ymm/zmm state); x/sys/cpu carries the
// GODEBUG=cpu.avx2=off / cpu.avx512f=off / cpu.fma=off / cpu.f16c=off
// switches, which turn a set off at run time without rebuilding.
func archKernels() []*kernels {
	hasAVX2 := cpuid.CPU.Supports(cpuid.AVX, cpuid.AVX2, cpuid.FMA3, cpuid.F16C) &&
		cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
	hasAVX512 := hasAVX2 && cpuid.CPU.Supports(cpuid.AVX512F) && cpu.X86.HasAVX512F
	avx2 := &kernels{
		name: "avx2", available: hasAVX2,
		dot: dotAVX2Tail, axpy: axpyAVX2Tail, widenF16: widenF16AVX2Tail, widenBF16: widenBF16AVX2Tail,
		gemvF16: func(y []float32, w []uint16, ld int, x []float32) { gemvTail(gemvF16AVX2, 16, f16Value, y, w, ld, x) },
		gemvF32: func(y, w []float32, ld int, x []float32) { gemvTail(gemvF32AVX2, 8, f32Value, y, w, ld, x) },
		gemvT:   func(y, w []float32, ld int, p []float32) { gemvTBlocks(gemvT32AVX2, 32, y, w, ld, p) },
		softmax: softmaxAVX2, xSigmoid: xSigmoidAVX2Tail,
		sumF64: sumF64AVX2Tail, sumSqDevF64: sumSqDevF64AVX2Tail, normAffine: normAffineAVX2Tail,
		mr: 6, nr: 16,
		tile: func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha float32, load bool) {
			if kc == 0 {
				zeroTile(6, 16, c, ldc, load)
				return
			}
			tile6x16AVX2(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, load)
		},
		packT: packTAVX2, packTF16: packTF16AVX2, packTBF16: packTBF16AVX2,
	}
	avx512 := *avx2
	avx512.name, avx512.available = "avx512", hasAVX512
	avx512.gemvF16 = func(y []float32, w []uint16, ld int, x []float32) {
		gemvTail(gemvF16AVX512, 32, f16Value, y, w, ld, x)
	}
	avx512.gemvF32 = func(y, w []float32, ld int, x []float32) { gemvTail(gemvF32AVX512, 16, f32Value, y, w, ld, x) }
	avx512.gemvT = func(y, w []float32, ld int, p []float32) { gemvTBlocks(gemvT64AVX512, 64, y, w, ld, p) }
	avx512.mr, avx512.nr = 12, 32
	avx512.tile = func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha float32, load bool) {
		if kc == 0 {
			zeroTile(12, 32, c, ldc, load)
			return
		}
		tile12x32AVX512(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, load)
	}
	avx512.mrShort = 4
	avx512.tileShort = func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha float32, load bool) {
		if kc == 0 {
			zeroTile(4, 32, c, ldc, load)
			return
		}
		tile4x32AVX512(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, load)
	}
	return []*kernels{&avx512, avx2}
}

// dotAVX2 returns Σ x[i]·y[i] for i < n, n a multiple of 8: four ymm
// accumulators over 32-element steps, then one over 8-element steps, added
// as (a0+a1)+(a2+a3) and reduced horizontally.
//
//go:noescape
func dotAVX2(x, y *float32, n int) float32

// axpyAVX2 is y[i] += a·x[i] for i < n, n a multiple of 8, with one FMA each.
//
//go:noescape
func axpyAVX2(a float32, x, y *float32, n int)

// widenF16AVX2 is dst[i] = float32(src[i]) for i < n, n a multiple of 8
// (F16C VCVTPH2PS).
//
//go:noescape
func widenF16AVX2(dst *float32, src *uint16, n int)

// widenBF16AVX2 is dst[i] = frombits(uint32(src[i]) << 16) for i < n, n a
// multiple of 8.
//
//go:noescape
func widenBF16AVX2(dst *float32, src *uint16, n int)

// gemvF16AVX2 is y[r] = Σ_{k<kv} w[r·ld + k]·x[k] for r < rows, kv a multiple
// of 16: row by row, four ymm accumulators (see gemv_amd64.s).
//
//go:noescape
func gemvF16AVX2(y *float32, w *uint16, ld int, x *float32, rows, kv int)

// gemvF16AVX512 is gemvF16AVX2 with zmm registers, kv a multiple of 32.
//
//go:noescape
func gemvF16AVX512(y *float32, w *uint16, ld int, x *float32, rows, kv int)

// gemvF32AVX2 is gemvF16AVX2 for fp32 weights, kv a multiple of 8.
//
//go:noescape
func gemvF32AVX2(y *float32, w *float32, ld int, x *float32, rows, kv int)

// gemvF32AVX512 is gemvF32AVX2 with zmm registers, kv a multiple of 16.
//
//go:noescape
func gemvF32AVX512(y *float32, w *float32, ld int, x *float32, rows, kv int)

// gemvT32AVX2 is y[c] += Σ_{j<n} p[j]·w[j·ld + c] for c < 32.
//
//go:noescape
func gemvT32AVX2(y *float32, w *float32, ld int, p *float32, n int)

// gemvT64AVX512 is gemvT32AVX2 for c < 64, with zmm registers.
//
//go:noescape
func gemvT64AVX512(y *float32, w *float32, ld int, p *float32, n int)

// gemvTBlocks runs an assembly transposed GEMV over whole blocks of cols
// columns and axpys over the rest.
func gemvTBlocks(gemvT func(y *float32, w *float32, ld int, p *float32, n int), cols int,
	y, w []float32, ld int, p []float32) {
	c := 0
	if len(p) > 0 {
		for ; c+cols <= len(y); c += cols {
			gemvT(&y[c], &w[c], ld, &p[0], len(p))
		}
	}
	if c < len(y) {
		for j, pj := range p {
			axpyGeneric(pj, w[j*ld+c:j*ld+len(y)], y[c:])
		}
	}
}

// tile6x16AVX2 is Gemm.Tile for a 6×16 tile, kc ≥ 1: twelve ymm
// accumulators, two ymm loads of the panel and six broadcasts of a per k.
//
//go:noescape
func tile6x16AVX2(kc int, a *float32, lda int, b, c *float32, ldc int, alpha float32, load bool)

// tile12x32AVX512 is Gemm.Tile for a 12×32 tile, kc ≥ 1: twenty-four zmm
// accumulators, two zmm loads of the panel and twelve broadcasts of a per k.
//
//go:noescape
func tile12x32AVX512(kc int, a *float32, lda int, b, c *float32, ldc int, alpha float32, load bool)

// tile4x32AVX512 is the first four rows of tile12x32AVX512.
//
//go:noescape
func tile4x32AVX512(kc int, a *float32, lda int, b, c *float32, ldc int, alpha float32, load bool)

// packT8F32AVX2 is dst[k·ds + j] = src[j·ld + k] for j < 8, k < 8·k8: eight
// rows of W transposed eight columns at a time (an 8×8 ymm transpose).
//
//go:noescape
func packT8F32AVX2(dst *float32, ds int, src *float32, ld, k8 int)

// packT8F16AVX2 is packT8F32AVX2 for binary16 rows, widened with VCVTPH2PS.
//
//go:noescape
func packT8F16AVX2(dst *float32, ds int, src *uint16, ld, k8 int)

// packT8BF16AVX2 is packT8F32AVX2 for bfloat16 rows, widened by a shift.
//
//go:noescape
func packT8BF16AVX2(dst *float32, ds int, src *uint16, ld, k8 int)

func dotAVX2Tail(x, y []float32) float32 {
	n8 := len(x) &^ 7
	var s float32
	if n8 > 0 {
		s = dotAVX2(&x[0], &y[0], n8)
	}
	for i := n8; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}

func axpyAVX2Tail(a float32, x, y []float32) {
	n8 := len(x) &^ 7
	if n8 > 0 {
		axpyAVX2(a, &x[0], &y[0], n8)
	}
	axpyGeneric(a, x[n8:], y[n8:len(x)])
}

func widenF16AVX2Tail(dst []float32, src []uint16) {
	n8 := len(src) &^ 7
	if n8 > 0 {
		widenF16AVX2(&dst[0], &src[0], n8)
	}
	widenF16Generic(dst[n8:], src[n8:])
}

func widenBF16AVX2Tail(dst []float32, src []uint16) {
	n8 := len(src) &^ 7
	if n8 > 0 {
		widenBF16AVX2(&dst[0], &src[0], n8)
	}
	widenBF16Generic(dst[n8:], src[n8:])
}

// gemvTail runs an assembly GEMV over the first multiple of step columns and
// adds the rest in Go, with conv giving a weight's value.
func gemvTail[W uint16 | float32](gemv func(y *float32, w *W, ld int, x *float32, rows, kv int), step int,
	conv func(W) float32, y []float32, w []W, ld int, x []float32) {
	kv := len(x) / step * step
	if kv > 0 {
		gemv(&y[0], &w[0], ld, &x[0], len(y), kv)
	} else {
		clear(y)
	}
	if kv == len(x) {
		return
	}
	for r := range y {
		s := y[r]
		for k, h := range w[r*ld+kv : r*ld+len(x)] {
			s += conv(h) * x[kv+k]
		}
		y[r] = s
	}
}

func f16Value(h uint16) float32 { return math.Float32frombits(f16Table[h]) }

func f32Value(v float32) float32 { return v }

// packTAVX2 and its F16/BF16 twins pack whole groups of eight rows eight
// columns at a time in assembly, and the leftover rows and columns in Go.
func packTAVX2(dst []float32, nr int, src []float32, ld, rows, kc int) {
	j8, k8 := rows&^7, kc&^7
	if k8 > 0 {
		for j := 0; j < j8; j += 8 {
			packT8F32AVX2(&dst[j], nr, &src[j*ld], ld, k8/8)
		}
	}
	packTRows(dst, nr, src, ld, 0, j8, k8, kc)
	packTRows(dst, nr, src, ld, j8, rows, 0, kc)
	zeroCols(dst, nr, rows, kc)
}

func packTF16AVX2(dst []float32, nr int, src []uint16, ld, rows, kc int) {
	j8, k8 := rows&^7, kc&^7
	if k8 > 0 {
		for j := 0; j < j8; j += 8 {
			packT8F16AVX2(&dst[j], nr, &src[j*ld], ld, k8/8)
		}
	}
	packTF16Rows(dst, nr, src, ld, 0, j8, k8, kc)
	packTF16Rows(dst, nr, src, ld, j8, rows, 0, kc)
	zeroCols(dst, nr, rows, kc)
}

func packTBF16AVX2(dst []float32, nr int, src []uint16, ld, rows, kc int) {
	j8, k8 := rows&^7, kc&^7
	if k8 > 0 {
		for j := 0; j < j8; j += 8 {
			packT8BF16AVX2(&dst[j], nr, &src[j*ld], ld, k8/8)
		}
	}
	packTBF16Rows(dst, nr, src, ld, 0, j8, k8, kc)
	packTBF16Rows(dst, nr, src, ld, j8, rows, 0, kc)
	zeroCols(dst, nr, rows, kc)
}

// expSumAVX2 is x[i] = Exp32(x[i] − m) for i < n, returning Σ x[i]; n is a
// multiple of 8. Exp32 runs in float64 lanes (see exp_amd64.s).
//
//go:noescape
func expSumAVX2(x *float32, n int, m float32) float32

// xSigmoidAVX2 is dst[i] = x[i] / (1 + Exp32(−a·x[i])) for i < n, n a
// multiple of 8.
//
//go:noescape
func xSigmoidAVX2(dst, x *float32, n int, a float32)

// maxAVX2 is max(x[:n]) for n a positive multiple of 8.
//
//go:noescape
func maxAVX2(x *float32, n int) float32

// scaleAVX2 is x[i] *= s for i < n, n a multiple of 8.
//
//go:noescape
func scaleAVX2(x *float32, n int, s float32)

// softmaxAVX2 is softmaxGeneric with the max, exp-and-sum and scaling passes
// in assembly over the first multiple of 8 and in Go over the rest.
func softmaxAVX2(x []float32) {
	n8 := len(x) &^ 7
	if n8 == 0 {
		softmaxGeneric(x)
		return
	}
	m := maxAVX2(&x[0], n8)
	for _, v := range x[n8:] {
		if v > m {
			m = v
		}
	}
	sum := expSumAVX2(&x[0], n8, m)
	for i := n8; i < len(x); i++ {
		e := Exp32(x[i] - m)
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	scaleAVX2(&x[0], n8, inv)
	for i := n8; i < len(x); i++ {
		x[i] *= inv
	}
}

func xSigmoidAVX2Tail(dst, x []float32, a float32) {
	n8 := len(x) &^ 7
	if n8 > 0 {
		xSigmoidAVX2(&dst[0], &x[0], n8, a)
	}
	xSigmoidGeneric(dst[n8:], x[n8:], a)
}

// sumF64AVX2 is Σ float64(x[i]) for i < n, n a multiple of 8.
//
//go:noescape
func sumF64AVX2(x *float32, n int) float64

// sumSqDevF64AVX2 is Σ (float64(x[i]) − mean)² for i < n, n a multiple of 8.
//
//go:noescape
func sumSqDevF64AVX2(x *float32, n int, mean float64) float64

// normAffineAVX2 is normAffineGeneric over n elements, n a multiple of 8;
// b may be nil.
//
//go:noescape
func normAffineAVX2(dst, x, w, b *float32, n int, m, r float32)

func sumF64AVX2Tail(x []float32) float64 {
	n8 := len(x) &^ 7
	var s float64
	if n8 > 0 {
		s = sumF64AVX2(&x[0], n8)
	}
	return s + sumF64Generic(x[n8:])
}

func sumSqDevF64AVX2Tail(x []float32, mean float64) float64 {
	n8 := len(x) &^ 7
	var s float64
	if n8 > 0 {
		s = sumSqDevF64AVX2(&x[0], n8, mean)
	}
	return s + sumSqDevF64Generic(x[n8:], mean)
}

func normAffineAVX2Tail(dst, x, w, b []float32, m, r float32) {
	n8 := len(x) &^ 7
	if n8 > 0 {
		var bp *float32
		if b != nil {
			bp = &b[0]
		}
		normAffineAVX2(&dst[0], &x[0], &w[0], bp, n8, m, r)
	}
	var bt []float32
	if b != nil {
		bt = b[n8:]
	}
	normAffineGeneric(dst[n8:], x[n8:], w[n8:], bt, m, r)
}
