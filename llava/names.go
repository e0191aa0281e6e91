package llava

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/avq/avq/nn"
	"github.com/avq/avq/tensor"
)

// Canonical tensor names are llava-hf's (transformers ≤ 4.44):
//
//	vision_tower.vision_model.*          the CLIP tower
//	multi_modal_projector.linear_{1,2}.* the projector
//	language_model.model.*               LLaMA without its head
//	language_model.lm_head.*             the head
//
// canonicalName maps the other layouts onto them: newer transformers
// ("model.language_model.*", "model.vision_tower.*", "lm_head.*"), the
// original LLaVA repository (LLaMA at the root, "model.mm_projector.{0,2}.*",
// a tower saved as "model.vision_tower.vision_tower.*"), and a standalone CLIP
// checkpoint ("vision_model.*"). It reports false for tensors LLaVA does not
// use (CLIP's text tower, logit_scale, buffers).
func canonicalName(name string) (string, bool) {
	if strings.HasSuffix(name, ".position_ids") || strings.HasSuffix(name, ".inv_freq") {
		return "", false // buffers some checkpoints store; both are recomputed
	}
	for _, r := range renames {
		if rest, ok := strings.CutPrefix(name, r.from); ok {
			if r.to == "" {
				return "", false
			}
			return r.to + rest, true
		}
	}
	if m := mmProjector.FindStringSubmatch(name); m != nil {
		// mlpNx_gelu: Sequential(Linear, GELU, Linear, GELU, ...): the Linears
		// are the even indices; "linear" is a bare Linear with no index.
		if m[1] == "" {
			return "multi_modal_projector.linear_1." + m[2], true
		}
		i, _ := strconv.Atoi(m[1])
		if i%2 != 0 {
			return "", false
		}
		return fmt.Sprintf("multi_modal_projector.linear_%d.%s", i/2+1, m[2]), true
	}
	for _, p := range []string{"vision_tower.", "multi_modal_projector.", "language_model."} {
		if strings.HasPrefix(name, p) {
			return name, true
		}
	}
	if rest, ok := strings.CutPrefix(name, "model."); ok {
		return "language_model.model." + rest, true
	}
	return "", false
}

var mmProjector = regexp.MustCompile(`^model\.mm_projector\.(?:(\d+)\.)?(weight|bias)$`)

var renames = []struct{ from, to string }{
	{"model.language_model.", "language_model.model."},
	{"model.vision_tower.vision_tower.", "vision_tower."},
	{"model.vision_tower.", "vision_tower."},
	{"model.multi_modal_projector.", "multi_modal_projector."},
	{"lm_head.", "language_model.lm_head."},
	{"vision_model.", "vision_tower.vision_model."},
	{"text_model.", ""},
	{"visual_projection.", ""},
	{"text_projection.", ""},
	{"logit_scale", ""},
}

// canonicalSource presents one or more checkpoints under canonical names.
type canonicalSource struct {
	names []string
	from  map[string]struct {
		src  nn.Source
		name string
	}
}

// newCanonicalSource merges srcs; a canonical name two tensors map to is an
// error that names both.
func newCanonicalSource(srcs ...nn.Source) (*canonicalSource, error) {
	c := &canonicalSource{from: map[string]struct {
		src  nn.Source
		name string
	}{}}
	for _, s := range srcs {
		for _, n := range s.Names() {
			cn, ok := canonicalName(n)
			if !ok {
				continue
			}
			if prev, dup := c.from[cn]; dup {
				return nil, fmt.Errorf("llava: tensors %q and %q are the same weight (%s)", prev.name, n, cn)
			}
			c.from[cn] = struct {
				src  nn.Source
				name string
			}{s, n}
			c.names = append(c.names, cn)
		}
	}
	sort.Strings(c.names)
	return c, nil
}

func (c *canonicalSource) Names() []string { return c.names }

func (c *canonicalSource) Tensor(name string) (*tensor.Tensor, error) {
	f, ok := c.from[name]
	if !ok {
		return nil, fmt.Errorf("llava: no tensor %q", name)
	}
	return f.src.Tensor(f.name)
}

// has reports whether any canonical name starts with prefix.
func (c *canonicalSource) has(prefix string) bool {
	i := sort.SearchStrings(c.names, prefix)
	return i < len(c.names) && strings.HasPrefix(c.names[i], prefix)
}

// originalName is the tensor name in the file a canonical name came from,
// for error messages and inspect.
func (c *canonicalSource) originalName(name string) string {
	if f, ok := c.from[name]; ok {
		return f.name
	}
	return name
}

// withoutTower hides a checkpoint's vision-tower tensors (an original-layout
// checkpoint saved with its tower), whose place the separate tower takes.
type withoutTower struct{ nn.Source }

func (w withoutTower) Names() []string {
	var out []string
	for _, n := range w.Source.Names() {
		if cn, ok := canonicalName(n); !ok || !strings.HasPrefix(cn, "vision_tower.") {
			out = append(out, n)
		}
	}
	return out
}
