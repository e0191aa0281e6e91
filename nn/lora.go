package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/avq/avq/tensor"
)

// AdapterConfig is the part of a PEFT adapter_config.json that decides what an
// adapter computes. Options that change the computation and are not
// implemented are refused by Check, by name; options that only matter for
// training (dropout, initialisation) are ignored.
type AdapterConfig struct {
	PeftType      string             `json:"peft_type"`
	R             int                `json:"r"`
	LoraAlpha     float64            `json:"lora_alpha"`
	UseRSLoRA     bool               `json:"use_rslora"`
	RankPattern   map[string]int     `json:"rank_pattern"`
	AlphaPattern  map[string]float64 `json:"alpha_pattern"`
	TargetModules json.RawMessage    `json:"target_modules"`

	UseDoRA          bool            `json:"use_dora"`
	FanInFanOut      bool            `json:"fan_in_fan_out"`
	Bias             string          `json:"bias"`
	ModulesToSave    []string        `json:"modules_to_save"`
	LoraBias         bool            `json:"lora_bias"`
	MegatronConfig   json.RawMessage `json:"megatron_config"`
	LayerReplication json.RawMessage `json:"layer_replication"`
	TargetParameters json.RawMessage `json:"target_parameters"`
	TrainableTokens  json.RawMessage `json:"trainable_token_indices"`
}

// ParseAdapterConfig reads adapter_config.json and refuses what it cannot apply.
func ParseAdapterConfig(b []byte) (AdapterConfig, error) {
	var c AdapterConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("nn: adapter_config.json: %w", err)
	}
	return c, c.check()
}

func isSet(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null" && s != "[]" && s != "{}"
}

func (c AdapterConfig) check() error {
	refuse := func(field, why string) error {
		return fmt.Errorf("nn: adapter_config.json: %s %s is not supported", field, why)
	}
	switch {
	case c.PeftType != "LORA":
		return refuse("peft_type", fmt.Sprintf("%q", c.PeftType))
	case c.R <= 0:
		return fmt.Errorf("nn: adapter_config.json: r must be positive, got %d", c.R)
	case c.UseDoRA:
		return refuse("use_dora", "(DoRA)")
	case c.FanInFanOut:
		return refuse("fan_in_fan_out", "true")
	case c.Bias != "" && c.Bias != "none":
		return refuse("bias", fmt.Sprintf("%q", c.Bias))
	case len(c.ModulesToSave) > 0:
		return refuse("modules_to_save", fmt.Sprint(c.ModulesToSave))
	case c.LoraBias:
		return refuse("lora_bias", "true")
	case isSet(c.MegatronConfig):
		return refuse("megatron_config", "")
	case isSet(c.LayerReplication):
		return refuse("layer_replication", "")
	case isSet(c.TargetParameters):
		return refuse("target_parameters", "")
	case isSet(c.TrainableTokens):
		return refuse("trainable_token_indices", "")
	}
	for k, r := range c.RankPattern {
		if r <= 0 {
			return fmt.Errorf("nn: adapter_config.json: rank_pattern %q: rank %d", k, r)
		}
	}
	return nil
}

// Adapter is a loaded LoRA adapter: one low-rank update per module path.
type Adapter struct {
	mods  map[string]*adapterModule
	merge bool
}

type adapterModule struct {
	a, b  *tensor.Tensor // lora_A [r, in], lora_B [out, r], as stored
	rank  int
	scale float32
	used  bool
}

// NewAdapter collects the updates in src (PEFT keys
// "base_model.model.<module>.lora_A.weight" and ".lora_B.weight"). rename maps
// a module path as the adapter names it to the path the model's Weights use,
// and reports false for a module the model does not have. merge selects
// merging into the base weights at load instead of applying on the fly.
func NewAdapter(cfg AdapterConfig, src Source, rename func(module string) (string, bool), merge bool) (*Adapter, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ad := &Adapter{mods: map[string]*adapterModule{}, merge: merge}
	names := src.Names()
	sort.Strings(names)
	for _, key := range names {
		module, part, ok := splitAdapterKey(key)
		if !ok {
			return nil, fmt.Errorf("nn: adapter tensor %q is not a LoRA A/B weight (only lora_A/lora_B on Linear layers are supported)", key)
		}
		target, ok := rename(module)
		if !ok {
			return nil, fmt.Errorf("nn: adapter tensor %q: the model has no module %q", key, module)
		}
		t, err := src.Tensor(key)
		if err != nil {
			return nil, fmt.Errorf("nn: adapter tensor %q: %w", key, err)
		}
		if len(t.Shape()) != 2 || !t.DType().IsFloat() || t.DType() == tensor.F64 {
			return nil, fmt.Errorf("nn: adapter tensor %q: want a 2-D F32/F16/BF16 matrix, got %v", key, t)
		}
		m := ad.mods[target]
		if m == nil {
			r, alpha := cfg.rankAlpha(module)
			scale := alpha / float64(r)
			if cfg.UseRSLoRA {
				scale = alpha / math.Sqrt(float64(r))
			}
			m = &adapterModule{rank: r, scale: float32(scale)}
			ad.mods[target] = m
		}
		if part == "lora_A" {
			m.a = t
		} else {
			m.b = t
		}
	}
	for target, m := range ad.mods {
		if m.a == nil || m.b == nil {
			return nil, fmt.Errorf("nn: adapter for %q has only one of lora_A and lora_B", target)
		}
		if m.a.Dim(0) != m.rank || m.b.Dim(1) != m.rank {
			return nil, fmt.Errorf("nn: adapter for %q: lora_A %v and lora_B %v disagree with rank %d from adapter_config.json",
				target, m.a.Shape(), m.b.Shape(), m.rank)
		}
	}
	if len(ad.mods) == 0 {
		return nil, fmt.Errorf("nn: adapter holds no LoRA weights")
	}
	return ad, nil
}

// splitAdapterKey turns "base_model.model.X.lora_A.weight" into (X, "lora_A").
func splitAdapterKey(key string) (module, part string, ok bool) {
	rest, found := strings.CutPrefix(key, "base_model.model.")
	if !found {
		return "", "", false
	}
	for _, p := range []string{"lora_A", "lora_B"} {
		if m, found := strings.CutSuffix(rest, "."+p+".weight"); found {
			return m, p, true
		}
	}
	return "", "", false
}

// rankAlpha applies rank_pattern and alpha_pattern as PEFT does: a pattern key
// matches a module path when the path ends with it after a dot (or equals it).
func (c AdapterConfig) rankAlpha(module string) (int, float64) {
	r, alpha := c.R, c.LoraAlpha
	if k, ok := patternKey(c.RankPattern, module); ok {
		r = c.RankPattern[k]
	}
	if k, ok := patternKey(c.AlphaPattern, module); ok {
		alpha = c.AlphaPattern[k]
	}
	return r, alpha
}

func patternKey[V any](m map[string]V, module string) (string, bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`)
		if err == nil && re.MatchString(module) {
			return k, true
		}
	}
	return "", false
}

// take hands the update for module to the Linear that loads it.
func (a *Adapter) take(module string) *adapterModule {
	if a == nil {
		return nil
	}
	m := a.mods[module]
	if m != nil {
		m.used = true
	}
	return m
}

// Unused lists the modules the adapter updates that no Linear loaded: an
// adapter for another model.
func (a *Adapter) Unused() []string {
	if a == nil {
		return nil
	}
	var out []string
	for k, m := range a.mods {
		if !m.used {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
