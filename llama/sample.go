package llama

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling chooses the next token from logits. The zero value is greedy.
type Sampling struct {
	Temperature float64 // 0: greedy (argmax)
	TopK        int     // 0: no limit
	TopP        float64 // 0 or 1: no limit
	Seed        uint64
}

// Sampler draws tokens by a Sampling policy, as transformers' generate does:
// temperature, then top-k, then top-p (keeping at least one token), then a
// draw from the softmax. With a seed the draws are reproducible. Its buffers
// are reused, so sampling allocates nothing after the first call.
type Sampler struct {
	s     Sampling
	rng   *rand.Rand
	idx   []int32
	probs []float64
}

func NewSampler(s Sampling) *Sampler {
	return &Sampler{s: s, rng: rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))}
}

// Greedy reports whether the sampler always takes the argmax.
func (sp *Sampler) Greedy() bool { return sp.s.Temperature <= 0 }

// Next picks a token id from logits (which it does not modify).
func (sp *Sampler) Next(logits []float32) int32 {
	if sp.Greedy() || sp.s.TopK == 1 {
		return Argmax(logits)
	}
	n := len(logits)
	if cap(sp.idx) < n {
		sp.idx, sp.probs = make([]int32, n), make([]float64, n)
	}
	idx := sp.idx[:n]
	for i := range idx {
		idx[i] = int32(i)
	}
	// Highest logit first; ties keep the lower id first.
	slices.SortFunc(idx, func(a, b int32) int {
		switch la, lb := logits[a], logits[b]; {
		case la > lb:
			return -1
		case la < lb:
			return 1
		}
		return int(a - b)
	})
	if k := sp.s.TopK; k > 0 && k < n {
		idx = idx[:k]
	}
	probs := sp.probs[:len(idx)]
	top := float64(logits[idx[0]])
	var sum float64
	for i, id := range idx {
		probs[i] = math.Exp((float64(logits[id]) - top) / sp.s.Temperature)
		sum += probs[i]
	}
	// top-p: keep the smallest prefix whose mass reaches p (at least one).
	if p := sp.s.TopP; p > 0 && p < 1 {
		var c float64
		for i := range probs {
			c += probs[i] / sum
			if c >= p {
				idx, probs = idx[:i+1], probs[:i+1]
				break
			}
		}
		sum = 0
		for _, q := range probs {
			sum += q
		}
	}
	u := sp.rng.Float64() * sum
	for i, q := range probs {
		if u < q {
			return idx[i]
		}
		u -= q
	}
	return idx[len(idx)-1]
}

// Argmax is the index of the largest value, the first on ties (torch.argmax).
func Argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}
