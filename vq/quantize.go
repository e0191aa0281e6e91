package vq

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/avq/avq/backend"
)

// Quantized is the edge's result for N tokens.
type Quantized struct {
	Indices   []int32   // [N] the chosen codes
	ScoreBest []float32 // [N] ‖e_i‖² − 2⟨U, e_i⟩ of the chosen code
	Margin    []float32 // [N] second-best minus best score; +Inf when K = 1
}

// rows is the token count of features z, which must be [..., D].
func (m *Module) rows(z backend.Tensor) (int, error) {
	s := z.Shape()
	if len(s) == 0 || s[len(s)-1] != m.D {
		return 0, fmt.Errorf("vq: %s: features of shape %v, want [N, %d]", m.Path, s, m.D)
	}
	return s.Numel() / m.D, nil
}

// forward adds Gate·Linear(x) to dst; x and dst are [n, d] and must not alias.
func (p *DLP) forward(b backend.Backend, dst, x backend.Tensor, n, d int) {
	t := b.New(n, d)
	p.Linear.Forward(b, t, x, nil)
	b.AddScaled(dst, t, p.Gate)
}

// DLPIn returns U = Z + tanh(γ_in)·Linear_in(Z) as a new [N, D] tensor (a
// copy of z when the module has no DLP). z must be [..., D]; anything else is
// a programmer error.
func (m *Module) DLPIn(b backend.Backend, z backend.Tensor) backend.Tensor {
	n, err := m.rows(z)
	if err != nil {
		panic("vq: DLPIn features are not [N, D]")
	}
	z = b.Reshape(z, n, m.D)
	u := b.New(n, m.D)
	b.Copy(u, 0, z)
	if m.In != nil {
		m.In.forward(b, u, z, n, m.D)
	}
	return u
}

// Quantize maps features z [N, D] (the site's output) to codebook indices:
// U = DLP_in(z), then i_t = argmin_j ‖e_j‖² − 2⟨U_t, e_j⟩ in fp32, ties to the
// smallest index, by the backend's Nearest op over U, the codebook and the
// cached norm vector.
func (m *Module) Quantize(b backend.Backend, z backend.Tensor) (*Quantized, error) {
	n, err := m.rows(z)
	if err != nil {
		return nil, err
	}
	u := b.Reshape(z, n, m.D)
	if m.In != nil {
		u = m.DLPIn(b, u)
	}
	q := &Quantized{Indices: make([]int32, n), ScoreBest: make([]float32, n), Margin: make([]float32, n)}
	nearest(b, u, n, m.Codebook, m.norms, q.Indices, q.ScoreBest, q.Margin)
	for t, s := range q.ScoreBest {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("vq: %s: token %d: features are not finite (score %v)", m.Path, t, s)
		}
	}
	return q, nil
}

// Dequantize rebuilds Z_out = e[i] + tanh(γ_out)·Linear_out(e[i]) as a new
// [N, D] tensor. Every index must be below K.
func (m *Module) Dequantize(b backend.Backend, indices []int32) (backend.Tensor, error) {
	for t, i := range indices {
		if i < 0 || int(i) >= m.K {
			return nil, fmt.Errorf("vq: %s: index %d at token %d is outside the codebook of %d entries", m.Path, i, t, m.K)
		}
	}
	n := len(indices)
	zq := b.New(n, m.D)
	b.Embed(zq, m.Codebook, indices)
	if m.Out == nil {
		return zq, nil
	}
	out := b.New(n, m.D)
	b.Copy(out, 0, zq)
	m.Out.forward(b, out, zq, n, m.D)
	return out, nil
}

// Residual rebuilds the residual stream x̂ = scale ⊙ Z_out + shift as a new
// [N, D] tensor. Only modules of sites ln1 and ln2 have the affine map; on
// others it is a programmer error.
func (m *Module) Residual(b backend.Backend, zout backend.Tensor) backend.Tensor {
	if m.Scale == nil {
		panic("vq: Residual on a module without residual.scale (site attn or ffn)")
	}
	n, err := m.rows(zout)
	if err != nil {
		panic("vq: Residual input is not [N, D]")
	}
	out := b.New(n, m.D)
	b.Copy(out, 0, b.Reshape(zout, n, m.D))
	b.Mul(out, out, m.Scale)
	b.AddScaled(out, m.Shift, 1)
	return out
}

// nearest writes, for each row t of x [n, D], the index of the code with the
// smallest score s_j = norms_j − 2⟨x_t, e_j⟩ (fp32, ties to the smallest j),
// that score, and (when margin is not nil) the second-best score minus it:
// the backend's Nearest op.
func nearest(b backend.Backend, x backend.Tensor, n int, codebook backend.Tensor, norms []float32, idx []int32, best, margin []float32) {
	b.Nearest(idx, best, margin, b.Reshape(x, n, x.Shape().Numel()/max(n, 1)), codebook, norms)
}

// threadsOf is the backend's thread count when it reports one (the CPU
// backend does), so host loops use as many threads as the backend's ops.
func threadsOf(b backend.Backend) int {
	if t, ok := b.(interface{ Threads() int }); ok && t.Threads() > 0 {
		return t.Threads()
	}
	return runtime.GOMAXPROCS(0)
}

// parallelFor runs fn over [0, n) split into contiguous ranges, one per
// thread; cost is the work per item, so small loops run inline. Results must
// not depend on the split: callers write disjoint outputs per item.
func parallelFor(threads, n, cost int, fn func(lo, hi int)) {
	const minWork = 1 << 15
	parts := min(threads, n, max(1, n*cost/minWork))
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*n/parts, (p+1)*n/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
