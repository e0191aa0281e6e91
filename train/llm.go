package train

import (
	"fmt"
	"math"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/llama"
	"github.com/avq/avq/nn"
)

// The language model's part of the task objective: the frozen decoder with
// trainable LoRA updates y += s·(x·Aᵀ)·Bᵀ on the chosen Linears, run on the
// prompt embeddings (the image's projected features spliced in), and the
// cross-entropy of the answer tokens.

// lora is one trainable low-rank update of a frozen Linear.
type lora struct {
	module string     // the Linear's canonical name, e.g. "language_model.model.layers.0.self_attn.q_proj"
	base   *nn.Linear // frozen
	a, b   backend.Tensor
	rank   int
	scale  float32
	pa, pb *param         // host values of A [r, In] and B [Out, r] and their AdamW state
	ga, gb backend.Tensor // gradients, summed over a batch
}

// forward computes y = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ and returns h = x·Aᵀ [T, r].
func (l *lora) forward(bk backend.Backend, y, x backend.Tensor) backend.Tensor {
	l.base.Forward(bk, y, x, nil)
	h := bk.New(x.Shape()[0], l.rank)
	bk.MatMul(h, x, l.a, nil)
	bk.MatMulAdd(y, h, l.b, l.scale)
	return h
}

// linear is a decoder Linear with its LoRA update, when it has one.
type linear struct {
	base *nn.Linear
	lora *lora
}

func (l linear) forward(bk backend.Backend, y, x backend.Tensor) backend.Tensor {
	if l.lora == nil {
		l.base.Forward(bk, y, x, nil)
		return nil
	}
	return l.lora.forward(bk, y, x)
}

// backward adds dx·(the layer's Jacobian) to dx (acc) or writes it, and the
// LoRA's gradients: with δ = s·dy, ∂B = δᵀ·h, dh = δ·B, ∂A = dhᵀ·x,
// dx = dy·W + dh·A.
func (l linear) backward(bk backend.Grad, dx, dy, x, h backend.Tensor, acc bool) {
	bk.MatMulNN(dx, dy, l.base.Weight, acc)
	if l.lora == nil {
		return
	}
	t := dy.Shape()[0]
	delta := bk.New(t, l.base.Out)
	bk.AddScaled(delta, dy, l.lora.scale)
	bk.MatMulTN(l.lora.gb, delta, h, true)
	dh := bk.New(t, l.lora.rank)
	bk.MatMulNN(dh, delta, l.lora.b, false)
	bk.MatMulTN(l.lora.ga, dh, x, true)
	bk.MatMulNN(dx, dh, l.lora.a, true)
}

// decoderLayer is one block with its Linears' updates.
type decoderLayer struct {
	l                    *llama.Layer
	q, k, v, o, g, u, dn linear
}

// decoder is the LLM as training runs it.
type decoder struct {
	b       backend.Grad
	m       *llama.Model
	layers  []decoderLayer
	cos     backend.Tensor
	sin     backend.Tensor // RoPE's sin
	negSin  backend.Tensor // −sin: RoPE's transpose
	loras   []*lora
	lmHead  *nn.Linear
	vocab   int
	hidden  int
	heads   int
	kvHeads int
}

// layerTape is what one decoder layer keeps for the backward.
type layerTape struct {
	x, xn          backend.Tensor // the input and RMSNorm(x) [T, D]
	q, k, v, att   backend.Tensor // after RoPE; att is o_proj's input
	h, hn          backend.Tensor // after the attention's residual; RMSNorm(h)
	gate, up, act  backend.Tensor // gate's output before SiLU, up's output, silu(gate) ⊙ up [T, I]
	hq, hk, hv, ho backend.Tensor // the LoRA's x·Aᵀ of each Linear (nil without one)
	hg, hu, hd     backend.Tensor
}

// decTape is a whole pass: the layers and the last layer's output.
type decTape struct {
	layers []layerTape
	last   backend.Tensor // the last layer's output [T, D]
}

// forward runs the embeddings [T, D] through the decoder from position 0 and
// returns the final hidden states (before the final norm) with the tape.
func (dec *decoder) forward(embeds backend.Tensor) *decTape {
	b := dec.b
	t, d := embeds.Shape()[0], dec.hidden
	cfg := dec.m.Config
	qd, kd := cfg.NumAttentionHeads*cfg.HeadDim, cfg.NumKeyValueHeads*cfg.HeadDim
	tp := &decTape{}
	x := b.New(t, d)
	b.Copy(x, 0, embeds)
	for _, dl := range dec.layers {
		lt := layerTape{x: b.New(t, d), xn: b.New(t, d), q: b.New(t, qd), k: b.New(t, kd), v: b.New(t, kd), att: b.New(t, qd)}
		b.Copy(lt.x, 0, x)
		// h = x + o_proj(Attn(RoPE(q), RoPE(k), v)) over RMSNorm(x)
		dl.l.InputLayernorm.Forward(b, lt.xn, x)
		lt.hq = dl.q.forward(b, lt.q, lt.xn)
		lt.hk = dl.k.forward(b, lt.k, lt.xn)
		lt.hv = dl.v.forward(b, lt.v, lt.xn)
		b.RoPE(lt.q, dec.cos, dec.sin, dec.heads, 0)
		b.RoPE(lt.k, dec.cos, dec.sin, dec.kvHeads, 0)
		b.Attention(lt.att, lt.q, lt.k, lt.v, dec.heads, dec.kvHeads, true, 0)
		o := b.New(t, d)
		lt.ho = dl.o.forward(b, o, lt.att)
		b.AddScaled(x, o, 1)
		// x' = h + down(silu(gate(RMSNorm(h))) ⊙ up(RMSNorm(h)))
		lt.h, lt.hn = b.New(t, d), b.New(t, d)
		b.Copy(lt.h, 0, x)
		dl.l.PostAttentionLayernorm.Forward(b, lt.hn, x)
		in := cfg.IntermediateSize
		lt.gate, lt.up, lt.act = b.New(t, in), b.New(t, in), b.New(t, in)
		lt.hg = dl.g.forward(b, lt.gate, lt.hn)
		lt.hu = dl.u.forward(b, lt.up, lt.hn)
		b.Activate(lt.act, lt.gate, backend.SiLU)
		b.Mul(lt.act, lt.act, lt.up)
		lt.hd = dl.dn.forward(b, o, lt.act)
		b.AddScaled(x, o, 1)
		tp.layers = append(tp.layers, lt)
	}
	tp.last = x
	return tp
}

// backward carries dx, the gradient at the last layer's output [T, D]
// (consumed), back to the embeddings and adds the LoRA gradients.
func (dec *decoder) backward(tp *decTape, dx backend.Tensor) backend.Tensor {
	b := dec.b
	t, d := dx.Shape()[0], dec.hidden
	cfg := dec.m.Config
	for i := len(tp.layers) - 1; i >= 0; i-- {
		dl, lt := dec.layers[i], tp.layers[i]
		in := cfg.IntermediateSize
		// MLP: d act = dx·W_down; d gate = silu′(gate) ⊙ (d act ⊙ up); d up = d act ⊙ silu(gate)
		dact := b.New(t, in)
		dl.dn.backward(b, dact, dx, lt.act, lt.hd, false)
		sg := b.New(t, in)
		b.Activate(sg, lt.gate, backend.SiLU)
		dup := b.New(t, in)
		b.Mul(dup, dact, sg)
		b.Mul(dact, dact, lt.up)
		b.ActivateBackward(dact, dact, lt.gate, backend.SiLU)
		dhn := b.New(t, d)
		dl.g.backward(b, dhn, dact, lt.hn, lt.hg, false)
		dl.u.backward(b, dhn, dup, lt.hn, lt.hu, true)
		b.RMSNormBackward(dhn, dhn, lt.h, dl.l.PostAttentionLayernorm.Weight, dl.l.PostAttentionLayernorm.Eps)
		b.AddScaled(dx, dhn, 1)
		// attention: d att = dx·W_o; dq, dk, dv; RoPE's transpose; dxn = Σ dproj·W
		datt := b.New(t, lt.att.Shape()[1])
		dl.o.backward(b, datt, dx, lt.att, lt.ho, false)
		dq, dk, dv := b.New(lt.q.Shape()...), b.New(lt.k.Shape()...), b.New(lt.v.Shape()...)
		b.CausalAttentionBackward(dq, dk, dv, datt, lt.q, lt.k, lt.v, dec.heads, dec.kvHeads)
		b.RoPE(dq, dec.cos, dec.negSin, dec.heads, 0)
		b.RoPE(dk, dec.cos, dec.negSin, dec.kvHeads, 0)
		dxn := b.New(t, d)
		dl.q.backward(b, dxn, dq, lt.xn, lt.hq, false)
		dl.k.backward(b, dxn, dk, lt.xn, lt.hk, true)
		dl.v.backward(b, dxn, dv, lt.xn, lt.hv, true)
		b.RMSNormBackward(dxn, dxn, lt.x, dl.l.InputLayernorm.Weight, dl.l.InputLayernorm.Eps)
		b.AddScaled(dx, dxn, 1)
	}
	return dx
}

// crossEntropy computes, for the positions pos of the final hidden states
// last [T, D] that predict the answer tokens want, the mean cross-entropy,
// and the gradient at last (the final norm and lm_head's backward).
func (dec *decoder) crossEntropy(last backend.Tensor, pos []int, want []int32) (float64, backend.Tensor) {
	b := dec.b
	t, d, n, v := last.Shape()[0], dec.hidden, len(pos), dec.vocab
	rows, norm := b.New(n, d), b.New(n, d)
	for i, p := range pos {
		b.Copy(rows, i, b.Rows(last, p, p+1))
	}
	dec.m.Norm.Forward(b, norm, rows)
	logits := b.New(n, v)
	dec.lmHead.Forward(b, logits, norm, nil)
	host := make([]float32, n*v)
	b.Read(host, logits)
	var loss float64
	for i := range n {
		row := host[i*v : (i+1)*v]
		mx := math.Inf(-1)
		for _, z := range row {
			mx = math.Max(mx, float64(z))
		}
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x) - mx)
		}
		loss += mx + math.Log(z) - float64(row[want[i]])
		for j, x := range row { // (softmax − one-hot)/n
			g := math.Exp(float64(x)-mx) / z
			if j == int(want[i]) {
				g--
			}
			row[j] = float32(g / float64(n))
		}
	}
	b.Write(logits, host)
	dnorm := b.New(n, d)
	b.MatMulNN(dnorm, logits, dec.lmHead.Weight, false)
	b.RMSNormBackward(dnorm, dnorm, rows, dec.m.Norm.Weight, dec.m.Norm.Eps)
	dx := b.New(t, d)
	for i, p := range pos { // positions are distinct: one row each
		b.Copy(dx, p, b.Rows(dnorm, i, i+1))
	}
	return loss / float64(n), dx
}

// newDecoder binds LoRA updates of rank r and scale alpha/r to the Linears
// whose short names (q_proj, …, down_proj) are in targets, with A and B from
// init (module → values) or, for those it lacks, A drawn as PyTorch's
// kaiming_uniform(a=√5) — U(−1/√In, 1/√In) — and B = 0, as PEFT does.
func newDecoder(b backend.Grad, m *llama.Model, prefix string, r int, alpha float64, targets map[string]bool,
	init map[string][2][]float32, draw func(n int, bound float64) []float32) (*decoder, error) {
	cfg := m.Config
	dec := &decoder{b: b, m: m, lmHead: m.LMHead, vocab: cfg.VocabSize, hidden: cfg.HiddenSize,
		heads: cfg.NumAttentionHeads, kvHeads: cfg.NumKeyValueHeads}
	cos, sin := m.RoPETables()
	dec.cos, dec.sin = cos, sin
	s := make([]float32, sin.Shape().Numel())
	b.Read(s, sin)
	for i := range s {
		s[i] = -s[i]
	}
	dec.negSin = b.New(sin.Shape()...)
	b.Write(dec.negSin, s)
	for i, l := range m.Layers {
		bind := func(kind, name string, base *nn.Linear) (linear, error) {
			if base.Rank() > 0 {
				return linear{}, fmt.Errorf("train: %s has an adapter applied; load the base model without it", name)
			}
			if !targets[kind] {
				return linear{base: base}, nil
			}
			module := fmt.Sprintf("%slayers.%d.%s", prefix, i, name)
			lr := &lora{module: module, base: base, rank: r, scale: float32(alpha / float64(r))}
			av, bv := draw(r*base.In, 1/math.Sqrt(float64(base.In))), make([]float32, base.Out*r)
			if v, ok := init[module]; ok {
				if len(v[0]) != len(av) || len(v[1]) != len(bv) {
					return linear{}, fmt.Errorf("train: --lora: %s: lora_A and lora_B hold %d and %d values, want rank %d: [%d, %d] and [%d, %d]",
						module, len(v[0]), len(v[1]), r, r, base.In, base.Out, r)
				}
				av, bv = v[0], v[1]
			}
			lr.pa, lr.pb = newParam(module+".lora_A.weight", av, false), newParam(module+".lora_B.weight", bv, false)
			lr.a, lr.b = b.New(r, base.In), b.New(base.Out, r)
			b.Write(lr.a, av)
			b.Write(lr.b, bv)
			lr.ga, lr.gb = b.New(r, base.In), b.New(base.Out, r)
			dec.loras = append(dec.loras, lr)
			return linear{base: base, lora: lr}, nil
		}
		dl := decoderLayer{l: l}
		var err error
		for _, x := range []struct {
			dst        *linear
			kind, name string
			base       *nn.Linear
		}{
			{&dl.q, "q_proj", "self_attn.q_proj", l.SelfAttn.QProj}, {&dl.k, "k_proj", "self_attn.k_proj", l.SelfAttn.KProj},
			{&dl.v, "v_proj", "self_attn.v_proj", l.SelfAttn.VProj}, {&dl.o, "o_proj", "self_attn.o_proj", l.SelfAttn.OProj},
			{&dl.g, "gate_proj", "mlp.gate_proj", l.MLP.GateProj}, {&dl.u, "up_proj", "mlp.up_proj", l.MLP.UpProj},
			{&dl.dn, "down_proj", "mlp.down_proj", l.MLP.DownProj},
		} {
			if *x.dst, err = bind(x.kind, x.name, x.base); err != nil {
				return nil, err
			}
		}
		dec.layers = append(dec.layers, dl)
	}
	return dec, nil
}
