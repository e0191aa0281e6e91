package vq

import (
	"fmt"
	"math"

	"github.com/avq/avq/backend"
)

// What training needs of a loaded module: the argmin on given quantizer
// inputs, and updates of its parameters that keep the cached norms, the
// fingerprint and the gate consistent with the new values.

// Nearest maps quantizer inputs u [N, D] (DLP_in already applied) to their
// codes, as Quantize does after DLP_in.
func (m *Module) Nearest(b backend.Backend, u backend.Tensor) (*Quantized, error) {
	n, err := m.rows(u)
	if err != nil {
		return nil, err
	}
	q := &Quantized{Indices: make([]int32, n), ScoreBest: make([]float32, n), Margin: make([]float32, n)}
	nearest(b, b.Reshape(u, n, m.D), n, m.Codebook, m.norms, q.Indices, q.ScoreBest, q.Margin)
	for t, s := range q.ScoreBest {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("vq: %s: token %d: quantizer input is not finite (score %v)", m.Path, t, s)
		}
	}
	return q, nil
}

// SetCodebook replaces the codebook's values with cb [K, D] (copied) and
// refreshes the norm vector and the fingerprint.
func (m *Module) SetCodebook(b backend.Backend, cb []float32) {
	if len(cb) != m.K*m.D {
		panic("vq: SetCodebook values are not [K, D]")
	}
	m.codebook = append(m.codebook[:0], cb...)
	m.norms = rowNorms(m.codebook, m.K, m.D)
	m.Fingerprint = fingerprint(m.codebook)
	b.Write(m.Codebook, m.codebook)
}

// CodebookValues returns a copy of the codebook [K, D].
func (m *Module) CodebookValues() []float32 { return append([]float32(nil), m.codebook...) }

// SetDLP replaces both DLP sides' weights, biases and gates. The module
// must have a DLP (load one with identity gates to train from none).
func (m *Module) SetDLP(b backend.Backend, in, out *DLPData) {
	if m.In == nil || m.Out == nil {
		panic("vq: SetDLP on a module without DLP tensors")
	}
	for _, s := range []struct {
		p *DLP
		v *DLPData
	}{{m.In, in}, {m.Out, out}} {
		b.Write(s.p.Linear.Weight, s.v.Weight)
		b.Write(s.p.Linear.Bias, s.v.Bias)
		s.p.Gamma, s.p.Gate = s.v.Gamma, float32(math.Tanh(float64(s.v.Gamma)))
	}
}

// Data returns the module's values on the host, as WriteModule takes them.
func (m *Module) Data(b backend.Backend) *ModuleData {
	read := func(t backend.Tensor) []float32 {
		v := make([]float32, t.Shape().Numel())
		b.Read(v, t)
		return v
	}
	md := &ModuleData{Block: m.Block, Site: m.Site, Codebook: m.CodebookValues(), K: m.K, D: m.D}
	if m.In != nil {
		md.DLPIn = &DLPData{Weight: read(m.In.Linear.Weight), Bias: read(m.In.Linear.Bias), Gamma: m.In.Gamma}
		md.DLPOut = &DLPData{Weight: read(m.Out.Linear.Weight), Bias: read(m.Out.Linear.Bias), Gamma: m.Out.Gamma}
	}
	if m.Scale != nil {
		md.Scale, md.Shift = read(m.Scale), read(m.Shift)
	}
	return md
}
