package backend

import (
	"errors"

	"github.com/avq/avq/tensor"
)

// Tensor is memory held by a backend: host memory for the CPU backend, device
// memory for an accelerator. Activations are always F32; weights may be F32,
// F16 or BF16. A Tensor from one backend must not be passed to another.
type Tensor interface {
	DType() tensor.DType
	Shape() tensor.Shape
}

// Activation selects the pointwise nonlinearity of Activate.
type Activation uint8

const (
	GELU      Activation = iota + 1 // x·Φ(x), exact erf form (PyTorch's default gelu)
	QuickGELU                       // x·σ(1.702x) (CLIP)
	SiLU                            // x·σ(x) (LLaMA's SwiGLU gate)
)

func (a Activation) String() string {
	switch a {
	case GELU:
		return "gelu"
	case QuickGELU:
		return "quick_gelu"
	case SiLU:
		return "silu"
	}
	return "unknown"
}

// ErrUnavailable is wrapped by the error a backend constructor returns when
// the backend cannot run on this machine (no driver, no device). Callers fall
// back to the CPU backend on it.
var ErrUnavailable = errors.New("backend unavailable")

// Backend is the op set. Every op writes an F32 dst that must not alias its
// inputs unless the op says otherwise. Shapes are checked once per call; a
// mismatch is a programmer error and panics with a "backend: ..." message.
// A Backend is safe for concurrent use by several goroutines, each with its
// own tensors.
type Backend interface {
	Name() string

	// Load hands a weight to the backend. The CPU backend uses matrices in
	// place (on the checkpoint's mapping) and widens vectors to F32 once; a
	// device backend copies to device memory.
	Load(w *tensor.Tensor) (Tensor, error)
	// New allocates a zeroed F32 activation.
	New(shape ...int) Tensor
	// Rows is a view on rows [lo, hi) of t's leading dimension.
	Rows(t Tensor, lo, hi int) Tensor
	// Reshape is a view of t with another shape of the same element count.
	Reshape(t Tensor, shape ...int) Tensor
	// Write copies host values into an F32 tensor of the same element count.
	Write(dst Tensor, src []float32)
	// Read copies a tensor's values to the host, widening F16/BF16.
	Read(dst []float32, src Tensor)
	// Copy writes src into dst from row row0 of dst's leading dimension on,
	// widening F16/BF16; src must fill whole rows of dst. It is how the KV cache
	// and the spliced image features are written without making views.
	Copy(dst Tensor, row0 int, src Tensor)

	// MatMul computes dst[M,N] = x[M,K]·w[N,K]ᵀ + bias[N], the PyTorch Linear
	// form; w is F32, F16 or BF16, bias may be nil.
	MatMul(dst, x, w, bias Tensor)
	// MatMulAdd computes dst[M,N] += s·x[M,K]·w[N,K]ᵀ (the low-rank update
	// of a LoRA adapter).
	MatMulAdd(dst, x, w Tensor, s float32)
	// AddScaled computes dst += s·x. x has dst's element count, or dst's last
	// dimension (then it is added to every row).
	AddScaled(dst, x Tensor, s float32)
	// Mul computes dst = a ⊙ b elementwise; b may be one row broadcast over a's
	// rows. dst may alias a.
	Mul(dst, a, b Tensor)
	// LayerNorm normalises each row: (x − mean)/sqrt(var + eps)·w + b, with the
	// biased variance. b may be nil. dst may alias x.
	LayerNorm(dst, x, w, b Tensor, eps float32)
	// RMSNorm computes x·rsqrt(mean(x²) + eps)·w per row. dst may alias x.
	RMSNorm(dst, x, w Tensor, eps float32)
	// Activate applies f elementwise. dst may alias x.
	Activate(dst, x Tensor, f Activation)
	// RoPE rotates, in place, the rows of x [T, heads·d] that sit at positions
	// pos0 … pos0+T−1 with the "rotate_half" pairing (i, i+d/2) of each head:
	// x' = x·cos + rotate_half(x)·sin, with cos, sin tables [maxPos, d].
	RoPE(x, cos, sin Tensor, heads, pos0 int)
	// Attention computes, for each head, softmax(q·kᵀ/√d + mask)·v with q
	// [Tq, heads·d] and k, v [Tk, kvHeads·d]; query head h reads kv head
	// h/(heads/kvHeads). With causal, query i sits at position pos0+i and sees
	// keys 0 … pos0+i.
	Attention(dst, q, k, v Tensor, heads, kvHeads int, causal bool, pos0 int)
	// Embed gathers rows of table [V, D] (any float dtype) into dst [len(ids), D].
	// Ids are checked by the caller.
	Embed(dst, table Tensor, ids []int32)
	// Nearest is the codebook search of vector quantization: for each row t
	// of x [N, D] (F32) it writes idx[t], the codebook row j of [K, D] (F32,
	// F16 or BF16) with the smallest score s_j = norms_j − 2⟨x_t, e_j⟩ in
	// fp32, ties to the smallest j; best[t] = that score; and, unless margin
	// is nil, margin[t] = the second-best score minus it (+Inf when K = 1).
	// The dot products are MatMul's, in row blocks, so no N × K score matrix
	// is held whole or leaves the backend. norms and the three results are
	// host data: K and N values, small next to the scores.
	Nearest(idx []int32, best, margin []float32, x, codebook Tensor, norms []float32)
}
