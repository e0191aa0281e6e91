package backend

// Grad is the extension a backend implements to train: the backward passes
// of the ops that sit between a trainable parameter and a loss. A backend
// without it runs inference only. The same rules hold as for Backend: F32
// activations, shapes checked once per call (a mismatch panics), and every
// result depends only on the shapes and values, never on the thread count —
// each sum runs in an order fixed by the shapes.
type Grad interface {
	Backend

	// MatMulNN computes dst[M,N] = x[M,K]·w[K,N] (+ dst when acc): the
	// input gradient of a Linear, dx = dy·W, with W read as stored [Out, In].
	MatMulNN(dst, x, w Tensor, acc bool)
	// MatMulTN computes dst[N,K] = a[M,N]ᵀ·x[M,K] (+ dst when acc): the
	// weight gradient of a Linear, dW = dyᵀ·x, summed over the M rows in
	// order.
	MatMulTN(dst, a, x Tensor, acc bool)
	// LayerNormBackward writes dx, the gradient of the input of
	// LayerNorm(x; w, ·, eps) given the output's gradient dy: with
	// x̂ = (x − μ)·r, r = 1/sqrt(var + eps) and g = dy ⊙ w,
	// dx = r·(g − mean(g) − x̂·mean(g ⊙ x̂)) per row. dx may alias dy.
	LayerNormBackward(dx, dy, x, w Tensor, eps float32)
	// RMSNormBackward writes dx for RMSNorm(x; w, eps): with
	// r = 1/sqrt(mean(x²) + eps) and g = dy ⊙ w, dx = r·(g − x·r²·mean(g ⊙ x))
	// per row. dx may alias dy.
	RMSNormBackward(dx, dy, x, w Tensor, eps float32)
	// ActivateBackward writes dx = dy ⊙ f′(x). dx may alias dy.
	ActivateBackward(dx, dy, x Tensor, f Activation)
	// AttentionBackward is the gradient of Attention(q, k, v, heads, heads,
	// causal = false): from dout [T, heads·d] it writes dq, dk, dv (same
	// shapes as q, k, v), recomputing the softmax P:
	// dv = Pᵀ·dout, dP = dout·vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)),
	// dq = dS·k/√d, dk = dSᵀ·q/√d.
	AttentionBackward(dq, dk, dv, dout, q, k, v Tensor, heads int)
	// CausalAttentionBackward is the same for Attention(q, k, v, heads,
	// kvHeads, causal = true, pos0 = 0) with as many keys as queries: keys
	// past a query have P = 0, and a kv head's dk and dv are summed over the
	// query heads that read it.
	CausalAttentionBackward(dq, dk, dv, dout, q, k, v Tensor, heads, kvHeads int)
}
