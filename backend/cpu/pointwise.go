package cpu

import (
	"math"
	"sync"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
)

// pointwise covers the row-parallel ops: AddScaled, Mul, Activate, LayerNorm
// and RMSNorm. Rows of dst are split across threads.
type pointwise struct {
	op       uint8
	dst, a   []float32
	b, c     []float32 // second operand (or norm weight) and norm bias
	cols     int
	scale    float32 // AddScaled's s, or the norm's eps
	act      backend.Activation
	rowBcast bool // b is one row added/multiplied to every row
}

const (
	opAddScaled = iota
	opMul
	opActivate
	opLayerNorm
	opRMSNorm
)

var pointwiseTasks = sync.Pool{New: func() any { return new(pointwise) }}

// run dispatches one pointwise op over rows; cols is the row length.
func (c *CPU) runPointwise(p pointwise) {
	rows := len(p.dst) / p.cols
	t := pointwiseTasks.Get().(*pointwise)
	*t = p
	// Small ops are not worth waking workers for.
	minRows := max(1, 16384/p.cols)
	c.pool.parallel(rows, c.pool.grainFor(rows, minRows), t)
	*t = pointwise{}
	pointwiseTasks.Put(t)
}

func lastDim(t backend.Tensor) int {
	s := t.Shape()
	if len(s) == 0 {
		return 1
	}
	return s[len(s)-1]
}

func (c *CPU) AddScaled(dst, x backend.Tensor, s float32) {
	d, xs := f32(dst), f32(x)
	p := pointwise{op: opAddScaled, dst: d, b: xs, cols: lastDim(dst), scale: s}
	p.rowBcast = len(xs) != len(d)
	if p.rowBcast && len(xs) != p.cols {
		mismatch("AddScaled", "the operand has the wrong size", "dst", dst, "x", x)
	}
	if len(d) == 0 {
		return
	}
	c.runPointwise(p)
}

func (c *CPU) Mul(dst, a, b backend.Tensor) {
	d, as, bs := f32(dst), f32(a), f32(b)
	if len(as) != len(d) {
		mismatch("Mul", "an operand has the wrong size", "dst", dst, "a", a, "b", b)
	}
	p := pointwise{op: opMul, dst: d, a: as, b: bs, cols: lastDim(dst)}
	p.rowBcast = len(bs) != len(d)
	if p.rowBcast && len(bs) != p.cols {
		mismatch("Mul", "an operand has the wrong size", "dst", dst, "a", a, "b", b)
	}
	if len(d) == 0 {
		return
	}
	c.runPointwise(p)
}

func (c *CPU) Activate(dst, x backend.Tensor, f backend.Activation) {
	d, xs := f32(dst), f32(x)
	if len(xs) != len(d) {
		mismatch("Activate", "the operand has the wrong size", "dst", dst, "x", x)
	}
	if f != backend.GELU && f != backend.QuickGELU && f != backend.SiLU {
		panic("backend: unknown activation")
	}
	if len(d) == 0 {
		return
	}
	c.runPointwise(pointwise{op: opActivate, dst: d, a: xs, cols: lastDim(dst), act: f})
}

func (c *CPU) LayerNorm(dst, x, w, b backend.Tensor, eps float32) {
	d, xs, ws := f32(dst), f32(x), f32(w)
	p := pointwise{op: opLayerNorm, dst: d, a: xs, b: ws, cols: lastDim(dst), scale: eps, rowBcast: true}
	if b != nil {
		p.c = f32(b)
	}
	if len(xs) != len(d) || len(ws) != p.cols || (p.c != nil && len(p.c) != p.cols) {
		mismatch("LayerNorm", "shapes disagree", "dst", dst, "x", x, "w", w, "b", b)
	}
	if len(d) == 0 {
		return
	}
	c.runPointwise(p)
}

func (c *CPU) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	d, xs, ws := f32(dst), f32(x), f32(w)
	p := pointwise{op: opRMSNorm, dst: d, a: xs, b: ws, cols: lastDim(dst), scale: eps, rowBcast: true}
	if len(xs) != len(d) || len(ws) != p.cols {
		mismatch("RMSNorm", "shapes disagree", "dst", dst, "x", x, "w", w)
	}
	if len(d) == 0 {
		return
	}
	c.runPointwise(p)
}

func (p *pointwise) run(lo, hi int, _ *scratch) {
	n := p.cols
	for r := lo; r < hi; r++ {
		d := p.dst[r*n : (r+1)*n]
		var b []float32
		if p.b != nil {
			if p.rowBcast {
				b = p.b
			} else {
				b = p.b[r*n : (r+1)*n]
			}
		}
		switch p.op {
		case opAddScaled:
			asm.Axpy(p.scale, b, d)
		case opMul:
			a := p.a[r*n : (r+1)*n]
			for i := range d {
				d[i] = a[i] * b[i]
			}
		case opActivate:
			activate(d, p.a[r*n:(r+1)*n], p.act)
		case opLayerNorm:
			asm.LayerNorm(d, p.a[r*n:(r+1)*n], b, p.c, p.scale)
		case opRMSNorm:
			asm.RMSNorm(d, p.a[r*n:(r+1)*n], b, p.scale)
		}
	}
}

func activate(d, x []float32, f backend.Activation) {
	switch f {
	case backend.GELU:
		for i, v := range x {
			xd := float64(v)
			d[i] = float32(0.5 * xd * (1 + math.Erf(xd*math.Sqrt2/2)))
		}
	case backend.QuickGELU:
		asm.XSigmoid(d, x, 1.702)
	case backend.SiLU:
		asm.XSigmoid(d, x, 1)
	}
}
