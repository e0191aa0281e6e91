package llava

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/llama"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/ptfile"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/tokenizer"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// Model is a checkpoint's parts loaded onto a backend. Which parts depends
// on the role: a local run loads everything, `avq features` the vision side,
// an edge device the tower up to its split, a cloud server the rest.
type Model struct {
	Checkpoint *Checkpoint
	B          backend.Backend
	Vision     *vit.Model   // nil when not loaded
	Projector  *Projector   // nil when not loaded
	LLM        *llama.Model // nil when not loaded
	Tokenizer  *tokenizer.Tokenizer
	VQ         *vq.Module // the AlignedVQ module, when attached

	split     vit.Split              // where VQ cuts the tower
	splitNorm *siteNorm              // the split site's LayerNorm (ln sites)
	onPrefill func(logits []float32) // test hook: sees the prompt's last logits
}

// Parts says what to load. The vision tower runs from VisionFrom to
// VisionTo (vit.Pixels to the feature layer for a whole tower).
type Parts struct {
	Vision               bool
	VisionFrom, VisionTo vit.Split
	Projector            bool
	LLM                  bool // the decoder and the tokenizer
}

// LoadOptions select the parts and an optional LoRA adapter.
type LoadOptions struct {
	Parts     Parts
	LoRA      string // adapter folder (PEFT), "" for none
	LoRAMerge bool   // merge into the weights at load instead of applying on the fly
}

// AllParts is what a local run needs: the whole tower to the feature layer,
// the projector and the decoder.
func (ck *Checkpoint) AllParts() Parts {
	p := ck.VisionParts()
	p.Projector, p.LLM = ck.Text != nil, ck.Text != nil
	return p
}

// VisionParts is the tower from the pixels to the feature layer.
func (ck *Checkpoint) VisionParts() Parts {
	l, _ := ck.Vision.ResolveLayer(ck.FeatureLayer)
	return Parts{Vision: true, VisionFrom: vit.Pixels, VisionTo: vit.HiddenState(l)}
}

// Load binds the requested parts. Every tensor of a loaded part must be used
// (an unused one means the config and the weights disagree), and every
// adapter update must find its layer.
func Load(ck *Checkpoint, b backend.Backend, opt LoadOptions) (*Model, error) {
	p := opt.Parts
	if (p.LLM || p.Projector) && ck.Text == nil {
		return nil, fmt.Errorf("llava: %s is a %v: it has no language model", ck.Dir, ck.Layout)
	}
	src := nn.Source(ck.src)
	var adapter *nn.Adapter
	if opt.LoRA != "" {
		if !p.LLM {
			return nil, fmt.Errorf("llava: a LoRA adapter needs the language model loaded")
		}
		var err error
		if src, adapter, err = openAdapter(opt.LoRA, ck, opt.LoRAMerge); err != nil {
			return nil, err
		}
	}
	w := nn.NewWeights(src, b, adapter)
	m := &Model{Checkpoint: ck, B: b}
	var err error
	if p.Vision {
		if m.Vision, err = vit.Load(w.Sub("vision_tower", "vision_model"), ck.Vision, p.VisionFrom, p.VisionTo); err != nil {
			return nil, fmt.Errorf("llava: %s: vision tower: %w", ck.Dir, err)
		}
	}
	if p.Projector {
		if m.Projector, err = loadProjector(w.Sub("multi_modal_projector"), ck.Projector,
			ck.Vision.HiddenSize, ck.Text.HiddenSize); err != nil {
			return nil, fmt.Errorf("llava: %s: projector: %w", ck.Dir, err)
		}
	}
	if p.LLM {
		if m.LLM, err = llama.Load(w.Sub("language_model"), *ck.Text); err != nil {
			return nil, fmt.Errorf("llava: %s: language model: %w", ck.Dir, err)
		}
		if m.Tokenizer, err = tokenizer.Load(ck.TokenizerDir); err != nil {
			return nil, fmt.Errorf("llava: %w", err)
		}
	}
	if err := checkAccounting(w, m, adapter); err != nil {
		return nil, fmt.Errorf("llava: %s: %w", ck.Dir, err)
	}
	return m, nil
}

// checkAccounting refuses tensors that a loaded part should have used.
func checkAccounting(w *nn.Weights, m *Model, adapter *nn.Adapter) error {
	var unused []string
	if m.LLM != nil {
		unused = append(unused, w.Unused("language_model.")...)
	}
	if m.Projector != nil {
		unused = append(unused, w.Unused("multi_modal_projector.")...)
	}
	if v := m.Vision; v != nil {
		if v.From == vit.Pixels {
			unused = append(unused, w.Unused("vision_tower.vision_model.embeddings.")...)
			unused = append(unused, w.Unused("vision_tower.vision_model.pre_layrnorm.")...)
		}
		for k := range v.Layers {
			whole := !vit.Split{Block: k - 1, Site: vit.SiteFFN}.Before(v.From) && !v.To.Before(vit.Split{Block: k, Site: vit.SiteFFN})
			if whole {
				unused = append(unused, w.Unused(fmt.Sprintf("vision_tower.vision_model.encoder.layers.%d.", k))...)
			}
		}
	}
	if len(unused) > 0 {
		more := ""
		if len(unused) > 5 {
			more = fmt.Sprintf(" and %d more", len(unused)-5)
			unused = unused[:5]
		}
		return fmt.Errorf("tensors the config does not account for: %s%s", strings.Join(unused, ", "), more)
	}
	if u := adapter.Unused(); len(u) > 0 {
		return fmt.Errorf("the LoRA adapter updates modules the model does not have: %s", strings.Join(u, ", "))
	}
	return nil
}

// openAdapter reads a LoRA folder: a PEFT adapter (adapter_config.json with
// adapter_model.safetensors or .bin), and, in the original LLaVA form, a
// non_lora_trainables.bin whose tensors (the projector) replace the base's.
// It returns the checkpoint's source with those replacements.
func openAdapter(dir string, ck *Checkpoint, merge bool) (nn.Source, *nn.Adapter, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("llava: LoRA: %w", err)
	}
	cfg, err := nn.ParseAdapterConfig(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("llava: LoRA %s: %w", dir, err)
	}
	weights, err := openSingle(dir, "adapter_model")
	if err != nil {
		return nil, nil, fmt.Errorf("llava: LoRA: %w", err)
	}
	ck.closers = append(ck.closers, weights.close)
	src := nn.Source(ck.src)
	nonLoRA := filepath.Join(dir, "non_lora_trainables.bin")
	if _, err := os.Stat(nonLoRA); err == nil {
		f, err := ptfile.Open(nonLoRA)
		if err != nil {
			return nil, nil, fmt.Errorf("llava: LoRA: %w", err)
		}
		ck.closers = append(ck.closers, f.Close)
		if src, err = overlay(ck.src, f); err != nil {
			return nil, nil, fmt.Errorf("llava: LoRA %s: %w", nonLoRA, err)
		}
	}
	rename := func(module string) (string, bool) {
		cn, ok := canonicalName(module + ".weight")
		if !ok || !ck.src.has(cn) {
			return "", false
		}
		return strings.TrimSuffix(cn, ".weight"), true
	}
	ad, err := nn.NewAdapter(cfg, weights.src, rename, merge)
	if err != nil {
		return nil, nil, fmt.Errorf("llava: LoRA %s: %w", dir, err)
	}
	return src, ad, nil
}

// openSingle opens <dir>/<stem>.safetensors or, failing that, <stem>.bin.
func openSingle(dir, stem string) (weightSet, error) {
	st := filepath.Join(dir, stem+".safetensors")
	if _, err := os.Stat(st); err == nil {
		f, err := safetensors.OpenCheckpoint(st)
		if err != nil {
			return weightSet{}, err
		}
		return weightSet{src: f, close: f.Close}, nil
	}
	bin := filepath.Join(dir, stem+".bin")
	if _, err := os.Stat(bin); err == nil {
		f, err := ptfile.Open(bin)
		if err != nil {
			return weightSet{}, err
		}
		return weightSet{src: f, close: f.Close}, nil
	}
	return weightSet{}, fmt.Errorf("%s: no %s.safetensors or %s.bin", dir, stem, stem)
}

// overlay puts the tensors of extra over the base's, named as LLaVA's builder
// names non_lora_trainables: "base_model." is dropped, then, when a key starts
// with "model.model.", one "model.". They replace the base's tensors of the
// same name or, when the base lacks them (the projector, over a plain Vicuna
// base), add them; a name LLaVA does not use is an error.
func overlay(base *canonicalSource, extra nn.Source) (nn.Source, error) {
	names := extra.Names()
	strip := false
	for _, n := range names {
		if strings.HasPrefix(strings.TrimPrefix(n, "base_model."), "model.model.") {
			strip = true
		}
	}
	o := &overlaySource{base: base, layoutName: map[string]string{}, repl: map[string]struct {
		src  nn.Source
		name string
	}{}}
	all := map[string]bool{}
	for _, n := range base.Names() {
		all[n] = true
	}
	for _, n := range names {
		k := strings.TrimPrefix(n, "base_model.")
		if strip {
			k = strings.TrimPrefix(k, "model.")
		}
		cn, ok := canonicalName(k)
		if !ok {
			return nil, fmt.Errorf("tensor %q is not a LLaVA weight", n)
		}
		o.repl[cn] = struct {
			src  nn.Source
			name string
		}{extra, n}
		o.layoutName[cn] = k
		all[cn] = true
	}
	o.names = slices.Sorted(maps.Keys(all))
	return o, nil
}

type overlaySource struct {
	base       *canonicalSource
	names      []string
	layoutName map[string]string // canonical → the name in the checkpoint's layout
	repl       map[string]struct {
		src  nn.Source
		name string
	}
}

// originalName is the name a tensor has in the checkpoint's own layout.
func (o *overlaySource) originalName(cn string) string {
	if k, ok := o.layoutName[cn]; ok {
		return k
	}
	return o.base.originalName(cn)
}

func (o *overlaySource) Names() []string { return o.names }

func (o *overlaySource) Tensor(name string) (*tensor.Tensor, error) {
	if r, ok := o.repl[name]; ok {
		return r.src.Tensor(r.name)
	}
	return o.base.Tensor(name)
}

// ErrNoImage is returned when a prompt and the images disagree.
var ErrNoImage = errors.New("llava: prompt and image disagree")
