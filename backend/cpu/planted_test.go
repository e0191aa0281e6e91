package cpu

import (
	"math"
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/backend/backendtest"
	"github.com/avq/avq/tensor"
)

// The conformance suite must be able to fail: each type below is the CPU
// backend with one bug planted, and TestSuiteRejectsPlantedBugs expects the
// named check to reject it.

// unbiasedLN normalises by the unbiased variance (n−1), a classic slip.
type unbiasedLN struct{ *CPU }

func (p unbiasedLN) LayerNorm(dst, x, w, b backend.Tensor, eps float32) {
	d := lastDim(x)
	xs := make([]float32, x.Shape().Numel())
	p.Read(xs, x)
	ws, bs := make([]float32, d), make([]float32, d)
	p.Read(ws, w)
	if b != nil {
		p.Read(bs, b)
	}
	for r := 0; r < len(xs); r += d {
		row := xs[r : r+d]
		mean, ss := 0.0, 0.0
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(d)
		for _, v := range row {
			ss += (float64(v) - mean) * (float64(v) - mean)
		}
		rstd := 1 / math.Sqrt(ss/float64(max(d-1, 1))+float64(eps))
		for j, v := range row {
			row[j] = float32((float64(v)-mean)*rstd)*ws[j] + bs[j]
		}
	}
	p.Write(dst, xs)
}

// shiftedAttention writes each query's result one row down (the last row
// twice): an off-by-one in the output rows.
type shiftedAttention struct{ *CPU }

func (p shiftedAttention) Attention(dst, q, k, v backend.Tensor, heads, kvHeads int, causal bool, pos0 int) {
	p.CPU.Attention(dst, q, k, v, heads, kvHeads, causal, pos0)
	out := host(dst).F32()
	w := lastDim(dst)
	for r := len(out)/w - 1; r > 0; r-- {
		copy(out[r*w:(r+1)*w], out[(r-1)*w:r*w])
	}
}

// droppedBias forgets the bias of MatMul.
type droppedBias struct{ *CPU }

func (p droppedBias) MatMul(dst, x, w, bias backend.Tensor) { p.CPU.MatMul(dst, x, w, nil) }

// lastTie breaks ties in the codebook search towards the larger index.
type lastTie struct{ *CPU }

func (p lastTie) Nearest(idx []int32, best, margin []float32, x, codebook backend.Tensor, norms []float32) {
	p.CPU.Nearest(idx, best, margin, x, codebook, norms)
	cb := host(codebook).ToF32()
	d := host(codebook).Dim(1)
	for t := range idx {
		for j := int(idx[t]) + 1; j < len(norms); j++ {
			if slicesEqual(cb[j*d:(j+1)*d], cb[int(idx[t])*d:(int(idx[t])+1)*d]) {
				idx[t] = int32(j)
			}
		}
	}
}

func slicesEqual(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// splitK sums the two halves of K separately and adds them: as accurate, but
// another reduction order, as a thread-count-dependent split would be.
type splitK struct{ *CPU }

func (p splitK) MatMul(dst, x, w, bias backend.Tensor) {
	wt := host(w)
	n, k := wt.Dim(0), wt.Dim(1)
	if k < 2 {
		p.CPU.MatMul(dst, x, w, bias)
		return
	}
	m := x.Shape().Numel() / k
	xs, ws := host(x).F32(), wt.ToF32()
	h := k / 2
	half := func(lo, hi int) (*tensor.Tensor, *tensor.Tensor) {
		xa, wa := tensor.New(tensor.F32, m, hi-lo), tensor.New(tensor.F32, n, hi-lo)
		for i := range m {
			copy(xa.F32()[i*(hi-lo):], xs[i*k+lo:i*k+hi])
		}
		for j := range n {
			copy(wa.F32()[j*(hi-lo):], ws[j*k+lo:j*k+hi])
		}
		return xa, wa
	}
	xa, wa := half(0, h)
	xb, wb := half(h, k)
	p.CPU.MatMul(dst, xa, wa, bias)
	p.CPU.MatMulAdd(dst, xb, wb, 1)
}

func TestSuiteRejectsPlantedBugs(t *testing.T) {
	c := New(2)
	defer c.Close()
	for _, tc := range []struct {
		bug   string
		cfg   backendtest.Config
		check string
	}{
		{"LayerNorm with the unbiased variance", backendtest.Config{B: unbiasedLN{c}}, "LayerNorm"},
		{"Attention rows off by one", backendtest.Config{B: shiftedAttention{c}}, "Attention"},
		{"MatMul drops the bias", backendtest.Config{B: droppedBias{c}}, "MatMul"},
		{"a tie in the codebook search goes to the larger index", backendtest.Config{B: lastTie{c}}, "Nearest"},
		{"a variant sums K in another order", backendtest.Config{B: c, Variants: []backend.Backend{splitK{c}}}, "Determinism"},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			for _, ch := range backendtest.Checks() {
				if ch.Name != tc.check {
					continue
				}
				err := backendtest.Safe(ch, tc.cfg)
				if err == nil {
					t.Fatalf("check %s passed the planted bug", ch.Name)
				}
				t.Logf("rejected: %v", err)
				return
			}
			t.Fatalf("no check named %s", tc.check)
		})
	}
	// And the clean backend passes the checks used above.
	for _, ch := range backendtest.Checks() {
		if err := backendtest.Safe(ch, backendtest.Config{B: c}); err != nil {
			t.Errorf("clean backend: %v", err)
		}
	}
}
