package vit

import (
	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
)

// Block is one pre-LN transformer layer, "encoder.layers.k". Parts that a
// partial load skipped are nil.
type Block struct {
	LayerNorm1 *nn.LayerNorm // "layer_norm1" [D]
	Attn       *Attention    // "self_attn"
	LayerNorm2 *nn.LayerNorm // "layer_norm2" [D]
	MLP        *MLP          // "mlp"
}

// Attention is CLIP's multi-head self-attention, with biases on q, k, v, out.
type Attention struct {
	QProj   *nn.Linear // "q_proj" [D, D]
	KProj   *nn.Linear // "k_proj" [D, D]
	VProj   *nn.Linear // "v_proj" [D, D]
	OutProj *nn.Linear // "out_proj" [D, D]
	Heads   int
}

// MLP is fc2(act(fc1(x))).
type MLP struct {
	FC1 *nn.Linear // "fc1" [I, D]
	FC2 *nn.Linear // "fc2" [D, I]
	Act backend.Activation
}

// loadSegment loads the part of block w that computes the segment ending at
// site s.
func (blk *Block) loadSegment(w *nn.Weights, cfg Config, s Site) {
	d, eps := cfg.HiddenSize, cfg.LayerNormEps
	switch s {
	case SiteLN1:
		blk.LayerNorm1 = w.LayerNorm("layer_norm1", d, eps)
	case SiteAttn:
		a := w.Sub("self_attn")
		blk.Attn = &Attention{
			QProj:   a.Linear("q_proj", d, d, true),
			KProj:   a.Linear("k_proj", d, d, true),
			VProj:   a.Linear("v_proj", d, d, true),
			OutProj: a.Linear("out_proj", d, d, true),
			Heads:   cfg.NumAttentionHeads,
		}
	case SiteLN2:
		blk.LayerNorm2 = w.LayerNorm("layer_norm2", d, eps)
	case SiteFFN:
		act, _ := cfg.activation()
		m := w.Sub("mlp")
		blk.MLP = &MLP{FC1: m.Linear("fc1", d, cfg.IntermediateSize, true),
			FC2: m.Linear("fc2", cfg.IntermediateSize, d, true), Act: act}
	}
}

// Forward: dst = out_proj(softmax(q·kᵀ/√d)·v), q, k, v = proj(x). [T, D].
func (a *Attention) Forward(b backend.Backend, dst, x backend.Tensor, ws *work) {
	a.QProj.Forward(b, ws.q, x, nil)
	a.KProj.Forward(b, ws.k, x, nil)
	a.VProj.Forward(b, ws.v, x, nil)
	b.Attention(ws.att, ws.q, ws.k, ws.v, a.Heads, a.Heads, false, 0)
	a.OutProj.Forward(b, dst, ws.att, nil)
}

// Forward: dst = fc2(act(fc1(x))). [T, D].
func (m *MLP) Forward(b backend.Backend, dst, x backend.Tensor, ws *work) {
	m.FC1.Forward(b, ws.hidden, x, nil)
	b.Activate(ws.hidden, ws.hidden, m.Act)
	m.FC2.Forward(b, dst, ws.hidden, nil)
}

// work holds one forward pass's temporaries, reused by every block.
type work struct {
	q, k, v, att backend.Tensor // [T, D]
	out          backend.Tensor // [T, D]
	hidden       backend.Tensor // [T, I]
}

func newWork(b backend.Backend, cfg Config) *work {
	t, d := cfg.Tokens(), cfg.HiddenSize
	return &work{q: b.New(t, d), k: b.New(t, d), v: b.New(t, d), att: b.New(t, d),
		out: b.New(t, d), hidden: b.New(t, cfg.IntermediateSize)}
}
