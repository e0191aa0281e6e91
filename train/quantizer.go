package train

import (
	"github.com/avq/avq/backend"
	"github.com/avq/avq/vq"
)

// The quantizer's forward and backward (docs/alignedvq.md, "Training"):
//
//	U     = Z_in + tanh(γ_in)·Linear_in(Z_in)
//	i_t   = argmin_j ‖U_t − e_j‖²
//	Ẑ_q   = U + sg(e_i − U)                 value e_i, ∂Ẑ_q/∂U = I
//	Z_out = Ẑ_q + tanh(γ_out)·Linear_out(Ẑ_q)
//	L_c   = mean_t ‖U_t − sg(e_{i_t})‖²      (β·L_c in the loss)
//	L_e   = mean_t ‖sg(U_t) − e_{i_t}‖²      (--codebook-update grad only)

// qtape is one image's quantizer pass.
type qtape struct {
	zin, u     backend.Tensor // [T, D]
	linIn      backend.Tensor // Linear_in(Z_in) [T, D]
	zq, linOut backend.Tensor // e_i and Linear_out(e_i) [T, D]
	zout       backend.Tensor // [T, D]
	idx        []int32        // [T]
	uHost      []float32      // U on the host [T, D] (EMA and commitment)
	commit     float64        // Σ_t ‖U_t − e_{i_t}‖² (not yet averaged)
}

// grads are the gradients of the trainable parameters, summed over a batch.
type grads struct {
	wIn, wOut     backend.Tensor // [D, D]
	bIn, bOut     []float64      // [D]
	gIn, gOut     float64        // ∂L/∂γ
	codebook      []float64      // [K, D]; nil unless the codebook trains by gradient
	distill, comm float64        // the batch's loss terms, averaged
}

func newGrads(b backend.Backend, k, d int, codebook bool) *grads {
	g := &grads{wIn: b.New(d, d), wOut: b.New(d, d), bIn: make([]float64, d), bOut: make([]float64, d)}
	if codebook {
		g.codebook = make([]float64, k*d)
	}
	return g
}

// quantize runs the module on Z_in [T, D] (host values).
func quantize(b backend.Backend, m *vq.Module, zin []float32) (*qtape, error) {
	t, d := len(zin)/m.D, m.D
	q := &qtape{zin: b.New(t, d), u: b.New(t, d), linIn: b.New(t, d), zq: b.New(t, d), linOut: b.New(t, d), zout: b.New(t, d)}
	b.Write(q.zin, zin)
	m.In.Linear.Forward(b, q.linIn, q.zin, nil)
	b.Copy(q.u, 0, q.zin)
	b.AddScaled(q.u, q.linIn, m.In.Gate)
	r, err := m.Nearest(b, q.u)
	if err != nil {
		return nil, err
	}
	q.idx = r.Indices
	b.Embed(q.zq, m.Codebook, q.idx)
	m.Out.Linear.Forward(b, q.linOut, q.zq, nil)
	b.Copy(q.zout, 0, q.zq)
	b.AddScaled(q.zout, q.linOut, m.Out.Gate)
	q.uHost = make([]float32, t*d)
	b.Read(q.uHost, q.u)
	zq := make([]float32, t*d)
	b.Read(zq, q.zq)
	for i, u := range q.uHost {
		e := float64(u) - float64(zq[i])
		q.commit += e * e
	}
	return q, nil
}

// backward adds this image's parameter gradients to g, given dZ_out [T, D]
// (consumed). scale is 1/(tokens in the batch): the commitment and codebook
// terms are means over the batch's tokens.
func (q *qtape) backward(b backend.Grad, m *vq.Module, g *grads, dzout backend.Tensor, beta, scale float64) {
	t, d := len(q.idx), m.D
	// DLP out: ∂γ_out = (1 − g²)·Σ dZ_out ⊙ Linear_out(Ẑ_q); with δ = g·dZ_out,
	// ∂b_out = Σ_t δ_t, ∂W_out = δᵀ·Ẑ_q, dẐ_q = dZ_out + δ·W_out.
	gate := float64(m.Out.Gate)
	g.gOut += (1 - gate*gate) * dot(b, dzout, q.linOut)
	delta := b.New(t, d)
	b.AddScaled(delta, dzout, m.Out.Gate)
	sumRows(b, g.bOut, delta)
	b.MatMulTN(g.wOut, delta, q.zq, true)
	du := dzout
	b.MatMulNN(du, delta, m.Out.Linear.Weight, true)
	// Straight through, plus β·∂L_c/∂U = 2β·scale·(U − e_i).
	diff := b.New(t, d)
	b.Copy(diff, 0, q.u)
	b.AddScaled(diff, q.zq, -1)
	b.AddScaled(du, diff, float32(2*beta*scale))
	// DLP in: the same with dU, Linear_in(Z_in) and Z_in.
	gate = float64(m.In.Gate)
	g.gIn += (1 - gate*gate) * dot(b, du, q.linIn)
	delta = b.New(t, d)
	b.AddScaled(delta, du, m.In.Gate)
	sumRows(b, g.bIn, delta)
	b.MatMulTN(g.wIn, delta, q.zin, true)
	if g.codebook != nil { // ∂L_e/∂e_j = 2·scale·Σ_{t: i_t = j} (e_j − U_t)
		h := make([]float32, t*d)
		b.Read(h, diff)
		for tok, j := range q.idx {
			row := g.codebook[int(j)*d : (int(j)+1)*d]
			for c := range d {
				row[c] -= 2 * scale * float64(h[tok*d+c])
			}
		}
	}
}

// dot is Σ a ⊙ b over two equally shaped tensors, in float64 in element
// order.
func dot(b backend.Backend, x, y backend.Tensor) float64 {
	n := x.Shape().Numel()
	xs, ys := make([]float32, n), make([]float32, n)
	b.Read(xs, x)
	b.Read(ys, y)
	var s float64
	for i := range xs {
		s += float64(xs[i]) * float64(ys[i])
	}
	return s
}

// sumRows adds the column sums of x [T, D] to dst [D], row by row.
func sumRows(b backend.Backend, dst []float64, x backend.Tensor) {
	h := make([]float32, x.Shape().Numel())
	b.Read(h, x)
	d := len(dst)
	for r := 0; r < len(h); r += d {
		for c, v := range h[r : r+d] {
			dst[c] += float64(v)
		}
	}
}
