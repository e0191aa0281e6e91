package llama

import "github.com/avq/avq/backend"

// RoPETables returns the rotary tables cos and sin [MaxPositionEmbeddings,
// HeadDim] the decoder's RoPE uses, for a backward pass (the rotation's
// transpose is RoPE with −sin).
func (m *Model) RoPETables() (cos, sin backend.Tensor) { return m.cos, m.sin }
