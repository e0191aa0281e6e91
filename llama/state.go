package llama

import (
	"fmt"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
)

// chunk is the most prompt positions one prefill step processes: it bounds
// the activation buffers a State preallocates.
const chunk = 256

// State is one conversation's KV cache and activation buffers (the "run
// state" of llama2.c): everything a forward pass writes is allocated here,
// once, so decoding a token allocates nothing. A State is used by one
// goroutine at a time.
type State struct {
	m    *Model
	b    backend.Backend
	ctx  int              // capacity in positions
	pos  int              // positions already in the cache
	k, v []backend.Tensor // per layer [ctx, Hkv·d]

	buf, one acts // [chunk, ·] buffers, and their first-row views for decoding
	scratch  *nn.Scratch
	logits   backend.Tensor // [1, V]
	hostLog  []float32      // [V]
	id       [1]int32       // Decode's token, kept here so passing it does not allocate

	Trace nn.Trace // optional: "l_out" per layer, "norm" after the final norm
}

// acts are the activations of one forward step over T positions.
type acts struct {
	x, xn, att, o backend.Tensor // [T, D], [T, D], [T, H·d], [T, D]
	q, k, v       backend.Tensor // [T, H·d], [T, Hkv·d], [T, Hkv·d]
	gate, up      backend.Tensor // [T, I]
	last          backend.Tensor // [1, D]: the last position's final-normed state
}

// NewState allocates a cache for ctx positions (at most the model's
// max_position_embeddings).
func (m *Model) NewState(b backend.Backend, ctx int) (*State, error) {
	cfg := m.Config
	if ctx <= 0 || ctx > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("llama: context of %d positions; the model allows 1 to %d", ctx, cfg.MaxPositionEmbeddings)
	}
	kvd := cfg.NumKeyValueHeads * cfg.HeadDim
	s := &State{m: m, b: b, ctx: ctx, k: make([]backend.Tensor, len(m.Layers)), v: make([]backend.Tensor, len(m.Layers))}
	for i := range m.Layers {
		s.k[i], s.v[i] = b.New(ctx, kvd), b.New(ctx, kvd)
	}
	s.buf = newActs(b, cfg, min(chunk, ctx))
	s.one = s.buf.rows(b, 1)
	s.scratch = nn.NewScratch(b, min(chunk, ctx)*max(m.maxRank, 1))
	s.logits = b.New(1, cfg.VocabSize)
	s.hostLog = make([]float32, cfg.VocabSize)
	return s, nil
}

func newActs(b backend.Backend, cfg Config, t int) acts {
	d, qd, kvd := cfg.HiddenSize, cfg.NumAttentionHeads*cfg.HeadDim, cfg.NumKeyValueHeads*cfg.HeadDim
	return acts{x: b.New(t, d), xn: b.New(t, d), att: b.New(t, qd), o: b.New(t, d),
		q: b.New(t, qd), k: b.New(t, kvd), v: b.New(t, kvd),
		gate: b.New(t, cfg.IntermediateSize), up: b.New(t, cfg.IntermediateSize), last: b.New(1, d)}
}

// rows is a view of the first t positions of every buffer.
func (a acts) rows(b backend.Backend, t int) acts {
	return acts{x: b.Rows(a.x, 0, t), xn: b.Rows(a.xn, 0, t), att: b.Rows(a.att, 0, t), o: b.Rows(a.o, 0, t),
		q: b.Rows(a.q, 0, t), k: b.Rows(a.k, 0, t), v: b.Rows(a.v, 0, t),
		gate: b.Rows(a.gate, 0, t), up: b.Rows(a.up, 0, t), last: a.last}
}

// Pos is the number of positions in the cache.
func (s *State) Pos() int { return s.pos }

// Cap is the cache capacity in positions.
func (s *State) Cap() int { return s.ctx }

// Reset empties the cache for a new conversation.
func (s *State) Reset() { s.pos = 0 }

// Prefill runs the prompt embeddings [T, D] through the decoder at the next T
// positions and returns the logits of the last one. The slice is reused by
// the next call.
func (s *State) Prefill(embeds backend.Tensor) ([]float32, error) {
	t := embeds.Shape()[0]
	if t == 0 {
		return nil, fmt.Errorf("llama: empty prompt")
	}
	if s.pos+t > s.ctx {
		return nil, fmt.Errorf("llama: prompt of %d positions does not fit: %d of %d in use", t, s.pos, s.ctx)
	}
	for lo := 0; lo < t; lo += chunk {
		hi := min(lo+chunk, t)
		a := s.buf.rows(s.b, hi-lo)
		s.b.Copy(a.x, 0, s.b.Rows(embeds, lo, hi))
		s.forward(a, hi == t)
	}
	return s.hostLog, nil
}

// Decode feeds one token at the next position and returns the logits for the
// one after it. It allocates nothing. The slice is reused by the next call.
func (s *State) Decode(id int32) ([]float32, error) {
	if id < 0 || int(id) >= s.m.Config.VocabSize {
		return nil, fmt.Errorf("llama: token %d is outside the vocabulary of %d", id, s.m.Config.VocabSize)
	}
	if s.pos >= s.ctx {
		return nil, fmt.Errorf("llama: context of %d positions is full", s.ctx)
	}
	s.id[0] = id
	s.b.Embed(s.one.x, s.m.EmbedTokens, s.id[:])
	s.forward(s.one, true)
	return s.hostLog, nil
}

// forward runs a.x (T positions starting at s.pos) through every layer,
// appending keys and values to the cache; with logits, it also computes the
// last position's logits into hostLog.
func (s *State) forward(a acts, logits bool) {
	b, m, cfg := s.b, s.m, s.m.Config
	t := a.x.Shape()[0]
	for i, l := range m.Layers {
		// h = x + o_proj(Attn(RoPE(q), RoPE(k), v)) over RMSNorm(x)
		l.InputLayernorm.Forward(b, a.xn, a.x)
		l.SelfAttn.QProj.Forward(b, a.q, a.xn, s.scratch)
		l.SelfAttn.KProj.Forward(b, a.k, a.xn, s.scratch)
		l.SelfAttn.VProj.Forward(b, a.v, a.xn, s.scratch)
		b.RoPE(a.q, m.cos, m.sin, cfg.NumAttentionHeads, s.pos)
		b.RoPE(a.k, m.cos, m.sin, cfg.NumKeyValueHeads, s.pos)
		b.Copy(s.k[i], s.pos, a.k)
		b.Copy(s.v[i], s.pos, a.v)
		b.Attention(a.att, a.q, s.k[i], s.v[i], cfg.NumAttentionHeads, cfg.NumKeyValueHeads, true, s.pos)
		l.SelfAttn.OProj.Forward(b, a.o, a.att, s.scratch)
		b.AddScaled(a.x, a.o, 1)
		// x' = h + down(silu(gate(RMSNorm(h))) ⊙ up(RMSNorm(h)))
		l.PostAttentionLayernorm.Forward(b, a.xn, a.x)
		l.MLP.GateProj.Forward(b, a.gate, a.xn, s.scratch)
		l.MLP.UpProj.Forward(b, a.up, a.xn, s.scratch)
		b.Activate(a.gate, a.gate, backend.SiLU)
		b.Mul(a.gate, a.gate, a.up)
		l.MLP.DownProj.Forward(b, a.o, a.gate, s.scratch)
		b.AddScaled(a.x, a.o, 1)
		s.trace("l_out", i, a.x)
	}
	s.pos += t
	if s.Trace != nil {
		m.Norm.Forward(b, a.xn, a.x)
		s.trace("norm", -1, a.xn)
	}
	if !logits {
		return
	}
	if t == 1 {
		m.Norm.Forward(b, a.last, a.x)
	} else {
		m.Norm.Forward(b, a.last, b.Rows(a.x, t-1, t))
	}
	m.LMHead.Forward(b, s.logits, a.last, s.scratch)
	b.Read(s.hostLog, s.logits)
}

func (s *State) trace(name string, layer int, t backend.Tensor) {
	if s.Trace != nil {
		s.Trace(name, layer, t)
	}
}
