// Package vit is the CLIP vision transformer (ViT-L/14-336 in LLaVA-1.5),
// built from a CLIPVisionConfig and run on a backend, with LLaVA's feature
// selection and the split execution the AlignedVQ edge/cloud design needs.
//
// The forward pass, as transformers' modeling_clip.py computes it
// (huggingface/transformers@4fdf58af, src/transformers/models/clip/modeling_clip.py):
//
//	x = [class_embedding; patches·Wpatchᵀ] + position_embedding   # [T, D], T = 1 + (S/P)²
//	x_0 = pre_layrnorm(x)                                          # hidden_states[0]
//	h_k = x_k + out_proj(Attn(LN1_k(x_k)))                         # per block k
//	x_{k+1} = h_k + fc2(act(fc1(LN2_k(h_k))))                      # hidden_states[k+1]
//
// A point in that computation is a Split (block, site): ln1, attn, ln2, ffn,
// in this order within a block. Run executes the segments between two points,
// so the edge runs from the pixels to a split and the cloud resumes from it;
// see docs/alignedvq-contract.md.
//
// Allowed imports: the standard library, tensor, backend and nn.
package vit
