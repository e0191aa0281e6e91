package nn

import (
	"github.com/avq/avq/backend"
)

// LayerNorm is y = (x − mean)/sqrt(var + eps)·Weight + Bias over the last dimension.
type LayerNorm struct {
	Weight backend.Tensor // "weight" [D]
	Bias   backend.Tensor // "bias" [D]
	Eps    float32
}

// LayerNorm loads name.weight and name.bias, both [dim].
func (w *Weights) LayerNorm(name string, dim int, eps float32) *LayerNorm {
	s := w.Sub(name)
	return &LayerNorm{Weight: s.Tensor("weight", dim), Bias: s.Tensor("bias", dim), Eps: eps}
}

func (l *LayerNorm) Forward(b backend.Backend, dst, x backend.Tensor) {
	b.LayerNorm(dst, x, l.Weight, l.Bias, l.Eps)
}

// RMSNorm is y = x·rsqrt(mean(x²) + eps)·Weight over the last dimension.
type RMSNorm struct {
	Weight backend.Tensor // "weight" [D]
	Eps    float32
}

// RMSNorm loads name.weight [dim].
func (w *Weights) RMSNorm(name string, dim int, eps float32) *RMSNorm {
	return &RMSNorm{Weight: w.Sub(name).Tensor("weight", dim), Eps: eps}
}

func (r *RMSNorm) Forward(b backend.Backend, dst, x backend.Tensor) {
	b.RMSNorm(dst, x, r.Weight, r.Eps)
}
