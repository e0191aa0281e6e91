package cpu

import (
	"math"
	"sync"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
)

// qBlock is the number of queries one attention task handles for one head.
const qBlock = 32

type attentionTask struct {
	dst, q, k, v   []float32
	heads, kvHeads int
	d              int // head dimension
	tq, tk         int
	causal         bool
	pos0           int
	qBlocks        int
	scale          float32
}

var attentionTasks = sync.Pool{New: func() any { return new(attentionTask) }}

func (c *CPU) Attention(dst, q, k, v backend.Tensor, heads, kvHeads int, causal bool, pos0 int) {
	ds, qs, ks, vs := f32(dst), f32(q), f32(k), f32(v)
	qd := lastDim(q)
	if heads <= 0 || kvHeads <= 0 || heads%kvHeads != 0 || qd%heads != 0 {
		panic("backend: Attention head counts disagree")
	}
	d := qd / heads
	kvd := kvHeads * d
	if lastDim(k) != kvd || lastDim(v) != kvd || len(ks) != len(vs) || len(ds) != len(qs) {
		panic("backend: Attention shapes disagree")
	}
	tq, tk := len(qs)/qd, len(ks)/kvd
	if causal && pos0+tq > tk {
		panic("backend: Attention queries reach past the keys")
	}
	if tq == 0 {
		return
	}
	t := attentionTasks.Get().(*attentionTask)
	*t = attentionTask{dst: ds, q: qs, k: ks, v: vs, heads: heads, kvHeads: kvHeads, d: d,
		tq: tq, tk: tk, causal: causal, pos0: pos0, qBlocks: (tq + qBlock - 1) / qBlock,
		scale: float32(1 / math.Sqrt(float64(d)))}
	c.pool.parallel(heads*t.qBlocks, 1, t)
	*t = attentionTask{}
	attentionTasks.Put(t)
}

func (t *attentionTask) run(lo, hi int) {
	buf := getScratch(t.tk)
	defer putScratch(buf)
	scores := *buf
	qd, kvd := t.heads*t.d, t.kvHeads*t.d
	group := t.heads / t.kvHeads
	for b := lo; b < hi; b++ {
		h := b / t.qBlocks
		i0 := (b % t.qBlocks) * qBlock
		i1 := min(i0+qBlock, t.tq)
		kh := (h / group) * t.d
		for i := i0; i < i1; i++ {
			qi := t.q[i*qd+h*t.d : i*qd+(h+1)*t.d]
			n := t.tk
			if t.causal {
				n = t.pos0 + i + 1
			}
			s := scores[:n]
			for j := range s {
				s[j] = asm.Dot(qi, t.k[j*kvd+kh:j*kvd+kh+t.d]) * t.scale
			}
			asm.Softmax(s)
			out := t.dst[i*qd+h*t.d : i*qd+(h+1)*t.d]
			clear(out)
			for j, p := range s {
				asm.Axpy(p, t.v[j*kvd+kh:j*kvd+kh+t.d], out)
			}
		}
	}
}

func (c *CPU) RoPE(x, cos, sin backend.Tensor, heads, pos0 int) {
	xs, cs, ss := f32(x), f32(cos), f32(sin)
	w := lastDim(x)
	if heads <= 0 || w%heads != 0 || (w/heads)%2 != 0 {
		panic("backend: RoPE head size must be even")
	}
	d := w / heads
	if lastDim(cos) != d || lastDim(sin) != d || len(cs) != len(ss) {
		panic("backend: RoPE tables disagree with the head size")
	}
	rows := len(xs) / w
	if (pos0+rows)*d > len(cs) {
		panic("backend: RoPE position past the table")
	}
	half := d / 2
	for r := range rows {
		c := cs[(pos0+r)*d : (pos0+r+1)*d]
		s := ss[(pos0+r)*d : (pos0+r+1)*d]
		for h := range heads {
			v := xs[r*w+h*d : r*w+(h+1)*d]
			for i := range half {
				x1, x2 := v[i], v[i+half]
				// x·cos + rotate_half(x)·sin, each product rounded as in the reference.
				v[i] = float32(x1*c[i]) - float32(x2*s[i])
				v[i+half] = float32(x2*c[i+half]) + float32(x1*s[i+half])
			}
		}
	}
}
