package asm

import "math"

// Softmax replaces x with exp(x − max x) / Σ exp(x − max x). An empty slice is
// left alone. Exp is computed by Exp32's rule.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	use.Load().softmax(x)
}

// XSigmoid computes dst[i] = x[i]·σ(a·x[i]) = x[i] / (1 + Exp32(−a·x[i])),
// with −a·x[i] and the division rounded to fp32: SiLU is a = 1, CLIP's
// QuickGELU a = 1.702. dst may alias x.
func XSigmoid(dst, x []float32, a float32) {
	if len(dst) != len(x) {
		panic("asm: XSigmoid length mismatch")
	}
	use.Load().xSigmoid(dst, x, a)
}

func softmaxGeneric(x []float32) {
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	var sum float32
	for i, v := range x {
		e := Exp32(v - m)
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range x {
		x[i] *= inv
	}
}

func xSigmoidGeneric(dst, x []float32, a float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = v / (1 + Exp32(-a*v))
	}
}

// Exp32 is e^x for float32, within one ulp of the correctly rounded value on
// the range softmax uses (x ≤ 0). It reduces x = k·ln2 + r with |r| ≤ ln2/2
// (Cody–Waite, ln2 split in two) and evaluates the degree-7 Taylor polynomial
// of e^r in float64, whose truncation error (< 6e-9 relative) is below half
// a float32 ulp. Much cheaper than math.Exp, and free of table lookups so the
// assembly versions follow it lane for lane (in float64 lanes, with FMAs).
func Exp32(x float32) float32 {
	switch {
	case x != x: // NaN
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -103.97208:
		return 0
	}
	const (
		log2e = 1.4426950408889634
		ln2hi = 0.6931471803691238
		ln2lo = 1.9082149292705877e-10
	)
	xd := float64(x)
	k := math.Floor(xd*log2e + 0.5)
	r := (xd - k*ln2hi) - k*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	// 2^k as a float64 built from its bits: k ∈ [−150, 128] is in range.
	return float32(p * math.Float64frombits(uint64(int64(k)+1023)<<52))
}
