package cpu

import (
	"fmt"
	"math"
	"sync"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
)

// Attention runs one task per head. With several queries, a head is two
// matrix products on the GEMM micro-kernel: its keys are packed once as
// panels of Kᵀ and its values as panels of V, then each block of qBlockTiles
// MR-row query tiles computes S = q·kᵀ/√d, a softmax per row, and S·v. A
// single query (one decoding step) is two GEMVs and a softmax instead: there
// is nothing to reuse, and the cache is read once either way.
const qBlockTiles = 4

type attentionTask struct {
	g              asm.Gemm
	dst, q, k, v   []float32
	heads, kvHeads int
	d              int // head dimension
	tq, tk         int // queries; keys any query may see
	causal         bool
	pos0           int
	scale          float32
}

var attentionTasks = sync.Pool{New: func() any { return new(attentionTask) }}

func (c *CPU) Attention(dst, q, k, v backend.Tensor, heads, kvHeads int, causal bool, pos0 int) {
	ds, qs, ks, vs := f32(dst), f32(q), f32(k), f32(v)
	qd := lastDim(q)
	if heads <= 0 || kvHeads <= 0 || heads%kvHeads != 0 || qd%heads != 0 {
		mismatch("Attention", fmt.Sprintf("%d heads, %d kv heads", heads, kvHeads), "q", q, "k", k)
	}
	d := qd / heads
	kvd := kvHeads * d
	if lastDim(k) != kvd || lastDim(v) != kvd || len(ks) != len(vs) || len(ds) != len(qs) {
		mismatch("Attention", fmt.Sprintf("shapes disagree for %d heads, %d kv heads", heads, kvHeads), "q", q, "k", k, "v", v, "dst", dst)
	}
	tq, tk := len(qs)/qd, len(ks)/kvd
	if causal && pos0+tq > tk {
		mismatch("Attention", fmt.Sprintf("causal queries from position %d reach past the keys", pos0), "q", q, "k", k)
	}
	if tq == 0 {
		return
	}
	if causal {
		tk = pos0 + tq // the rest of a KV cache is not looked at
	}
	t := attentionTasks.Get().(*attentionTask)
	*t = attentionTask{g: asm.GemmKernel(), dst: ds, q: qs, k: ks, v: vs, heads: heads, kvHeads: kvHeads,
		d: d, tq: tq, tk: tk, causal: causal, pos0: pos0, scale: float32(1 / math.Sqrt(float64(d)))}
	c.pool.parallel(heads, 1, t)
	*t = attentionTask{}
	attentionTasks.Put(t)
}

func (t *attentionTask) run(lo, hi int, s *scratch) {
	for h := lo; h < hi; h++ {
		if t.tq == 1 {
			t.single(h, s)
		} else {
			t.blocked(h, s)
		}
	}
}

// visible is the number of keys query i sees.
func (t *attentionTask) visible(i int) int {
	if t.causal {
		return t.pos0 + i + 1
	}
	return t.tk
}

// single is one query of head h: s_j = q·k_j/√d, p = softmax(s), out = Σ p_j v_j,
// as two GEMVs over the head's rows of the cache (stride kvd): one kernel
// call each, not one per key.
func (t *attentionTask) single(h int, s *scratch) {
	d, kvd := t.d, t.kvHeads*t.d
	kh := h / (t.heads / t.kvHeads) * d
	n := t.visible(0)
	scores := s.floats(n)
	asm.GemvF32(scores, t.k[kh:], kvd, t.q[h*d:(h+1)*d])
	for j := range scores {
		scores[j] *= t.scale
	}
	asm.Softmax(scores)
	out := t.dst[h*d : (h+1)*d]
	clear(out)
	asm.GemvT(out, t.v[kh:], kvd, scores)
}

// blocked is head h for several queries, on the GEMM micro-kernel.
func (t *attentionTask) blocked(h int, s *scratch) {
	g := t.g
	mr, nr := g.MR, g.NR
	d, qd, kvd := t.d, t.heads*t.d, t.kvHeads*t.d
	kh := h / (t.heads / t.kvHeads) * d
	kPanels := (t.tk + nr - 1) / nr
	vPanels := (d + nr - 1) / nr
	tkPad := kPanels * nr
	qb := qBlockTiles * mr
	buf := s.floats(kPanels*nr*d + vPanels*nr*t.tk + qb*tkPad + mr*d + mr*nr)
	kp, buf := buf[:kPanels*nr*d], buf[kPanels*nr*d:]
	vp, buf := buf[:vPanels*nr*t.tk], buf[vPanels*nr*t.tk:]
	sc, buf := buf[:qb*tkPad], buf[qb*tkPad:]
	qTail, cTail := buf[:mr*d], buf[mr*d:]

	// Kᵀ panels: panel p holds keys p·NR…, kc = d. V panels: panel c holds
	// dimensions c·NR…, kc = tk.
	for p := range kPanels {
		j0 := p * nr
		g.PackT(kp[p*nr*d:(p+1)*nr*d], t.k[j0*kvd+kh:], kvd, min(nr, t.tk-j0), d)
	}
	for c := range vPanels {
		g.PackN(vp[c*nr*t.tk:(c+1)*nr*t.tk], t.v[kh+c*nr:], kvd, min(nr, d-c*nr), t.tk)
	}
	for i0 := 0; i0 < t.tq; i0 += qb {
		i1 := min(i0+qb, t.tq)
		nk := t.visible(i1 - 1) // keys the block's last query sees
		np := (nk + nr - 1) / nr
		// S[i−i0, :] = q_i·Kᵀ/√d, MR rows at a time.
		for r0 := i0; r0 < i1; r0 += mr {
			a, lda := t.q[r0*qd+h*d:], qd
			if rows := min(mr, i1-r0); rows < mr {
				a, lda = qTail, d
				clear(a)
				for i := range rows {
					copy(a[i*d:(i+1)*d], t.q[(r0+i)*qd+h*d:])
				}
			}
			for p := range np {
				g.Tile(d, a, lda, kp[p*nr*d:(p+1)*nr*d], sc[(r0-i0)*tkPad+p*nr:], tkPad, t.scale, false)
			}
		}
		// P = softmax(S) over the keys each query sees; zero elsewhere and in
		// the padding rows, so that S·v only sums what it should.
		for r := 0; r < (i1-i0+mr-1)/mr*mr; r++ {
			row := sc[r*tkPad : r*tkPad+np*nr]
			n := 0
			if i0+r < i1 {
				n = t.visible(i0 + r)
				asm.Softmax(row[:n])
			}
			clear(row[n:])
		}
		// out[i, h·d + c] = Σ_j P[i, j]·v[j, c]
		for r0 := i0; r0 < i1; r0 += mr {
			rows := min(mr, i1-r0)
			a := sc[(r0-i0)*tkPad:]
			for c := range vPanels {
				cols := min(nr, d-c*nr)
				panel := vp[c*nr*t.tk : c*nr*t.tk+nr*nk]
				out := t.dst[r0*qd+h*d+c*nr:]
				if rows == mr && cols == nr {
					g.Tile(nk, a, tkPad, panel, out, qd, 1, false)
					continue
				}
				g.Tile(nk, a, tkPad, panel, cTail, nr, 1, false)
				for i := range rows {
					copy(out[i*qd:i*qd+cols], cTail[i*nr:i*nr+cols])
				}
			}
		}
	}
}

func (c *CPU) RoPE(x, cos, sin backend.Tensor, heads, pos0 int) {
	xs, cs, ss := f32(x), f32(cos), f32(sin)
	w := lastDim(x)
	if heads <= 0 || w%heads != 0 || (w/heads)%2 != 0 {
		mismatch("RoPE", fmt.Sprintf("the head size of %d heads must be even", heads), "x", x)
	}
	d := w / heads
	if lastDim(cos) != d || lastDim(sin) != d || len(cs) != len(ss) {
		mismatch("RoPE", "the tables disagree with the head size", "x", x, "cos", cos, "sin", sin)
	}
	rows := len(xs) / w
	if (pos0+rows)*d > len(cs) {
		mismatch("RoPE", fmt.Sprintf("positions from %d run past the tables", pos0), "x", x, "cos", cos)
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
