package vit

import (
	"fmt"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/tensor"
)

// Model is the vision tower, or the part of it a role needs: the edge loads
// the embeddings and the blocks up to its split, the cloud the blocks after it.
type Model struct {
	Config Config
	From   Split // the first point Run can start from
	To     Split // the last point Run can reach

	PatchEmbedding    backend.Tensor // "embeddings.patch_embedding.weight" [D, 3, P, P] viewed as [D, 3·P·P]
	ClassEmbedding    backend.Tensor // "embeddings.class_embedding" [D]
	PositionEmbedding backend.Tensor // "embeddings.position_embedding.weight" [T, D]
	PreLayrnorm       *nn.LayerNorm  // "pre_layrnorm" [D]
	Layers            []*Block       // "encoder.layers.k"; nil for blocks outside [From, To]
}

// Load binds the weights needed to run from point from to point to; w is
// scoped to the vision model ("vision_tower.vision_model." in llava-hf
// checkpoints, "vision_model." in CLIP ones). Weights outside that range are
// not touched, so an edge device maps only what it runs.
func Load(w *nn.Weights, cfg Config, from, to Split) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !from.Before(to) || (from != Pixels && from != Embedded && from.Validate(cfg) != nil) ||
		(to != Embedded && to.Validate(cfg) != nil) {
		return nil, fmt.Errorf("vit: cannot run from %v to %v in a %d-block tower", from, to, cfg.NumHiddenLayers)
	}
	m := &Model{Config: cfg, From: from, To: to, Layers: make([]*Block, cfg.NumHiddenLayers)}
	d, p := cfg.HiddenSize, cfg.PatchSize
	for pt := from; pt.Before(to); {
		pt = pt.next()
		switch {
		case pt == Embedded:
			e := w.Sub("embeddings")
			if pw := e.Host("patch_embedding.weight", d, cfg.NumChannels, p, p); pw != nil {
				var err error
				if m.PatchEmbedding, err = w.Backend().Load(pw.Reshape(d, cfg.NumChannels*p*p)); err != nil {
					w.Fail(fmt.Errorf("vit: patch embedding: %w", err))
				}
			}
			m.ClassEmbedding = e.Tensor("class_embedding", d)
			m.PositionEmbedding = e.Tensor("position_embedding.weight", cfg.Tokens(), d)
			m.PreLayrnorm = w.LayerNorm("pre_layrnorm", d, cfg.LayerNormEps)
		case pt.Block >= 0:
			if m.Layers[pt.Block] == nil {
				m.Layers[pt.Block] = &Block{}
			}
			m.Layers[pt.Block].loadSegment(w.Sub("encoder", "layers", pt.Block), cfg, pt.Site)
		}
	}
	if err := w.Err(); err != nil {
		return nil, err
	}
	if pe := m.PositionEmbedding; pe != nil && pe.DType() != tensor.F32 {
		// Added to every image as an F32 activation: widened once here,
		// not copied per image.
		b := w.Backend()
		pos := b.New(pe.Shape()...)
		b.Copy(pos, 0, pe)
		m.PositionEmbedding = pos
	}
	return m, nil
}

// Stream is the state of one image's forward pass at a point: X is the
// residual stream (x_k, or h_k after a block's attention), Z the LayerNorm
// output when the point is an ln site.
type Stream struct {
	X, Z  backend.Tensor // [T, D]
	Trace nn.Trace       // optional: "embeddings", and "hidden_state" at every x_k
	ws    *work
}

// NewStream allocates a stream for m's sequence on b.
func (m *Model) NewStream(b backend.Backend) *Stream {
	t, d := m.Config.Tokens(), m.Config.HiddenSize
	return &Stream{X: b.New(t, d), Z: b.New(t, d), ws: newWork(b, m.Config)}
}

// Embed runs the embeddings and pre_layrnorm on pixel values [3, S, S] (CHW):
// the stream is then at Embedded, holding x_0.
func (m *Model) Embed(b backend.Backend, s *Stream, pixels []float32) {
	m.Run(b, s, pixels, Pixels, Embedded)
}

// Run advances s from point from to point to, executing every segment in
// between. pixels are only read when from is Pixels.
func (m *Model) Run(b backend.Backend, s *Stream, pixels []float32, from, to Split) {
	if from.Before(m.From) || m.To.Before(to) {
		panic(fmt.Sprintf("vit: Run(%v → %v) outside the loaded range %v → %v", from, to, m.From, m.To))
	}
	for pt := from; pt.Before(to); {
		pt = pt.next()
		if pt.Block < 0 {
			if pt == Embedded {
				m.embed(b, s, pixels)
				s.trace("hidden_state", 0, s.X)
			}
			continue
		}
		blk := m.Layers[pt.Block]
		switch pt.Site {
		case SiteLN1: // Z = LN1(x_k)
			blk.LayerNorm1.Forward(b, s.Z, s.X)
		case SiteAttn: // h_k = x_k + Attn(Z)
			blk.Attn.Forward(b, s.ws.out, s.Z, s.ws)
			b.AddScaled(s.X, s.ws.out, 1)
		case SiteLN2: // Z = LN2(h_k)
			blk.LayerNorm2.Forward(b, s.Z, s.X)
		case SiteFFN: // x_{k+1} = h_k + MLP(Z)
			blk.MLP.Forward(b, s.ws.out, s.Z, s.ws)
			b.AddScaled(s.X, s.ws.out, 1)
			s.trace("hidden_state", pt.Block+1, s.X)
		}
	}
}

// embed: x = [class; patches·Wᵀ] + pos, then x_0 = pre_layrnorm(x).
func (m *Model) embed(b backend.Backend, s *Stream, pixels []float32) {
	cfg := m.Config
	t := cfg.Tokens()
	patches := b.New(t-1, cfg.NumChannels*cfg.PatchSize*cfg.PatchSize)
	b.Write(patches, im2col(pixels, cfg))
	b.Copy(s.X, 0, m.ClassEmbedding)
	b.MatMul(b.Rows(s.X, 1, t), patches, m.PatchEmbedding, nil)
	b.AddScaled(s.X, m.PositionEmbedding, 1)
	s.trace("embeddings", -1, s.X)
	m.PreLayrnorm.Forward(b, s.X, s.X)
}

// im2col lays the non-overlapping P×P patches of a [C, S, S] image out as rows
// in row-major patch order, each row ordered (c, ky, kx) like the conv weight,
// so the stride-P convolution is one matrix product.
func im2col(pixels []float32, cfg Config) []float32 {
	c, s, p := cfg.NumChannels, cfg.ImageSize, cfg.PatchSize
	if len(pixels) != c*s*s {
		panic(fmt.Sprintf("vit: pixel values have %d elements, want %d (%d×%d×%d)", len(pixels), c*s*s, c, s, s))
	}
	g := s / p
	out := make([]float32, g*g*c*p*p)
	i := 0
	for py := range g {
		for px := range g {
			for ch := range c {
				for ky := range p {
					row := pixels[ch*s*s+(py*p+ky)*s+px*p:]
					i += copy(out[i:i+p], row[:p])
				}
			}
		}
	}
	return out
}

func (s *Stream) trace(name string, layer int, t backend.Tensor) {
	if s.Trace != nil {
		s.Trace(name, layer, t)
	}
}

// Features runs pixels to hidden state layer (negative counts from the end,
// as LLaVA's vision_feature_layer −2 does) and returns it, [T, D].
func (m *Model) Features(b backend.Backend, pixels []float32, layer int) (backend.Tensor, error) {
	l, err := m.Config.ResolveLayer(layer)
	if err != nil {
		return nil, err
	}
	s := m.NewStream(b)
	m.Run(b, s, pixels, Pixels, HiddenState(l))
	return s.X, nil
}

// ResolveLayer turns a hidden-state index that may count from the end into
// one in [0, layers].
func (c Config) ResolveLayer(layer int) (int, error) {
	l := layer
	if l < 0 {
		l += c.NumHiddenLayers + 1
	}
	if l < 0 || l > c.NumHiddenLayers {
		return 0, fmt.Errorf("vit: hidden state %d does not exist in a %d-block tower", layer, c.NumHiddenLayers)
	}
	return l, nil
}
