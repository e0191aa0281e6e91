package cpu

import (
	"sync"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// The matrix product C[M,N] = x[M,K]·W[N,K]ᵀ is blocked the GotoBLAS way, with
// the loops that matter for the caches in this order:
//
//	task (mc rows × nc columns of C)           one per thread at a time
//	  K in chunks of kcBlock                   pack W[n0:n1, k0:k0+kc] into panels (≤ 256 KiB, L2)
//	    rows in steps of MR                    the MR × kc block of x stays in L1
//	      panels in steps of NR                asm micro-kernel: MR × NR of C in registers
//
// W is packed (transposed, and widened from F16/BF16) once per task and K
// chunk; x is read in place. Tasks split N first, since a split of M packs the
// same panels twice; M is split only when N alone gives too few tasks. A
// single row (one decoding step) is a GEMV instead: it streams W once from
// memory, fp16 or fp32 read directly, and nothing is packed.
const (
	kcBlock = 512 // rows of a packed panel, about
	ncBlock = 128 // columns of C per task: a multiple of every NR
	mcBlock = 768 // rows of C per task, at most: a multiple of every MR
	// gemvRows is the most rows of x computed as GEMVs, one per row.
	gemvRows = 1
	// gemvChunks is how many chunks of weight rows a GEMV is split into per
	// thread: few, so that each thread streams long contiguous runs, and
	// more than one, so that a late thread is made up for.
	gemvChunks = 8
)

type matmulTask struct {
	g        asm.Gemm
	dst, x   []float32
	bias     []float32
	acc      bool    // dst += scale·x·wᵀ instead of dst = x·wᵀ + bias
	scale    float32 // alpha of the micro-kernel: scale with acc, else 1
	w        *tensor.Tensor
	m, n, k  int
	mc, nc   int
	mBlocks  int
	nBlocks  int
	gemvOnly bool
}

var matmulTasks = sync.Pool{New: func() any { return new(matmulTask) }}

func (c *CPU) MatMul(dst, x, w, bias backend.Tensor) { c.matmul(dst, x, w, bias, false, 1) }

func (c *CPU) MatMulAdd(dst, x, w backend.Tensor, s float32) { c.matmul(dst, x, w, nil, true, s) }

func (c *CPU) matmul(dst, x, w, bias backend.Tensor, acc bool, scale float32) {
	wt := host(w)
	xs := f32(x)
	ds := f32(dst)
	if len(wt.Shape()) != 2 {
		mismatch("MatMul", "the weight must be 2-D", "x", x, "w", w)
	}
	switch wt.DType() {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		mismatch("MatMul", "the weight must be F32, F16 or BF16", "w", w)
	}
	n, k := wt.Dim(0), wt.Dim(1)
	if k == 0 || len(xs)%k != 0 {
		mismatch("MatMul", "inner dimensions disagree", "x", x, "w", w, "dst", dst)
	}
	m := len(xs) / k
	if len(ds) != m*n {
		mismatch("MatMul", "the output has the wrong size", "x", x, "w", w, "dst", dst)
	}
	t := matmulTasks.Get().(*matmulTask)
	*t = matmulTask{g: asm.GemmKernel(), dst: ds, x: xs, w: wt, m: m, n: n, k: k, acc: acc, scale: 1}
	if acc {
		t.scale = scale
	}
	if bias != nil {
		t.bias = f32(bias)
		if len(t.bias) != n {
			mismatch("MatMul", "the bias has the wrong size", "w", w, "bias", bias)
		}
	}
	switch {
	case m == 0 || n == 0:
	case m <= gemvRows:
		t.gemvOnly = true
		c.pool.parallel(n, max(16, n/(gemvChunks*c.pool.threads)), t)
	default:
		t.split(c.pool.threads)
		c.pool.parallel(t.mBlocks*t.nBlocks, 1, t)
	}
	*t = matmulTask{}
	matmulTasks.Put(t)
}

// split chooses the task grid: columns in blocks of ncBlock, and rows in
// blocks of at most mcBlock, more of them only if the columns give fewer
// than two tasks per thread.
func (t *matmulTask) split(threads int) {
	t.nc = ncBlock
	t.nBlocks = (t.n + t.nc - 1) / t.nc
	t.mBlocks = (t.m + mcBlock - 1) / mcBlock
	if want := 2 * threads; t.nBlocks*t.mBlocks < want {
		t.mBlocks = min((want+t.nBlocks-1)/t.nBlocks, (t.m+t.g.MR-1)/t.g.MR)
	}
	rows := (t.m + t.mBlocks - 1) / t.mBlocks
	t.mc = (rows + t.g.MR - 1) / t.g.MR * t.g.MR
	t.mBlocks = (t.m + t.mc - 1) / t.mc
}

func (t *matmulTask) run(lo, hi int, s *scratch) {
	if t.gemvOnly {
		t.gemv(lo, hi, s)
		return
	}
	for b := lo; b < hi; b++ {
		m0, n0 := (b/t.nBlocks)*t.mc, (b%t.nBlocks)*t.nc
		t.block(m0, min(m0+t.mc, t.m), n0, min(n0+t.nc, t.n), s)
	}
}

// block computes C[m0:m1, n0:n1].
func (t *matmulTask) block(m0, m1, n0, n1 int, s *scratch) {
	g, k, n := t.g, t.k, t.n
	mr, nr := g.MR, g.NR
	panels := (n1 - n0 + nr - 1) / nr
	// K in equal chunks of about kcBlock (at most 1.5·kcBlock), so that no
	// chunk is a short remainder whose tiles are mostly loads and stores.
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
			t.pack(packed[p*nr*kc:(p+1)*nr*kc], j0, min(nr, n1-j0), k0, kc)
		}
		first := k0 == 0
		for i0 := m0; i0 < m1; i0 += mr {
			rows := min(mr, m1-i0)
			a, lda := t.x[i0*k+k0:], k
			if rows < mr { // past the last row: a zero-padded copy
				a, lda = aTail[:mr*kc], kc
				clear(a)
				for i := range rows {
					copy(a[i*kc:(i+1)*kc], t.x[(i0+i)*k+k0:(i0+i)*k+k0+kc])
				}
			}
			for p := range panels {
				j0 := n0 + p*nr
				cols := min(nr, n1-j0)
				load := !first || t.acc
				if first && t.bias != nil {
					for i := range rows {
						copy(t.dst[(i0+i)*n+j0:(i0+i)*n+j0+cols], t.bias[j0:j0+cols])
					}
					load = true
				}
				panel := packed[p*nr*kc : (p+1)*nr*kc]
				if rows == mr && cols == nr {
					g.Tile(kc, a, lda, panel, t.dst[i0*n+j0:], n, t.scale, load)
					continue
				}
				// An edge tile goes through cTail, so the kernel's full
				// MR × NR store stays inside this block.
				if load {
					for i := range rows {
						copy(cTail[i*nr:i*nr+cols], t.dst[(i0+i)*n+j0:])
					}
				}
				tile(g, rows, kc, a, lda, panel, cTail, t.scale, load)
				for i := range rows {
					copy(t.dst[(i0+i)*n+j0:(i0+i)*n+j0+cols], cTail[i*nr:i*nr+cols])
				}
			}
		}
	}
}

// tile computes rows ≤ MR rows of an MR × NR tile into c (stride NR): with
// the kernel set's short tiles when they cover the rows with less work than
// a whole tile (the last row of a 577-token sequence is then 4 rows of work,
// not 12). a holds MR rows (zero past rows), c MR rows.
func tile(g asm.Gemm, rows, kc int, a []float32, lda int, panel, c []float32, alpha float32, load bool) {
	if s := g.MRShort; s > 0 && (rows+s-1)/s*s < g.MR {
		for r0 := 0; r0 < rows; r0 += s {
			g.TileShort(kc, a[r0*lda:], lda, panel, c[r0*g.NR:], g.NR, alpha, load)
		}
		return
	}
	g.Tile(kc, a, lda, panel, c, g.NR, alpha, load)
}

// pack lays out rows [j0, j0+rows) of W, columns [k0, k0+kc), as one panel.
func (t *matmulTask) pack(panel []float32, j0, rows, k0, kc int) {
	off := j0*t.k + k0
	switch t.w.DType() {
	case tensor.F32:
		t.g.PackT(panel, t.w.F32()[off:], t.k, rows, kc)
	case tensor.F16:
		t.g.PackTF16(panel, t.w.U16()[off:], t.k, rows, kc)
	case tensor.BF16:
		t.g.PackTBF16(panel, t.w.U16()[off:], t.k, rows, kc)
	}
}

// gemv computes columns [lo, hi) of every row of C from the weight rows
// directly: fp16 and fp32 by the GEMV kernels, bf16 by dots over a widened
// copy of each row.
func (t *matmulTask) gemv(lo, hi int, s *scratch) {
	k := t.k
	for i := range t.m {
		xi := t.x[i*k : (i+1)*k]
		y := t.dst[i*t.n+lo : i*t.n+hi]
		buf := s.floats(hi - lo + k)
		out, row := y, buf[hi-lo:]
		if t.acc || t.bias != nil {
			out = buf[:hi-lo]
		}
		switch t.w.DType() {
		case tensor.F16:
			asm.GemvF16(out, t.w.U16()[lo*k:hi*k], k, xi)
		case tensor.F32:
			asm.GemvF32(out, t.w.F32()[lo*k:hi*k], k, xi)
		case tensor.BF16:
			w := t.w.U16()
			for r := range out {
				asm.WidenBF16(row, w[(lo+r)*k:(lo+r+1)*k])
				out[r] = asm.Dot(xi, row)
			}
		}
		switch {
		case t.acc:
			asm.Axpy(t.scale, out, y)
		case t.bias != nil:
			for r, v := range out {
				y[r] = v + t.bias[lo+r]
			}
		}
	}
}
