package cpu

import (
	"fmt"
	"math"
	"sync"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

var _ backend.Grad = (*CPU)(nil)

// The backward GEMMs run on the forward's micro-kernel: dx = dy·W packs
// panels of W as stored ([Out, In] is the [K, N] of this product, PackN),
// and dW = dyᵀ·x packs x the same way and reads dy through MR-row tiles of
// dyᵀ gathered per K chunk — no operand is ever transposed whole. The task
// grid and the K chunks are the forward's, so each element's sum runs in an
// order fixed by K alone.
//
// gemm is C[M,N] = alpha·op(A)·op(B) (+ C with acc) over strided operands:
// op(A)[i,k] is a[i·lda + k], or a[k·lda + i] with transA; op(B)[k,j] is
// b[k·ldb + j], or b[j·ldb + k] with transB (a Linear weight, PackT).
type gemm struct {
	g                asm.Gemm
	a, b, c          []float32
	b16              []uint16 // B as binary16 (or bfloat16 with bf16) instead of b
	bf16             bool
	lda, ldb, ldc    int
	transA, transB   bool
	acc              bool
	alpha            float32
	m, n, k          int
	mc, nc           int
	mBlocks, nBlocks int
}

var gemmTasks = sync.Pool{New: func() any { return new(gemm) }}

func (c *CPU) MatMulNN(dst, x, w backend.Tensor, acc bool) {
	ws := host(w).Shape()
	if len(ws) != 2 {
		mismatch("MatMulNN", "the weight must be 2-D", "x", x, "w", w)
	}
	xs, ds := f32(x), f32(dst)
	k, n := ws[0], ws[1]
	if k == 0 || len(xs)%k != 0 || len(ds) != len(xs)/k*n {
		mismatch("MatMulNN", "shapes disagree", "dst", dst, "x", x, "w", w)
	}
	p := gemm{a: xs, lda: k, ldb: n, c: ds, ldc: n, m: len(xs) / k, n: n, k: k, acc: acc, alpha: 1}
	switch wt := host(w); wt.DType() {
	case tensor.F32:
		p.b = wt.F32()
	case tensor.F16, tensor.BF16: // widened while packing, as the forward packs them
		p.b16, p.bf16 = wt.U16(), wt.DType() == tensor.BF16
	default:
		mismatch("MatMulNN", "the weight must be F32, F16 or BF16", "w", w)
	}
	c.parallelGemm(p)
}

func (c *CPU) MatMulTN(dst, a, x backend.Tensor, acc bool) {
	as, xs, ds := f32(a), f32(x), f32(dst)
	n, k := lastDim(a), lastDim(x)
	if n == 0 || k == 0 || len(as)/n != len(xs)/k || len(ds) != n*k {
		mismatch("MatMulTN", "shapes disagree", "dst", dst, "a", a, "x", x)
	}
	// dst[N,K] = aᵀ·x: the product's A is aᵀ (rows of a are its columns),
	// its inner dimension the M rows of a and x.
	c.parallelGemm(gemm{a: as, lda: n, transA: true, b: xs, ldb: k, c: ds, ldc: k, m: n, n: k, k: len(as) / n, acc: acc, alpha: 1})
}

// parallelGemm runs p on the forward's task grid.
func (c *CPU) parallelGemm(p gemm) {
	if p.m == 0 || p.n == 0 {
		return
	}
	t := gemmTasks.Get().(*gemm)
	*t = p
	t.g = asm.GemmKernel()
	mt := matmulTask{g: t.g, m: p.m, n: p.n}
	mt.split(c.pool.threads)
	t.mc, t.nc, t.mBlocks, t.nBlocks = mt.mc, mt.nc, mt.mBlocks, mt.nBlocks
	c.pool.parallel(t.mBlocks*t.nBlocks, 1, t)
	*t = gemm{}
	gemmTasks.Put(t)
}

func (t *gemm) run(lo, hi int, s *scratch) {
	for blk := lo; blk < hi; blk++ {
		m0, n0 := (blk/t.nBlocks)*t.mc, (blk%t.nBlocks)*t.nc
		t.block(m0, min(m0+t.mc, t.m), n0, min(n0+t.nc, t.n), s)
	}
}

// block computes C[m0:m1, n0:n1] in the forward's K chunks.
func (t *gemm) block(m0, m1, n0, n1 int, s *scratch) {
	g, k := t.g, t.k
	mr, nr := g.MR, g.NR
	if k == 0 {
		if !t.acc {
			for i := m0; i < m1; i++ {
				clear(t.c[i*t.ldc+n0 : i*t.ldc+n1])
			}
		}
		return
	}
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
			panel, cols := packed[p*nr*kc:(p+1)*nr*kc], min(nr, n1-j0)
			switch {
			case t.transB:
				g.PackT(panel, t.b[j0*t.ldb+k0:], t.ldb, cols, kc)
			case t.b16 != nil:
				t.packN16(panel, j0, cols, k0, kc)
			default:
				g.PackN(panel, t.b[k0*t.ldb+j0:], t.ldb, cols, kc)
			}
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
					g.Tile(kc, a, lda, panel, t.c[i0*t.ldc+j0:], t.ldc, t.alpha, load)
					continue
				}
				if load {
					for i := range rows {
						copy(cTail[i*nr:i*nr+cols], t.c[(i0+i)*t.ldc+j0:])
					}
				}
				tile(g, rows, kc, a, lda, panel, cTail, t.alpha, load)
				for i := range rows {
					copy(t.c[(i0+i)*t.ldc+j0:(i0+i)*t.ldc+j0+cols], cTail[i*nr:i*nr+cols])
				}
			}
		}
	}
}

// packN16 is PackN for a B of 16-bit floats, widened row by row.
func (t *gemm) packN16(panel []float32, j0, cols, k0, kc int) {
	nr := t.g.NR
	for k := range kc {
		dst, src := panel[k*nr:(k+1)*nr], t.b16[(k0+k)*t.ldb+j0:(k0+k)*t.ldb+j0+cols]
		if t.bf16 {
			asm.WidenBF16(dst[:cols], src)
		} else {
			asm.WidenF16(dst[:cols], src)
		}
		clear(dst[cols:])
	}
}

// tileA returns rows [i0, i0+rows) of op(A), columns [k0, k0+kc), as the
// micro-kernel reads them: in place when A is stored row-major and the tile
// is whole, else gathered into buf (MR rows of kc, zero past the last row).
func (t *gemm) tileA(buf []float32, i0, rows, k0, kc int) ([]float32, int) {
	if !t.transA && rows == t.g.MR {
		return t.a[i0*t.lda+k0:], t.lda
	}
	clear(buf)
	for i := range rows {
		row := buf[i*kc : (i+1)*kc]
		if t.transA {
			for kk := range kc {
				row[kk] = t.a[(k0+kk)*t.lda+i0+i]
			}
		} else {
			copy(row, t.a[(i0+i)*t.lda+k0:])
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
		mismatch("LayerNormBackward", "shapes disagree", "dx", dx, "dy", dy, "x", x, "w", w)
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

func (c *CPU) RMSNormBackward(dx, dy, x, w backend.Tensor, eps float32) {
	dxs, dys, xs, ws := f32(dx), f32(dy), f32(x), f32(w)
	n := len(ws)
	if n == 0 || lastDim(x) != n || len(dys) != len(xs) || len(dxs) != len(xs) {
		mismatch("RMSNormBackward", "shapes disagree", "dx", dx, "dy", dy, "x", x, "w", w)
	}
	rows := len(xs) / n
	c.pool.parallel(rows, c.pool.grainFor(rows, max(1, 4096/n)), rowsTask(func(lo, hi int, _ *scratch) {
		for r := lo; r < hi; r++ {
			xr, gr, dr := xs[r*n:(r+1)*n], dys[r*n:(r+1)*n], dxs[r*n:(r+1)*n]
			var ss, mgx float64
			for i, v := range xr {
				ss += float64(v) * float64(v)
				mgx += float64(gr[i]) * float64(ws[i]) * float64(v)
			}
			rs := 1 / math.Sqrt(ss/float64(n)+float64(eps))
			mgx /= float64(n)
			for i, v := range xr {
				g := float64(gr[i]) * float64(ws[i])
				dr[i] = float32(rs * (g - float64(v)*rs*rs*mgx))
			}
		}
	}))
}

func (c *CPU) ActivateBackward(dx, dy, x backend.Tensor, f backend.Activation) {
	dxs, dys, xs := f32(dx), f32(dy), f32(x)
	if len(dxs) != len(xs) || len(dys) != len(xs) {
		mismatch("ActivateBackward", "shapes disagree", "dx", dx, "dy", dy, "x", x)
	}
	var df func(x float64) float64
	sigmoidGrad := func(a float64) func(x float64) float64 { // d/dx x·σ(ax) = σ(ax)·(1 + ax·(1 − σ(ax)))
		return func(x float64) float64 {
			s := 1 / (1 + math.Exp(-a*x))
			return s * (1 + a*x*(1-s))
		}
	}
	switch f {
	case backend.GELU: // d/dx x·Φ(x) = Φ(x) + x·φ(x)
		df = func(x float64) float64 {
			return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
		}
	case backend.QuickGELU:
		df = sigmoidGrad(1.702)
	case backend.SiLU:
		df = sigmoidGrad(1)
	default:
		panic("backend: ActivateBackward of an unknown activation")
	}
	n := len(xs)
	c.pool.parallel(n, c.pool.grainFor(n, 4096), rowsTask(func(lo, hi int, _ *scratch) {
		for i := lo; i < hi; i++ {
			dxs[i] = float32(float64(dys[i]) * df(float64(xs[i])))
		}
	}))
}

func (c *CPU) AttentionBackward(dq, dk, dv, dout, q, k, v backend.Tensor, heads int) {
	c.attentionBackward(dq, dk, dv, dout, q, k, v, heads, heads, false)
}

func (c *CPU) CausalAttentionBackward(dq, dk, dv, dout, q, k, v backend.Tensor, heads, kvHeads int) {
	c.attentionBackward(dq, dk, dv, dout, q, k, v, heads, kvHeads, true)
}

// attentionBackward runs one task per kv head, each head's products on the
// micro-kernel over the head's strided columns (row stride heads·d), with
// P and dP [T, T] held per task; the query heads of a group add their dk
// and dv in order.
func (c *CPU) attentionBackward(dq, dk, dv, dout, q, k, v backend.Tensor, heads, kvHeads int, causal bool) {
	dqs, dks, dvs, dos := f32(dq), f32(dk), f32(dv), f32(dout)
	qs, ks, vs := f32(q), f32(k), f32(v)
	qd := lastDim(q)
	if heads <= 0 || kvHeads <= 0 || heads%kvHeads != 0 || qd%heads != 0 {
		mismatch("AttentionBackward", fmt.Sprintf("%d heads, %d kv heads", heads, kvHeads), "q", q, "k", k)
	}
	d := qd / heads
	kd := kvHeads * d
	if lastDim(k) != kd || lastDim(v) != kd || len(ks) != len(vs) || len(dqs) != len(qs) || len(dos) != len(qs) ||
		len(dks) != len(ks) || len(dvs) != len(vs) {
		mismatch("AttentionBackward", "shapes disagree", "q", q, "k", k, "v", v, "dout", dout, "dq", dq, "dk", dk, "dv", dv)
	}
	tq, tk := len(qs)/qd, len(ks)/kd
	if causal && tq != tk {
		mismatch("AttentionBackward", "causal needs as many keys as queries", "q", q, "k", k)
	}
	if tq == 0 || tk == 0 {
		return
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	g := asm.GemmKernel()
	group := heads / kvHeads
	c.pool.parallel(kvHeads, 1, rowsTask(func(lo, hi int, s *scratch) {
		pm, dp := make([]float32, tq*tk), make([]float32, tq*tk) // P, then dP and dS [Tq, Tk]
		tr := make([]float32, d*tk)                              // dvᵀ, dkᵀ [d, Tk]
		prod := func(p gemm) {
			p.g, p.alpha = g, 1
			p.block(0, p.m, 0, p.n, s)
		}
		for kh := lo; kh < hi; kh++ {
			koff := kh * d
			for h := kh * group; h < (kh+1)*group; h++ {
				off, acc := h*d, h > kh*group
				// P = softmax(q·kᵀ/√d) per row, keys past the query masked when causal
				prod(gemm{a: qs[off:], lda: qd, b: ks[koff:], ldb: kd, transB: true, c: pm, ldc: tk, m: tq, n: tk, k: d})
				for i := range tq {
					row := pm[i*tk : (i+1)*tk]
					seen := row
					if causal {
						seen = row[:i+1]
						clear(row[i+1:])
					}
					for j := range seen {
						seen[j] *= scale
					}
					asm.Softmax(seen)
				}
				// dP = dout·vᵀ; dv = Pᵀ·dout, computed as dvᵀ = doutᵀ·P [d, Tk] so
				// that the gathered operand is the thin one
				prod(gemm{a: dos[off:], lda: qd, b: vs[koff:], ldb: kd, transB: true, c: dp, ldc: tk, m: tq, n: tk, k: d})
				prod(gemm{a: dos[off:], lda: qd, transA: true, b: pm, ldb: tk, c: tr, ldc: tk, m: d, n: tk, k: tq})
				untranspose(dvs[koff:], kd, tr, tk, d, acc)
				// dS = P ⊙ (dP − rowsum(dP ⊙ P)), scaled by 1/√d for both products below
				for i := range tq {
					p, r := pm[i*tk:(i+1)*tk], dp[i*tk:(i+1)*tk]
					var sum float64
					for j := range p {
						sum += float64(p[j]) * float64(r[j])
					}
					for j := range p {
						r[j] = scale * p[j] * (r[j] - float32(sum))
					}
				}
				// dq = dS·k; dk = dSᵀ·q, as dkᵀ = qᵀ·dS
				prod(gemm{a: dp, lda: tk, b: ks[koff:], ldb: kd, c: dqs[off:], ldc: qd, m: tq, n: d, k: tk})
				prod(gemm{a: qs[off:], lda: qd, transA: true, b: dp, ldb: tk, c: tr, ldc: tk, m: d, n: tk, k: tq})
				untranspose(dks[koff:], kd, tr, tk, d, acc)
			}
		}
	}))
}

// untranspose writes (or with acc adds) src [d, t] into the columns [0, d)
// of dst's t rows of stride ld: dst[j·ld + c] (+)= src[c·t + j].
func untranspose(dst []float32, ld int, src []float32, t, d int, acc bool) {
	for j := range t {
		row := dst[j*ld : j*ld+d]
		for c := range row {
			if acc {
				row[c] += src[c*t+j]
			} else {
				row[c] = src[c*t+j]
			}
		}
	}
}
