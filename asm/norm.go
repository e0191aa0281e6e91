package asm

import "math"

// LayerNorm computes dst = (x − mean)·rstd·w (+ b), rstd = 1/sqrt(var + eps)
// with the biased variance, over one row. The moments are summed in float64
// (the exact value is the better target than any fp32 summation order); the
// affine step is fp32, rounded after each operation in the order written. b
// may be nil; dst may alias x.
func LayerNorm(dst, x, w, b []float32, eps float32) {
	if len(dst) != len(x) || len(w) != len(x) || (b != nil && len(b) != len(x)) {
		panic("asm: LayerNorm length mismatch")
	}
	if len(x) == 0 {
		return
	}
	k := use.Load()
	mean := k.sumF64(x) / float64(len(x))
	rstd := 1 / math.Sqrt(k.sumSqDevF64(x, mean)/float64(len(x))+float64(eps))
	k.normAffine(dst, x, w, b, float32(mean), float32(rstd))
}

// RMSNorm computes dst = x·r·w, r = 1/sqrt(mean(x²) + eps), over one row,
// with Σx² in float64 and the scaling in fp32. dst may alias x.
func RMSNorm(dst, x, w []float32, eps float32) {
	if len(dst) != len(x) || len(w) != len(x) {
		panic("asm: RMSNorm length mismatch")
	}
	if len(x) == 0 {
		return
	}
	k := use.Load()
	r := float32(1 / math.Sqrt(k.sumSqDevF64(x, 0)/float64(len(x))+float64(eps)))
	k.normAffine(dst, x, w, nil, 0, r)
}

func sumF64Generic(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s
}

// sumSqDevF64Generic is Σ (x − mean)² in float64.
func sumSqDevF64Generic(x []float32, mean float64) float64 {
	var s float64
	for _, v := range x {
		d := float64(v) - mean
		s += d * d
	}
	return s
}

// normAffineGeneric is dst = (x − m)·r·w (+ b) in fp32.
func normAffineGeneric(dst, x, w, b []float32, m, r float32) {
	dst, w = dst[:len(x)], w[:len(x)]
	if b == nil {
		for i, v := range x {
			dst[i] = (v - m) * r * w[i]
		}
		return
	}
	b = b[:len(x)]
	for i, v := range x {
		dst[i] = float32((v-m)*r*w[i]) + b[i] // rounded before the add: no FMA
	}
}
