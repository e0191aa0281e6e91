package train

import "math"

// AdamW (Loshchilov & Hutter) with PyTorch's defaults and update order:
//
//	m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²
//	p ← p − lr·wd·p − lr·(m/(1−β₁ᵗ)) / (sqrt(v/(1−β₂ᵗ)) + ε)
//
// State is fp32, as PyTorch keeps it, so a checkpoint holds it exactly.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// param is one trainable tensor on the host with its optimiser state.
type param struct {
	name  string
	value []float32
	m, v  []float32
	decay bool // weight decay applies (Linear weights)
}

func newParam(name string, value []float32, decay bool) *param {
	return &param{name: name, value: value, m: make([]float32, len(value)), v: make([]float32, len(value)), decay: decay}
}

// step applies one AdamW update with gradient g at step t (from 1).
func (p *param) step(g []float64, lr, wd float64, t int) {
	c1 := 1 - math.Pow(adamBeta1, float64(t))
	c2 := 1 - math.Pow(adamBeta2, float64(t))
	for i, gi := range g {
		m := adamBeta1*float64(p.m[i]) + (1-adamBeta1)*gi
		v := adamBeta2*float64(p.v[i]) + (1-adamBeta2)*gi*gi
		p.m[i], p.v[i] = float32(m), float32(v)
		x := float64(p.value[i])
		if p.decay {
			x -= lr * wd * x
		}
		p.value[i] = float32(x - lr*(m/c1)/(math.Sqrt(v/c2)+adamEps))
	}
}

// learningRate is the schedule at step t of steps (from 1): linear warm-up
// over warmup steps to lr, then a cosine from lr at the first step after the
// warm-up towards 0, which the step after the last would reach.
func learningRate(lr float64, t, warmup, steps int) float64 {
	if t <= warmup {
		return lr * float64(t) / float64(warmup)
	}
	f := float64(t-warmup-1) / float64(steps-warmup)
	return lr * 0.5 * (1 + math.Cos(math.Pi*f))
}

// clipNorm scales the gradients so that their global L2 norm is at most
// limit (no limit when ≤ 0) and returns the norm before clipping.
func clipNorm(gs [][]float64, limit float64) float64 {
	var ss float64
	for _, g := range gs {
		for _, x := range g {
			ss += x * x
		}
	}
	norm := math.Sqrt(ss)
	if limit > 0 && norm > limit {
		s := limit / norm
		for _, g := range gs {
			for i := range g {
				g[i] *= s
			}
		}
	}
	return norm
}
