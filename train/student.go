package train

import (
	"github.com/avq/avq/backend"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/vit"
)

// student is the part of the model between the quantizer and the loss: the
// tower from the split to the feature layer, the class token dropped, and
// with the projector target the projector. Its weights are frozen; it
// carries gradients from the loss back to Z_out only.
type student struct {
	b         backend.Grad
	vision    *vit.Model
	from, to  vit.Split
	norm      bool           // the split is a LayerNorm output (ln1, ln2)
	scale     backend.Tensor // residual.scale [D] (norm sites)
	shift     backend.Tensor // residual.shift [D]
	dropCLS   bool
	projector *llava.Projector // nil unless the target is the projector output
	t, d      int
}

// tape is what the forward pass keeps for the backward: per point of the
// tower, the LayerNorm inputs, the attention's q, k, v and the MLP's
// pre-activation; for the projector, the pre-activations between its layers.
type tape struct {
	points []point
	proj   []backend.Tensor // input of each projector Linear after the first, before the activation
	out    backend.Tensor   // the student's output: [T', D] features or [T', H] projected
}

type point struct {
	sp      vit.Split
	x       backend.Tensor // LN sites: the LayerNorm's input [T, D]
	q, k, v backend.Tensor // attn: [T, D]
	pre     backend.Tensor // ffn: fc1's output before the activation [T, I]
}

// forward runs the student on Z_out [T, D]: the residual stream rebuilt
// (x̂ = a ⊙ Z_out + c at LN sites, Z_out itself otherwise), the tower to the
// feature layer, the selection and the projector.
func (s *student) forward(zout backend.Tensor) *tape {
	b, t, d := s.b, s.t, s.d
	tp := &tape{}
	x, z := b.New(t, d), b.New(t, d) // [T, D] the stream and the current LayerNorm output
	b.Copy(x, 0, zout)
	if s.norm { // x̂ = a ⊙ Z_out + c
		b.Mul(x, x, s.scale)
		b.AddScaled(x, s.shift, 1)
		b.Copy(z, 0, zout)
	}
	for pt := s.from; pt.Before(s.to); {
		pt = next(pt)
		blk := s.vision.Layers[pt.Block]
		p := point{sp: pt}
		switch pt.Site {
		case vit.SiteLN1, vit.SiteLN2: // z = LN(x)
			ln := blk.LayerNorm1
			if pt.Site == vit.SiteLN2 {
				ln = blk.LayerNorm2
			}
			p.x = b.New(t, d)
			b.Copy(p.x, 0, x)
			ln.Forward(b, z, x)
		case vit.SiteAttn: // x = x + OutProj(Attention(q, k, v)), q, k, v = proj(z)
			a := blk.Attn
			p.q, p.k, p.v = b.New(t, d), b.New(t, d), b.New(t, d)
			a.QProj.Forward(b, p.q, z, nil)
			a.KProj.Forward(b, p.k, z, nil)
			a.VProj.Forward(b, p.v, z, nil)
			att, out := b.New(t, d), b.New(t, d)
			b.Attention(att, p.q, p.k, p.v, a.Heads, a.Heads, false, 0)
			a.OutProj.Forward(b, out, att, nil)
			b.AddScaled(x, out, 1)
		case vit.SiteFFN: // x = x + fc2(act(fc1(z)))
			m := blk.MLP
			p.pre = b.New(t, m.FC1.Out)
			m.FC1.Forward(b, p.pre, z, nil)
			h, out := b.New(t, m.FC1.Out), b.New(t, d)
			b.Activate(h, p.pre, m.Act)
			m.FC2.Forward(b, out, h, nil)
			b.AddScaled(x, out, 1)
		}
		tp.points = append(tp.points, p)
	}
	y := x
	if s.dropCLS {
		y = b.Rows(x, 1, t)
	}
	if s.projector != nil {
		n := y.Shape()[0]
		for i, l := range s.projector.Layers {
			out := b.New(n, l.Out)
			l.Forward(b, out, y, nil)
			if i < len(s.projector.Layers)-1 {
				tp.proj = append(tp.proj, out)
				h := b.New(n, l.Out)
				b.Activate(h, out, s.projector.Act)
				out = h
			}
			y = out
		}
	}
	tp.out = y
	return tp
}

// backward carries dy, the loss's gradient at the student's output, back to
// dZ_out [T, D]; dy is consumed.
func (s *student) backward(tp *tape, dy backend.Tensor) backend.Tensor {
	b, t, d := s.b, s.t, s.d
	if s.projector != nil { // through the projector's Linears and activations
		for i := len(s.projector.Layers) - 1; i >= 0; i-- {
			l := s.projector.Layers[i]
			dx := b.New(dy.Shape()[0], l.In)
			b.MatMulNN(dx, dy, l.Weight, false)
			if i > 0 {
				b.ActivateBackward(dx, dx, tp.proj[i-1], s.projector.Act)
			}
			dy = dx
		}
	}
	dx, dz := b.New(t, d), b.New(t, d) // gradients of the stream and of the LayerNorm output
	if s.dropCLS {
		b.Copy(dx, 1, dy)
	} else {
		b.Copy(dx, 0, dy)
	}
	for i := len(tp.points) - 1; i >= 0; i-- {
		p := tp.points[i]
		blk := s.vision.Layers[p.sp.Block]
		switch p.sp.Site {
		case vit.SiteFFN: // dz = dpre·W1, dpre = act′(pre) ⊙ (dx·W2)
			m := blk.MLP
			dh := b.New(t, m.FC1.Out)
			b.MatMulNN(dh, dx, m.FC2.Weight, false)
			b.ActivateBackward(dh, dh, p.pre, m.Act)
			b.MatMulNN(dz, dh, m.FC1.Weight, false)
		case vit.SiteAttn: // dz = dq·Wq + dk·Wk + dv·Wv
			a := blk.Attn
			datt := b.New(t, d)
			b.MatMulNN(datt, dx, a.OutProj.Weight, false)
			dq, dk, dv := b.New(t, d), b.New(t, d), b.New(t, d)
			b.AttentionBackward(dq, dk, dv, datt, p.q, p.k, p.v, a.Heads)
			b.MatMulNN(dz, dq, a.QProj.Weight, false)
			b.MatMulNN(dz, dk, a.KProj.Weight, true)
			b.MatMulNN(dz, dv, a.VProj.Weight, true)
		case vit.SiteLN1, vit.SiteLN2: // dx += LN′(x)ᵀ·dz
			ln := blk.LayerNorm1
			if p.sp.Site == vit.SiteLN2 {
				ln = blk.LayerNorm2
			}
			b.LayerNormBackward(dz, dz, p.x, ln.Weight, ln.Eps)
			b.AddScaled(dx, dz, 1)
		}
	}
	if !s.norm {
		return dx
	}
	// x̂ = a ⊙ Z_out + c and z = Z_out: dZ_out = dz + a ⊙ dx̂
	b.Mul(dx, dx, s.scale)
	b.AddScaled(dx, dz, 1)
	return dx
}

// next is the point after p in the tower's order (as vit runs it).
func next(p vit.Split) vit.Split {
	if p.Site == vit.SiteFFN {
		return vit.Split{Block: p.Block + 1, Site: vit.SiteLN1}
	}
	return vit.Split{Block: p.Block, Site: p.Site + 1}
}
