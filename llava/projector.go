package llava

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
)

// ProjectorConfig is the multimodal projector's shape: Layers Linears with
// the activation between them (LLaVA-1.5: mlp2x_gelu, two Linears, exact GELU).
type ProjectorConfig struct {
	Layers int
	Act    string // transformers' name: "gelu" is the exact erf form
	Bias   bool
}

var mlpGELU = regexp.MustCompile(`^mlp(\d+)x_gelu$`)

// parseProjectorType reads the original layout's mm_projector_type.
func parseProjectorType(s string) (ProjectorConfig, error) {
	if s == "linear" {
		return ProjectorConfig{Layers: 1, Act: "gelu", Bias: true}, nil
	}
	if m := mlpGELU.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n >= 1 && n <= 16 {
			return ProjectorConfig{Layers: n, Act: "gelu", Bias: true}, nil
		}
	}
	return ProjectorConfig{}, fmt.Errorf("mm_projector_type %q is not supported (linear, mlpNx_gelu)", s)
}

// Projector maps vision features into the language model's embedding space:
// linear_2(gelu(linear_1(f))) for LLaVA-1.5.
type Projector struct {
	Layers []*nn.Linear // "multi_modal_projector.linear_{1..n}": [H, Dv], then [H, H]
	Act    backend.Activation
}

func loadProjector(w *nn.Weights, cfg ProjectorConfig, in, out int) (*Projector, error) {
	var act backend.Activation
	switch cfg.Act {
	case "gelu":
		act = backend.GELU
	case "quick_gelu":
		act = backend.QuickGELU
	case "silu":
		act = backend.SiLU
	default:
		return nil, fmt.Errorf("llava: projector activation %q is not supported (gelu, quick_gelu, silu)", cfg.Act)
	}
	p := &Projector{Act: act}
	for i := range cfg.Layers {
		d := out
		if i == 0 {
			d = in
		}
		p.Layers = append(p.Layers, w.Linear(fmt.Sprintf("linear_%d", i+1), d, out, cfg.Bias))
	}
	return p, w.Err()
}

// Forward projects features [T, Dv] to [T, H]; tmp is a [T, H] buffer.
func (p *Projector) Forward(b backend.Backend, dst, x, tmp backend.Tensor) {
	in := x
	for i, l := range p.Layers {
		out := dst
		if (len(p.Layers)-1-i)%2 == 1 {
			out = tmp
		}
		l.Forward(b, out, in, nil)
		if i < len(p.Layers)-1 {
			b.Activate(out, out, p.Act)
		}
		in = out
	}
}
