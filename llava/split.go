package llava

import (
	"fmt"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// The AlignedVQ split (docs/alignedvq-contract.md). The edge head runs the
// tower from the pixels to the module's split point, applies DLP_in and the
// codebook search, and packs the indices into a frame. The cloud tail decodes
// a frame, looks the codes up and applies DLP_out, rebuilds the residual
// stream the quantized LayerNorm output no longer carries, and resumes the
// tower from the split to the feature layer, then runs the projector and the
// decoder as an unsplit model would.

// SplitPoint is where a module cuts the tower.
func SplitPoint(m *vq.Module) (vit.Split, error) {
	site, err := vit.ParseSite(m.Site)
	if err != nil {
		return vit.Split{}, err
	}
	return vit.Split{Block: m.Block, Site: site}, nil
}

// siteNorm holds the split site's LayerNorm on the host: the edge needs its
// eps for token statistics, the cloud its weight and bias to invert it.
type siteNorm struct {
	gamma, beta []float32
	eps         float32
}

// EdgeParts is what an edge device loads: the tower from the pixels to the
// module's split.
func (ck *Checkpoint) EdgeParts(m *vq.Module) (Parts, error) {
	sp, err := ck.splitFor(m)
	if err != nil {
		return Parts{}, err
	}
	return Parts{Vision: true, VisionFrom: vit.Pixels, VisionTo: sp}, nil
}

// CloudParts is what a cloud server loads for a module: the tower from its
// split to the feature layer, the projector and the decoder.
func (ck *Checkpoint) CloudParts(m *vq.Module) (Parts, error) {
	sp, err := ck.splitFor(m)
	if err != nil {
		return Parts{}, err
	}
	p := ck.AllParts()
	p.VisionFrom = sp
	return p, nil
}

func (ck *Checkpoint) splitFor(m *vq.Module) (vit.Split, error) {
	if err := m.CheckModel(ck.Vision.HiddenSize, ck.Vision.NumHiddenLayers); err != nil {
		return vit.Split{}, err
	}
	sp, err := SplitPoint(m)
	if err != nil {
		return sp, err
	}
	l, _ := ck.Vision.ResolveLayer(ck.FeatureLayer)
	if !sp.Before(vit.HiddenState(l)) {
		return sp, fmt.Errorf("llava: %s: split %v is not before the feature layer %d", m.Path, sp, ck.FeatureLayer)
	}
	return sp, nil
}

// AttachVQ binds a module to a loaded model. The model's tower must reach
// the split (edge, local) or start there (cloud).
func (m *Model) AttachVQ(mod *vq.Module) error {
	sp, err := m.Checkpoint.splitFor(mod)
	if err != nil {
		return err
	}
	if m.Vision == nil || sp.Before(m.Vision.From) || m.Vision.To.Before(sp) {
		return fmt.Errorf("llava: the loaded vision tower does not reach the split at %v", sp)
	}
	m.VQ, m.split = mod, sp
	if sp.Site.IsNorm() {
		if m.splitNorm, err = m.loadSiteNorm(sp); err != nil {
			return err
		}
	}
	return nil
}

// loadSiteNorm reads the split site's LayerNorm from the checkpoint.
func (m *Model) loadSiteNorm(sp vit.Split) (*siteNorm, error) {
	name := "layer_norm1"
	if sp.Site == vit.SiteLN2 {
		name = "layer_norm2"
	}
	w := nn.NewWeights(m.Checkpoint.src, m.B, nil).Sub("vision_tower", "vision_model", "encoder", "layers", sp.Block, name)
	d := m.Checkpoint.Vision.HiddenSize
	g, b := w.Host("weight", d), w.Host("bias", d)
	if err := w.Err(); err != nil {
		return nil, err
	}
	return &siteNorm{gamma: g.ToF32(), beta: b.ToF32(), eps: m.Checkpoint.Vision.LayerNormEps}, nil
}

// EdgeResult is what the edge head produced for one image.
type EdgeResult struct {
	Frame     []byte
	Quantized *vq.Quantized
	ZIn       *tensor.Tensor // [N, D] the site features, on the host
}

// EncodeFrame runs the edge head on pixel values: the tower to the split,
// the codebook search, and the frame (with per-token LayerNorm statistics
// when tokenStats is set, for ln sites only).
func (m *Model) EncodeFrame(pixels []float32, tokenStats bool) (*EdgeResult, error) {
	if m.VQ == nil {
		return nil, fmt.Errorf("llava: no AlignedVQ module attached")
	}
	if m.Vision.From != vit.Pixels {
		return nil, fmt.Errorf("llava: the edge head needs the tower from the pixels")
	}
	if tokenStats && !m.split.Site.IsNorm() {
		return nil, fmt.Errorf("llava: token statistics exist only for ln1 and ln2 splits, not %v", m.split.Site)
	}
	s := m.Vision.NewStream(m.B)
	m.Vision.Run(m.B, s, pixels, vit.Pixels, m.split)
	z := s.X // attn and ffn sites quantize the residual stream itself
	if m.split.Site.IsNorm() {
		z = s.Z
	}
	q, err := m.VQ.Quantize(m.B, z)
	if err != nil {
		return nil, err
	}
	res := &EdgeResult{Quantized: q, ZIn: m.host(z, 0)}
	var stats []uint16
	if tokenStats {
		x := m.host(s.X, 0)
		stats = vq.TokenStats(x.F32(), x.Dim(0), x.Dim(1), m.splitNorm.eps)
	}
	if res.Frame, err = m.VQ.EncodeFrame(q.Indices, stats); err != nil {
		return nil, err
	}
	return res, nil
}

// CloudResult is the cloud tail's view of one frame.
type CloudResult struct {
	Frame *vq.Frame
	ZOut  backend.Tensor // [N, D] codebook lookup + DLP_out
	// Selected is the projector's input [N', Dv] (the feature layer, CLS
	// dropped); Projected its output [N', H] when the projector is loaded.
	Selected, Projected backend.Tensor
}

// DecodeFrame runs the cloud tail's vision side on a frame: it refuses a
// frame that is not for this module and model, dequantizes, rebuilds the
// residual (the affine map, or the exact LayerNorm inversion when the frame
// carries token statistics) and resumes the tower to the feature layer.
func (m *Model) DecodeFrame(frame []byte) (*CloudResult, error) {
	if m.VQ == nil {
		return nil, fmt.Errorf("llava: no AlignedVQ module attached")
	}
	f, err := m.VQ.DecodeFrame(frame, m.Checkpoint.Vision.Tokens())
	if err != nil {
		return nil, err
	}
	return m.CloudTail(f)
}

// CloudTail is DecodeFrame for a frame already parsed and checked by the
// attached module's DecodeFrame (a server that answers a bad frame with its
// own error parses it once).
func (m *Model) CloudTail(f *vq.Frame) (*CloudResult, error) {
	if m.VQ == nil {
		return nil, fmt.Errorf("llava: no AlignedVQ module attached")
	}
	n := m.Checkpoint.Vision.Tokens()
	zout, err := m.VQ.Dequantize(m.B, f.Indices)
	if err != nil {
		return nil, err
	}
	s := m.Vision.NewStream(m.B)
	switch {
	case !m.split.Site.IsNorm():
		m.B.Copy(s.X, 0, zout)
	case f.Flags&vq.FlagTokenStats != 0:
		z := m.host(zout, 0)
		d := z.Dim(1)
		x := vq.InvertLayerNorm(z.F32(), n, d, f.Stats, m.splitNorm.gamma, m.splitNorm.beta)
		m.B.Write(s.X, x)
		m.B.Copy(s.Z, 0, zout)
	default:
		m.B.Copy(s.X, 0, m.VQ.Residual(m.B, zout))
		m.B.Copy(s.Z, 0, zout)
	}
	l, _ := m.Checkpoint.Vision.ResolveLayer(m.Checkpoint.FeatureLayer)
	m.Vision.Run(m.B, s, nil, m.split, vit.HiddenState(l))
	res := &CloudResult{Frame: f, ZOut: zout, Selected: m.selectTokens(s.X)}
	if m.Projector != nil {
		res.Projected = m.Project(res.Selected)
	}
	return res, nil
}
