package llava

import (
	"fmt"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/vit"
)

// FeatureSet is what `avq features` writes, on the host.
type FeatureSet struct {
	Pixels    *tensor.Tensor   // [1, 3, S, S]
	Selected  *tensor.Tensor   // [1, N, Dv]: the projector's input
	Projected *tensor.Tensor   // [1, N, H]; nil without a projector
	Hidden    []*tensor.Tensor // hidden_states.0 … L, [1, T, Dv]; nil unless asked for

	// With an AlignedVQ module in place:
	Indices *tensor.Tensor // vq.indices I32 [N], every token at the site, CLS included
	ZIn     *tensor.Tensor // vq.z_in [N, D], the site features (nil when made from a frame)
	ZOut    *tensor.Tensor // vq.z_out [N, D], codebook lookup + DLP_out
	Frame   []byte         // the frame the features went through
}

// Entries lists the tensors under the names `avq features` writes.
func (f *FeatureSet) Entries() []NamedTensor {
	var out []NamedTensor
	if f.Pixels != nil {
		out = append(out, NamedTensor{"pixel_values", f.Pixels})
	}
	out = append(out, NamedTensor{"image_features", f.Selected})
	if f.Projected != nil {
		out = append(out, NamedTensor{"projected", f.Projected})
	}
	for i, h := range f.Hidden {
		out = append(out, NamedTensor{fmt.Sprintf("hidden_states.%d", i), h})
	}
	for _, e := range []NamedTensor{{"vq.indices", f.Indices}, {"vq.z_in", f.ZIn}, {"vq.z_out", f.ZOut}} {
		if e.T != nil {
			out = append(out, e)
		}
	}
	return out
}

// FeaturesVQ computes the features with the attached AlignedVQ module in
// place: from pixel values through the edge head and a real frame, or, when
// pixels is nil, from the given frame alone.
func (m *Model) FeaturesVQ(pixels []float32, frame []byte, tokenStats bool) (*FeatureSet, error) {
	fs := &FeatureSet{}
	if pixels != nil {
		cfg := m.Vision.Config
		fs.Pixels = tensor.FromF32(pixels, 1, 3, cfg.ImageSize, cfg.ImageSize)
		e, err := m.EncodeFrame(pixels, tokenStats)
		if err != nil {
			return nil, err
		}
		frame, fs.ZIn = e.Frame, e.ZIn
	}
	c, err := m.DecodeFrame(frame)
	if err != nil {
		return nil, err
	}
	fs.Frame = frame
	fs.Indices = tensor.FromI32(c.Frame.Indices, len(c.Frame.Indices))
	fs.ZOut = m.host(c.ZOut, 0)
	fs.Selected = m.host(c.Selected, 1)
	if c.Projected != nil {
		fs.Projected = m.host(c.Projected, 1)
	}
	return fs, nil
}

// NamedTensor is a host tensor with the name it is written under.
type NamedTensor struct {
	Name string
	T    *tensor.Tensor
}

// Features runs the vision side on pixel values: the selected features, the
// projected ones when the projector is loaded, and with allLayers every
// hidden state (the tower must then be loaded to its last block).
func (m *Model) Features(pixels []float32, allLayers bool) (*FeatureSet, error) {
	if m.Vision == nil || m.Vision.From != vit.Pixels {
		return nil, fmt.Errorf("llava: the vision tower is not loaded from the pixels")
	}
	cfg := m.Vision.Config
	fs := &FeatureSet{Pixels: tensor.FromF32(pixels, 1, 3, cfg.ImageSize, cfg.ImageSize)}
	layer, err := cfg.ResolveLayer(m.Checkpoint.FeatureLayer)
	if err != nil {
		return nil, err
	}
	last := layer
	if allLayers {
		last = cfg.NumHiddenLayers
		if m.Vision.To.Before(vit.HiddenState(last)) {
			return nil, fmt.Errorf("llava: all hidden states need the tower loaded to block %d", last-1)
		}
	}
	s := m.Vision.NewStream(m.B)
	var x backend.Tensor
	s.Trace = func(name string, l int, t backend.Tensor) {
		if name != "hidden_state" {
			return
		}
		if allLayers {
			fs.Hidden = append(fs.Hidden, m.host(t, 1))
		}
		if l == layer {
			x = m.B.New(t.Shape()...)
			m.B.Copy(x, 0, t)
		}
	}
	m.Vision.Run(m.B, s, pixels, vit.Pixels, vit.HiddenState(last))
	sel := m.selectTokens(x)
	fs.Selected = m.host(sel, 1)
	if m.Projector != nil {
		fs.Projected = m.host(m.Project(sel), 1)
	}
	return fs, nil
}

// host copies a backend tensor to a new host F32 tensor, with leading 1s
// prepended to its shape (batch dimensions).
func (m *Model) host(x backend.Tensor, lead int) *tensor.Tensor {
	shape := make([]int, 0, lead+len(x.Shape()))
	for range lead {
		shape = append(shape, 1)
	}
	shape = append(shape, x.Shape()...)
	t := tensor.New(tensor.F32, shape...)
	m.B.Read(t.F32(), x)
	return t
}
