package cpu

import (
	"math"
	"sync"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
)

var _ backend.Grad = (*CPU)(nil)

// The backward GEMMs run on the forward's micro-kernel: dx = dy·W packs
// panels of W as stored ([Out, In] is the [K, N] of this product, PackN),
// and dW = dyᵀ·x packs x the same way and reads dy through MR-row tiles of
// dyᵀ gathered per K chunk — no operand is ever transposed whole. The task
// grid and the K chunks are the forward's, so each element's sum runs in an
// order fixed by K alone.
type gemmNTask struct {
	g       asm.Gemm
	dst     []float32
	a, b    []float32 // A: [M, K] (or [K, M] with transA); B: [K, N]
	transA  bool
	acc     bool
	m, n, k int
	mc, nc  int
	mBlocks int
	nBlocks int
}

var gemmNTasks = sync.Pool{New: func() any { return new(gemmNTask) }}

func (c *CPU) MatMulNN(dst, x, w backend.Tensor, acc bool) {
	ws := host(w).Shape()
	if len(ws) != 2 {
		panic("backend: MatMulNN weight must be 2-D")
	}
	xs, ds := f32(x), f32(dst)
	k, n := ws[0], ws[1]
	if k == 0 || len(xs)%k != 0 || len(ds) != len(xs)/k*n {
		panic("backend: MatMulNN shapes disagree")
	}
	c.gemmN(ds, xs, f32(w), len(xs)/k, n, k, false, acc)
}

func (c *CPU) MatMulTN(dst, a, x backend.Tensor, acc bool) {
	as, xs, ds := f32(a), f32(x), f32(dst)
	n, k := lastDim(a), lastDim(x)
	if n == 0 || k == 0 || len(as)/n != len(xs)/k || len(ds) != n*k {
		panic("backend: MatMulTN shapes disagree")
	}
	// dst[N,K] = aᵀ·x: the product's A is aᵀ (rows of a are its columns),
	// its inner dimension the M rows of a and x.
	c.gemmN(ds, as, xs, n, k, len(as)/n, true, acc)
}

func (c *CPU) gemmN(dst, a, b []float32, m, n, k int, transA, acc bool) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			clear(dst)
		}
		return
	}
	t := gemmNTasks.Get().(*gemmNTask)
	*t = gemmNTask{g: asm.GemmKernel(), dst: dst, a: a, b: b, transA: transA, acc: acc, m: m, n: n, k: k}
	mt := matmulTask{g: t.g, m: m, n: n}
	mt.split(c.pool.threads)
	t.mc, t.nc, t.mBlocks, t.nBlocks = mt.mc, mt.nc, mt.mBlocks, mt.nBlocks
	c.pool.parallel(t.mBlocks*t.nBlocks, 1, t)
	*t = gemmNTask{}
	gemmNTasks.Put(t)
}

func (t *gemmNTask) run(lo, hi int, s *scratch) {
	for blk := lo; blk < hi; blk++ {
		m0, n0 := (blk/t.nBlocks)*t.mc, (blk%t.nBlocks)*t.nc
		t.block(m0, min(m0+t.mc, t.m), n0, min(n0+t.nc, t.n), s)
	}
}

// block computes C[m0:m1, n0:n1] in the forward's K chunks.
func (t *gemmNTask) block(m0, m1, n0, n1 int, s *scratch) {
	g, k, n := t.g, t.k, t.n
	mr, nr := g.MR, g.NR
	panels := (n1 - n0 + nr - 1) / nr
	chunks := max(1, (k+kcBlock/2)/kcBlock)
	kcMax := (k + chunks - 1) / chunks
	buf := s.floats(panels*nr*kcMax + mr*kcMax + mr*nr)
	packed := buf[:panels*nr*kcMax]
	aTail := buf[len(packed) : len(packed)+mr*kcMax]
	cTail := buf[len(packed)+len(aTail):]
	for k0 := 0; k0 < k; k0 += kcMax {
		kc := min(kcMax, k-k0)
		for p := range panels {
			j0 := n0 + p*nr
			g.PackN(packed[p*nr*kc:(p+1)*nr*kc], t.b[k0*n+j0:], n, min(nr, n1-j0), kc)
		}
		load := k0 > 0 || t.acc
		for i0 := m0; i0 < m1; i0 += mr {
			rows := min(mr, m1-i0)
			a, lda := t.tileA(aTail[:mr*kc], i0, rows, k0, kc)
			for p := range panels {
				j0 := n0 + p*nr
				cols := min(nr, n1-j0)
				panel := packed[p*nr*kc : (p+1)*nr*kc]
				if rows == mr && cols == nr {
					g.Tile(kc, a, lda, panel, t.dst[i0*n+j0:], n, 1, load)
					continue
				}
				if load {
					for i := range rows {
						copy(cTail[i*nr:i*nr+cols], t.dst[(i0+i)*n+j0:])
					}
				}
				tile(g, rows, kc, a, lda, panel, cTail, 1, load)
				for i := range rows {
					copy(t.dst[(i0+i)*n+j0:(i0+i)*n+j0+cols], cTail[i*nr:i*nr+cols])
				}
			}
		}
	}
}

// tileA returns rows [i0, i0+rows) of A, columns [k0, k0+kc), as the
// micro-kernel reads them: in place when A is stored row-major and the tile
// is whole, else gathered into buf (MR rows of kc, zero past the last row).
func (t *gemmNTask) tileA(buf []float32, i0, rows, k0, kc int) ([]float32, int) {
	mr := t.g.MR
	if !t.transA && rows == mr {
		return t.a[i0*t.k+k0:], t.k
	}
	clear(buf)
	for i := range rows {
		row := buf[i*kc : (i+1)*kc]
		if t.transA { // A[i, kk] = a[kk, i], a stored [K, M]
			for kk := range kc {
				row[kk] = t.a[(k0+kk)*t.m+i0+i]
			}
		} else {
			copy(row, t.a[(i0+i)*t.k+k0:])
		}
	}
	return buf, kc
}

// rowsTask runs fn over rows in parallel.
type rowsTask func(lo, hi int, s *scratch)

func (f rowsTask) run(lo, hi int, s *scratch) { f(lo, hi, s) }

func (c *CPU) LayerNormBackward(dx, dy, x, w backend.Tensor, eps float32) {
	dxs, dys, xs, ws := f32(dx), f32(dy), f32(x), f32(w)
	n := len(ws)
	if n == 0 || lastDim(x) != n || len(dys) != len(xs) || len(dxs) != len(xs) {
		panic("backend: LayerNormBackward shapes disagree")
	}
	rows := len(xs) / n
	c.pool.parallel(rows, c.pool.grainFor(rows, max(1, 4096/n)), rowsTask(func(lo, hi int, _ *scratch) {
		for r := lo; r < hi; r++ {
			xr, gr, dr := xs[r*n:(r+1)*n], dys[r*n:(r+1)*n], dxs[r*n:(r+1)*n]
			var sum float64
			for _, v := range xr {
				sum += float64(v)
			}
			mean := sum / float64(n)
			var ss float64
			for _, v := range xr {
				d := float64(v) - mean
				ss += d * d
			}
			rstd := 1 / math.Sqrt(ss/float64(n)+float64(eps))
			var mg, mgx float64 // mean(g), mean(g ⊙ x̂)
			for i, v := range xr {
				g := float64(gr[i]) * float64(ws[i])
				mg += g
				mgx += g * (float64(v) - mean) * rstd
			}
			mg /= float64(n)
			mgx /= float64(n)
			for i, v := range xr {
				g := float64(gr[i]) * float64(ws[i])
				xh := (float64(v) - mean) * rstd
				dr[i] = float32(rstd * (g - mg - xh*mgx))
			}
		}
	}))
}

func (c *CPU) ActivateBackward(dx, dy, x backend.Tensor, f backend.Activation) {
	dxs, dys, xs := f32(dx), f32(dy), f32(x)
	if len(dxs) != len(xs) || len(dys) != len(xs) {
		panic("backend: ActivateBackward shapes disagree")
	}
	var df func(x float64) float64
	switch f {
	case backend.GELU: // d/dx x·Φ(x) = Φ(x) + x·φ(x)
		df = func(x float64) float64 {
			return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
		}
	case backend.QuickGELU: // d/dx x·σ(ax) = σ(ax)·(1 + ax·(1 − σ(ax)))
		df = func(x float64) float64 {
			s := 1 / (1 + math.Exp(-1.702*x))
			return s * (1 + 1.702*x*(1-s))
		}
	default:
		panic("backend: ActivateBackward supports gelu and quick_gelu")
	}
	n := len(xs)
	c.pool.parallel(n, c.pool.grainFor(n, 4096), rowsTask(func(lo, hi int, _ *scratch) {
		for i := lo; i < hi; i++ {
			dxs[i] = float32(float64(dys[i]) * df(float64(xs[i])))
		}
	}))
}

func (c *CPU) AttentionBackward(dq, dk, dv, dout, q, k, v backend.Tensor, heads int) {
	dqs, dks, dvs, dos := f32(dq), f32(dk), f32(dv), f32(dout)
	qs, ks, vs := f32(q), f32(k), f32(v)
	dm := lastDim(q)
	if heads <= 0 || dm%heads != 0 || lastDim(k) != dm || lastDim(v) != dm || len(ks) != len(vs) ||
		len(dqs) != len(qs) || len(dos) != len(qs) || len(dks) != len(ks) || len(dvs) != len(vs) {
		panic("backend: AttentionBackward shapes disagree")
	}
	d := dm / heads
	tq, tk := len(qs)/dm, len(ks)/dm
	scale := float32(1 / math.Sqrt(float64(d)))
	c.pool.parallel(heads, 1, rowsTask(func(lo, hi int, s *scratch) {
		buf := s.floats(2 * tk)
		p, dp := buf[:tk], buf[tk:]
		for h := lo; h < hi; h++ {
			off := h * d
			for j := range tk {
				clear(dks[j*dm+off : j*dm+off+d])
				clear(dvs[j*dm+off : j*dm+off+d])
			}
			for i := range tq {
				qi, doi := qs[i*dm+off:i*dm+off+d], dos[i*dm+off:i*dm+off+d]
				// p = softmax(q_i·Kᵀ/√d), dp_j = dout_i·v_j
				asm.GemvF32(p, ks[off:], dm, qi)
				for j := range p {
					p[j] *= scale
				}
				asm.Softmax(p)
				asm.GemvF32(dp, vs[off:], dm, doi)
				var c float64 // Σ_j p_j·dp_j
				for j := range p {
					c += float64(p[j]) * float64(dp[j])
				}
				for j := range p { // dv_j += p_j·dout_i; ds_j = p_j(dp_j − c)
					asm.Axpy(p[j], doi, dvs[j*dm+off:j*dm+off+d])
					dp[j] = p[j] * (dp[j] - float32(c))
				}
				dqi := dqs[i*dm+off : i*dm+off+d]
				clear(dqi)
				asm.GemvT(dqi, ks[off:], dm, dp) // dq_i = Σ_j ds_j k_j /√d
				for c := range dqi {
					dqi[c] *= scale
				}
				for j := range dp { // dk_j += ds_j q_i /√d
					asm.Axpy(dp[j]*scale, qi, dks[j*dm+off:j*dm+off+d])
				}
			}
		}
	}))
}
