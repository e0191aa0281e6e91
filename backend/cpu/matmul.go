package cpu

import (
	"sync"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// Tile sizes of the matrix product: a task computes an mTile × nTile block of
// the output, widening its nTile weight rows once.
const (
	mTile = 64
	nTile = 16
)

type matmulTask struct {
	dst, x, bias []float32
	acc          bool // dst += scale·x·wᵀ instead of dst = x·wᵀ + bias
	scale        float32
	w            *tensor.Tensor
	m, n, k      int
	nBlocks      int
}

var matmulTasks = sync.Pool{New: func() any { return new(matmulTask) }}

func (c *CPU) MatMul(dst, x, w, bias backend.Tensor) { c.matmul(dst, x, w, bias, false, 1) }

func (c *CPU) MatMulAdd(dst, x, w backend.Tensor, s float32) { c.matmul(dst, x, w, nil, true, s) }

func (c *CPU) matmul(dst, x, w, bias backend.Tensor, acc bool, scale float32) {
	wt := host(w)
	xs := f32(x)
	ds := f32(dst)
	if len(wt.Shape()) != 2 {
		panic("backend: MatMul weight must be 2-D")
	}
	n, k := wt.Dim(0), wt.Dim(1)
	if k == 0 || len(xs)%k != 0 {
		panic("backend: MatMul inner dimensions disagree")
	}
	m := len(xs) / k
	if len(ds) != m*n {
		panic("backend: MatMul output has the wrong size")
	}
	t := matmulTasks.Get().(*matmulTask)
	*t = matmulTask{dst: ds, x: xs, w: wt, m: m, n: n, k: k, nBlocks: (n + nTile - 1) / nTile, acc: acc, scale: scale}
	if bias != nil {
		t.bias = f32(bias)
		if len(t.bias) != n {
			panic("backend: MatMul bias has the wrong size")
		}
	}
	mBlocks := (m + mTile - 1) / mTile
	c.pool.parallel(mBlocks*t.nBlocks, 1, t)
	*t = matmulTask{}
	matmulTasks.Put(t)
}

func (t *matmulTask) run(lo, hi int) {
	buf := getScratch(nTile * t.k)
	defer putScratch(buf)
	for b := lo; b < hi; b++ {
		m0 := (b / t.nBlocks) * mTile
		n0 := (b % t.nBlocks) * nTile
		m1, n1 := min(m0+mTile, t.m), min(n0+nTile, t.n)
		rows := t.weightRows(n0, n1, *buf)
		for i := m0; i < m1; i++ {
			xi := t.x[i*t.k : (i+1)*t.k]
			out := t.dst[i*t.n : (i+1)*t.n]
			for j := n0; j < n1; j++ {
				s := asm.Dot(xi, rows[(j-n0)*t.k:(j-n0+1)*t.k])
				switch {
				case t.acc:
					out[j] += t.scale * s
				case t.bias != nil:
					out[j] = s + t.bias[j]
				default:
					out[j] = s
				}
			}
		}
	}
}

// weightRows returns rows [n0, n1) of w as float32, in place for F32 weights
// and widened into buf otherwise.
func (t *matmulTask) weightRows(n0, n1 int, buf []float32) []float32 {
	switch t.w.DType() {
	case tensor.F32:
		return t.w.F32()[n0*t.k : n1*t.k]
	case tensor.F16:
		asm.WidenF16(buf[:(n1-n0)*t.k], t.w.U16()[n0*t.k:n1*t.k])
	case tensor.BF16:
		asm.WidenBF16(buf[:(n1-n0)*t.k], t.w.U16()[n0*t.k:n1*t.k])
	default:
		panic("backend: MatMul weight must be F32, F16 or BF16")
	}
	return buf[:(n1-n0)*t.k]
}
