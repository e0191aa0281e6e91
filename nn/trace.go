package nn

import "github.com/avq/avq/backend"

// Trace, when set on a model, is called at named points of its forward pass
// ("embeddings", "pre_layrnorm", "attn_out", "l_out", ...) with the layer
// index (−1 outside layers) and the activation. Parity tests and debugging
// dumps use it; the tensor is only valid during the call.
type Trace func(name string, layer int, t backend.Tensor)
