// Package llama is the LLaMA / Vicuna decoder that writes LLaVA's answers,
// built from a LlamaConfig and run on a backend, with a preallocated KV cache:
// a prompt is prefilled as matrix products, then tokens are decoded one at a
// time without allocating.
//
// The forward pass, as transformers' modeling_llama.py computes it
// (huggingface/transformers@4fdf58af, src/transformers/models/llama/modeling_llama.py):
//
//	h = x + o_proj(Attn(RoPE(q_proj(RMSNorm(x))), RoPE(k_proj(·)), v_proj(·)))  # causal, GQA
//	x' = h + down_proj(silu(gate_proj(RMSNorm(h))) ⊙ up_proj(RMSNorm(h)))
//	logits = lm_head(RMSNorm(x_L))
//
// Embed and Prefill taking embeddings (not ids) is what lets LLaVA splice the
// image features into the prompt.
//
// Allowed imports: the standard library, tensor, backend and nn.
package llama
