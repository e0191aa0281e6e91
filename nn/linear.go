package nn

import (
	"fmt"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// Linear is y = x·Weightᵀ + Bias, with an optional LoRA update
// y += s·(x·Aᵀ)·Bᵀ applied on the fly (exact in fp32, no extra weight memory).
type Linear struct {
	Weight  backend.Tensor // "weight" [Out, In]
	Bias    backend.Tensor // "bias" [Out]; nil when the layer has none
	In, Out int
	lora    *loraDelta
}

type loraDelta struct {
	a, b  backend.Tensor // "lora_A.weight" [r, In], "lora_B.weight" [Out, r]
	rank  int
	scale float32
}

// Linear loads name.weight [out, in] and, with bias, name.bias [out]. When
// the Weights carry an adapter with an update for this module, it is applied
// on the fly or merged into the weight, as the adapter says.
func (w *Weights) Linear(name string, in, out int, bias bool) *Linear {
	s := w.Sub(name)
	l := &Linear{In: in, Out: out}
	module := w.Path(name)
	if d := w.st.adapter.take(module); d != nil {
		l.Weight = w.withLoRA(s, module, d, l)
	} else {
		l.Weight = s.Tensor("weight", out, in)
	}
	if bias {
		l.Bias = s.Tensor("bias", out)
	}
	return l
}

// withLoRA loads the base weight of module and binds its adapter update,
// merged or not.
func (w *Weights) withLoRA(s *Weights, module string, d *adapterModule, l *Linear) backend.Tensor {
	base := s.Host("weight", l.Out, l.In)
	if base == nil {
		return nil
	}
	if !d.a.Shape().Equal(tensor.Shape{d.rank, l.In}) || !d.b.Shape().Equal(tensor.Shape{l.Out, d.rank}) {
		w.Fail(fmt.Errorf("nn: adapter for %q: lora_A %v and lora_B %v do not fit a [%d, %d] weight with rank %d",
			module, d.a.Shape(), d.b.Shape(), l.Out, l.In, d.rank))
		return nil
	}
	b := w.st.b
	if w.st.adapter.merge {
		merged, err := mergeLoRA(b, base, d)
		if err != nil {
			w.Fail(fmt.Errorf("nn: adapter for %q: %w", module, err))
			return nil
		}
		base = merged
	} else {
		a, err1 := b.Load(d.a)
		bb, err2 := b.Load(d.b)
		if err1 != nil || err2 != nil {
			w.Fail(fmt.Errorf("nn: adapter for %q: cannot load its tensors", module))
			return nil
		}
		l.lora = &loraDelta{a: a, b: bb, rank: d.rank, scale: d.scale}
	}
	wt, err := b.Load(base)
	if err != nil {
		w.Fail(fmt.Errorf("nn: tensor %q: %w", s.Path("weight"), err))
		return nil
	}
	return wt
}

// Rank is the LoRA rank applied on the fly, 0 when there is none.
func (l *Linear) Rank() int {
	if l.lora == nil {
		return 0
	}
	return l.lora.rank
}

// Forward computes dst = x·Wᵀ + b (+ s·(x·Aᵀ)·Bᵀ). x is [M, In], dst [M, Out].
// A layer with an on-the-fly adapter takes its [M, r] temporary from tmp,
// which may be nil otherwise.
func (l *Linear) Forward(b backend.Backend, dst, x backend.Tensor, tmp *Scratch) {
	b.MatMul(dst, x, l.Weight, l.Bias)
	if l.lora != nil {
		m := x.Shape().Numel() / l.In
		t := tmp.Get(m, l.lora.rank)
		b.MatMul(t, x, l.lora.a, nil)
		b.MatMulAdd(dst, t, l.lora.b, l.lora.scale)
	}
}

// mergeLoRA returns W + s·B·A, computed in fp32 and stored in W's dtype.
// B·A runs on the backend as a matrix product (Aᵀ is made on the host: it
// is r × In, small).
func mergeLoRA(b backend.Backend, w *tensor.Tensor, d *adapterModule) (*tensor.Tensor, error) {
	out, in, r := w.Dim(0), w.Dim(1), d.rank
	av := d.a.ToF32()
	at := make([]float32, in*r)
	for i := range r {
		for j := range in {
			at[j*r+i] = av[i*in+j]
		}
	}
	bt, err := b.Load(tensor.FromF32(d.b.ToF32(), out, r))
	if err != nil {
		return nil, err
	}
	atT, err := b.Load(tensor.FromF32(at, in, r))
	if err != nil {
		return nil, err
	}
	prod := b.New(out, in)
	b.MatMul(prod, bt, atT, nil)
	delta := make([]float32, out*in)
	b.Read(delta, prod)
	base := w.ToF32()
	merged := tensor.New(w.DType(), out, in)
	for i := range base {
		v := base[i] + d.scale*delta[i]
		switch w.DType() {
		case tensor.F32:
			merged.F32()[i] = v
		case tensor.F16:
			merged.U16()[i] = tensor.F32ToF16(v)
		case tensor.BF16:
			merged.U16()[i] = tensor.F32ToBF16(v)
		}
	}
	return merged, nil
}

// Scratch is a reusable F32 buffer that hands out temporaries, so that layers
// needing one (LoRA's x·Aᵀ) do not allocate. Views are cached by shape, so
// a decode loop that asks for the same shapes again allocates nothing. A
// Scratch belongs to one forward pass at a time.
type Scratch struct {
	b     backend.Backend
	buf   backend.Tensor
	n     int
	views map[[2]int]backend.Tensor
}

// maxCachedViews bounds the view cache: prefill asks for one shape per prompt
// length, and a long-running server sees many.
const maxCachedViews = 64

// NewScratch allocates a scratch of n floats on b.
func NewScratch(b backend.Backend, n int) *Scratch {
	return &Scratch{b: b, buf: b.New(max(n, 1)), n: n, views: map[[2]int]backend.Tensor{}}
}

// Get returns a [rows, cols] view on the start of the buffer. Successive
// calls share memory: a temporary lives until the next Get.
func (s *Scratch) Get(rows, cols int) backend.Tensor {
	if s == nil || rows*cols > s.n {
		panic("nn: scratch too small for a temporary")
	}
	key := [2]int{rows, cols}
	if v, ok := s.views[key]; ok {
		return v
	}
	v := s.b.Reshape(s.b.Rows(s.buf, 0, rows*cols), rows, cols)
	if len(s.views) < maxCachedViews {
		s.views[key] = v
	}
	return v
}

// Merged returns W + s·B·A for the module, computed in fp32 and stored in
// w's dtype, and reports whether the adapter updates that module at all. It
// is how a checkpoint is rewritten with its adapter folded in.
func (a *Adapter) Merged(b backend.Backend, module string, w *tensor.Tensor) (*tensor.Tensor, bool, error) {
	d := a.take(module)
	if d == nil {
		return w, false, nil
	}
	if len(w.Shape()) != 2 || !d.a.Shape().Equal(tensor.Shape{d.rank, w.Dim(1)}) || !d.b.Shape().Equal(tensor.Shape{w.Dim(0), d.rank}) {
		return nil, true, fmt.Errorf("nn: adapter for %q: lora_A %v and lora_B %v do not fit a %v weight", module, d.a.Shape(), d.b.Shape(), w.Shape())
	}
	m, err := mergeLoRA(b, w, d)
	return m, true, err
}
