// Package vq is the AlignedVQ module of arXiv 2411.05961 (the contract is
// docs/alignedvq-contract.md): it loads and validates a module file, quantizes
// split-site features on the edge (DLP_in, then the nearest codebook entry),
// rebuilds them in the cloud (codebook lookup, DLP_out, the residual affine or
// the inverted LayerNorm), carries the indices in a checked wire frame, and
// fits codebooks and residual maps for the calibration tool.
//
// The module (paper eq. 1-2), with Linear(x) = x·Wᵀ + b:
//
//	U     = Z_in + tanh(γ_in)·Linear_in(Z_in)      edge
//	i_t   = argmin_j ‖e_j‖² − 2⟨U_t, e_j⟩          edge, fp32, ties → smallest j
//	Z_out = e[i] + tanh(γ_out)·Linear_out(e[i])    cloud
//	x̂     = scale ⊙ Z_out + shift                  cloud, sites ln1 and ln2
//
// Choices the spec leaves open, made here:
//   - A frame with N = 0 is well formed (28 bytes, with or without the flag);
//     a model never expects it, so DecodeFrame refuses it by its N check.
//   - The spec says the unused high bits of the last payload byte are zero;
//     a frame where they are not is refused (ErrPadding), so every accepted
//     frame is the canonical encoding of its content.
//   - When a frame's length is wrong for its flags but exactly right with the
//     token-statistics flag flipped, the error is ErrFlags, not ErrLength:
//     the flag is the field that disagrees with the content. (The fixtures'
//     "unknown_flags" frame, a plain frame with flag 0x0001 set, is refused
//     this way, as the reference kind "flags" expects.)
//   - Token statistics must be finite with σ > 0 (ErrStats): they come from
//     sqrt(var + eps), and anything else would make the cloud divide by zero
//     or propagate NaN.
//   - K is at most MaxK = 2³¹ (indices are int32, so b ≤ 31).
//   - A module file may hold only the tensors the spec lists for its site:
//     residual.* in an attn or ffn module is refused, since it usually means
//     a mislabelled site.
//
// DecodeFrame checks in the reference oracle's order (length, magic, version,
// flags, CRC, K, N, fingerprint, b, length, index), so each fixture bad
// frame is refused with the kind the oracle recorded.
//
// KMeans is deterministic for a seed whatever the thread count: per-point
// work is independent and every sum over points runs in point order.
//
// Allowed imports: the standard library, tensor, safetensors, backend and nn.
package vq
