package llava

import (
	"fmt"
	"math"

	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// Calibration, the first stage of AlignedVQ's training (spec "Calibration"):
// the split site's features are collected from calibration images, the
// codebook is fitted by k-means on them (DLP identity), and the residual map
// is fitted on the same tokens. The paper's fine-tuning of codebook and DLP
// is package train's (by distillation), in the same file format.

// SiteFeatures runs the tower from the pixels to sp and returns the site
// features z [T, D] (what the edge quantizes) and the residual stream x
// [T, D] at that point (what the cloud must rebuild at ln sites).
func (m *Model) SiteFeatures(pixels []float32, sp vit.Split) (z, x []float32) {
	s := m.Vision.NewStream(m.B)
	m.Vision.Run(m.B, s, pixels, vit.Pixels, sp)
	x = m.host(s.X, 0).F32()
	if sp.Site.IsNorm() {
		return m.host(s.Z, 0).F32(), x
	}
	return x, x
}

// CalibrateOptions are k-means's settings and the split to calibrate.
type CalibrateOptions struct {
	Split  vit.Split
	KMeans vq.KMeansOptions
}

// Calibration is a fitted module and how well it fits.
type Calibration struct {
	Module      *vq.ModuleData
	Tokens      int     // feature vectors it was fitted on
	MSE         float64 // mean ‖z − e_i‖² per token
	Dead        int     // codebook entries no token uses
	ResidualMSE float64 // mean squared error of the affine residual map (ln sites)
}

// Calibrate fits a module on the features of the given images.
func (m *Model) Calibrate(images [][]float32, opt CalibrateOptions) (*Calibration, error) {
	if m.Vision == nil || m.Vision.From != vit.Pixels || m.Vision.To.Before(opt.Split) {
		return nil, fmt.Errorf("llava: calibration needs the tower from the pixels to %v", opt.Split)
	}
	if err := opt.Split.Validate(m.Checkpoint.Vision); err != nil {
		return nil, err
	}
	d := m.Checkpoint.Vision.HiddenSize
	var zs, xs []float32
	for i, px := range images {
		z, x := m.SiteFeatures(px, opt.Split)
		zs = append(zs, z...)
		if opt.Split.Site.IsNorm() {
			xs = append(xs, x...)
		}
		if opt.KMeans.Progress != nil {
			opt.KMeans.Progress("features", i+1, len(images))
		}
	}
	n := len(zs) / d
	km, err := vq.KMeans(m.B, zs, n, d, opt.KMeans)
	if err != nil {
		return nil, err
	}
	md := &vq.ModuleData{Block: opt.Split.Block, Site: opt.Split.Site.String(), Codebook: km.Codebook, K: opt.KMeans.K, D: d}
	c := &Calibration{Module: md, Tokens: n, MSE: km.MSE, Dead: km.Dead}
	if opt.Split.Site.IsNorm() {
		// Z_out for each token is its code (DLP identity): fit x ≈ a⊙Z_out + c.
		mod, err := vq.NewModule(&vq.ModuleData{Block: md.Block, Site: "attn", Codebook: km.Codebook, K: md.K, D: d}, m.B)
		if err != nil {
			return nil, err
		}
		zt := m.B.New(n, d)
		m.B.Write(zt, zs)
		q, err := mod.Quantize(m.B, zt)
		if err != nil {
			return nil, err
		}
		zq := make([]float32, n*d)
		for t, idx := range q.Indices {
			copy(zq[t*d:(t+1)*d], km.Codebook[int(idx)*d:(int(idx)+1)*d])
		}
		md.Scale, md.Shift, c.ResidualMSE = vq.FitResidual(xs, zq, n, d)
	}
	return c, nil
}

// Cosine is the cosine similarity of two equally long vectors.
func Cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
