package cpu

import (
	"fmt"
	"math"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// nearestBudget bounds the score block of one MatMul (16 MiB of fp32): one
// image at ViT-L/14-336 size (577 tokens, K = 4096) is one block, and no
// caller's N·K scores are ever held whole.
const nearestBudget = 1 << 22

type nearestTask struct {
	scores       []float32 // [rows, k] dot products of a block
	k            int
	norms        []float32
	idx          []int32
	best, margin []float32
}

// run takes, per row, the smallest s_j = norms_j − 2·dot_j and the second
// smallest; a tie keeps the first (smallest) j.
func (t *nearestTask) run(lo, hi int, _ *scratch) {
	for r := lo; r < hi; r++ {
		dots := t.scores[r*t.k : (r+1)*t.k]
		bi := int32(0)
		s1, s2 := float32(math.Inf(1)), float32(math.Inf(1))
		for j, g := range dots {
			s := t.norms[j] - 2*g
			if s < s1 {
				bi, s1, s2 = int32(j), s, s1
			} else if s < s2 {
				s2 = s
			}
		}
		t.idx[r], t.best[r] = bi, s1
		if t.margin != nil {
			t.margin[r] = s2 - s1
		}
	}
}

func (c *CPU) Nearest(idx []int32, best, margin []float32, x, codebook backend.Tensor, norms []float32) {
	xs, cb := f32(x), host(codebook)
	if len(cb.Shape()) != 2 {
		mismatch("Nearest", "the codebook must be 2-D", "x", x, "codebook", codebook)
	}
	k, d := cb.Dim(0), cb.Dim(1)
	if k == 0 || d == 0 || len(xs)%d != 0 || len(norms) != k {
		mismatch("Nearest", fmt.Sprintf("%d norms for the codebook", len(norms)), "x", x, "codebook", codebook)
	}
	n := len(xs) / d
	if len(idx) != n || len(best) != n || (margin != nil && len(margin) != n) {
		mismatch("Nearest", fmt.Sprintf("results for %d, %d, %d rows", len(idx), len(best), len(margin)), "x", x)
	}
	if n == 0 {
		return
	}
	xr := host(x).Reshape(n, d)
	chunk := max(1, min(n, nearestBudget/k))
	scores := tensor.New(tensor.F32, chunk, k)
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		s := scores.Rows(0, hi-lo)
		c.MatMul(s, xr.Rows(lo, hi), codebook, nil)
		t := &nearestTask{scores: s.F32(), k: k, norms: norms, idx: idx[lo:hi], best: best[lo:hi]}
		if margin != nil {
			t.margin = margin[lo:hi]
		}
		c.pool.parallel(hi-lo, c.pool.grainFor(hi-lo, max(1, 16384/k)), t)
	}
}
