package llama

import (
	"fmt"
	"math"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/tensor"
)

// Model is the decoder's weights; per-generation state lives in State.
type Model struct {
	Config      Config
	EmbedTokens backend.Tensor // "model.embed_tokens.weight" [V, D]
	Layers      []*Layer       // "model.layers.k"
	Norm        *nn.RMSNorm    // "model.norm" [D]
	LMHead      *nn.Linear     // "lm_head" [V, D]; embed_tokens when tied

	cos, sin backend.Tensor // RoPE tables [MaxPositionEmbeddings, HeadDim]
	maxRank  int            // largest on-the-fly LoRA rank, for scratch sizing
}

// Layer is one decoder block.
type Layer struct {
	InputLayernorm         *nn.RMSNorm // "input_layernorm" [D]
	SelfAttn               *Attention  // "self_attn"
	PostAttentionLayernorm *nn.RMSNorm // "post_attention_layernorm" [D]
	MLP                    *MLP        // "mlp"
}

// Attention projects to heads·d queries and kvHeads·d keys and values.
type Attention struct {
	QProj *nn.Linear // "q_proj" [H·d, D]
	KProj *nn.Linear // "k_proj" [Hkv·d, D]
	VProj *nn.Linear // "v_proj" [Hkv·d, D]
	OProj *nn.Linear // "o_proj" [D, H·d]
}

// MLP is down(silu(gate(x)) ⊙ up(x)).
type MLP struct {
	GateProj *nn.Linear // "gate_proj" [I, D]
	UpProj   *nn.Linear // "up_proj" [I, D]
	DownProj *nn.Linear // "down_proj" [D, I]
}

// Load binds the decoder's weights. w is scoped so that "model.layers.0..."
// and "lm_head" resolve: the checkpoint root for a LLaMA or original-LLaVA
// checkpoint, "language_model." for llava-hf.
func Load(w *nn.Weights, cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, hd := cfg.HiddenSize, cfg.HeadDim
	qd, kvd := cfg.NumAttentionHeads*hd, cfg.NumKeyValueHeads*hd
	m := &Model{Config: cfg, Layers: make([]*Layer, cfg.NumHiddenLayers)}
	mw := w.Sub("model")
	m.EmbedTokens = mw.Tensor("embed_tokens.weight", cfg.VocabSize, d)
	for i := range m.Layers {
		lw := mw.Sub("layers", i)
		a, f := lw.Sub("self_attn"), lw.Sub("mlp")
		l := &Layer{
			InputLayernorm: lw.RMSNorm("input_layernorm", d, cfg.RMSNormEps),
			SelfAttn: &Attention{
				QProj: a.Linear("q_proj", d, qd, cfg.AttentionBias),
				KProj: a.Linear("k_proj", d, kvd, cfg.AttentionBias),
				VProj: a.Linear("v_proj", d, kvd, cfg.AttentionBias),
				OProj: a.Linear("o_proj", qd, d, cfg.AttentionBias),
			},
			PostAttentionLayernorm: lw.RMSNorm("post_attention_layernorm", d, cfg.RMSNormEps),
			MLP: &MLP{
				GateProj: f.Linear("gate_proj", d, cfg.IntermediateSize, cfg.MLPBias),
				UpProj:   f.Linear("up_proj", d, cfg.IntermediateSize, cfg.MLPBias),
				DownProj: f.Linear("down_proj", cfg.IntermediateSize, d, cfg.MLPBias),
			},
		}
		m.Layers[i] = l
		for _, lin := range []*nn.Linear{l.SelfAttn.QProj, l.SelfAttn.KProj, l.SelfAttn.VProj, l.SelfAttn.OProj,
			l.MLP.GateProj, l.MLP.UpProj, l.MLP.DownProj} {
			if lin.Weight != nil {
				m.maxRank = max(m.maxRank, lin.Rank())
			}
		}
	}
	m.Norm = mw.RMSNorm("norm", d, cfg.RMSNormEps)
	switch {
	case w.Has("lm_head.weight"):
		m.LMHead = w.Linear("lm_head", d, cfg.VocabSize, false)
	case cfg.TieWordEmbeddings:
		m.LMHead = &nn.Linear{Weight: m.EmbedTokens, In: d, Out: cfg.VocabSize}
	default:
		m.LMHead = w.Linear("lm_head", d, cfg.VocabSize, false) // records the missing tensor
	}
	if err := w.Err(); err != nil {
		return nil, err
	}
	m.maxRank = max(m.maxRank, m.LMHead.Rank())
	cos, sin := ropeTables(cfg)
	var err error
	if m.cos, err = w.Backend().Load(cos); err != nil {
		return nil, err
	}
	if m.sin, err = w.Backend().Load(sin); err != nil {
		return nil, err
	}
	return m, nil
}

// ropeTables computes cos and sin [MaxPositionEmbeddings, HeadDim] the way
// LlamaRotaryEmbedding does, in fp32: inv_freq_i = 1/θ^(2i/d), angle =
// inv_freq·position (one rounding), emb = [angles, angles].
func ropeTables(cfg Config) (cos, sin *tensor.Tensor) {
	d, n := cfg.HeadDim, cfg.MaxPositionEmbeddings
	inv := make([]float32, d/2)
	for i := range inv {
		e := float32(2*i) / float32(d)
		inv[i] = 1 / float32(math.Pow(cfg.RopeTheta, float64(e)))
	}
	scale := float32(1)
	if cfg.RopeScaling != nil {
		scale = float32(cfg.RopeScaling.Factor)
	}
	cos, sin = tensor.New(tensor.F32, n, d), tensor.New(tensor.F32, n, d)
	cv, sv := cos.F32(), sin.F32()
	for p := range n {
		pos := float32(p) / scale
		for i, f := range inv {
			a := float64(f * pos)
			c, s := float32(math.Cos(a)), float32(math.Sin(a))
			cv[p*d+i], cv[p*d+i+d/2] = c, c
			sv[p*d+i], sv[p*d+i+d/2] = s, s
		}
	}
	return cos, sin
}

// Embed writes the embeddings of ids into dst [len(ids), D]. It returns an
// error naming the first id outside the vocabulary.
func (m *Model) Embed(b backend.Backend, dst backend.Tensor, ids []int32) error {
	for i, id := range ids {
		if id < 0 || int(id) >= m.Config.VocabSize {
			return fmt.Errorf("llama: token %d at position %d is outside the vocabulary of %d", id, i, m.Config.VocabSize)
		}
	}
	b.Embed(dst, m.EmbedTokens, ids)
	return nil
}
