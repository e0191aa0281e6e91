package vit

import (
	"encoding/json"
	"fmt"

	"github.com/avq/avq/backend"
)

// Config is the part of transformers' CLIPVisionConfig the tower needs.
// Preset ViTL14_336 is openai/clip-vit-large-patch14-336
// (https://huggingface.co/openai/clip-vit-large-patch14-336/blob/main/config.json).
type Config struct {
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	NumChannels       int     `json:"num_channels"`
	ImageSize         int     `json:"image_size"`
	PatchSize         int     `json:"patch_size"`
	HiddenAct         string  `json:"hidden_act"`
	LayerNormEps      float32 `json:"layer_norm_eps"`
}

// DefaultConfig holds CLIPVisionConfig's defaults (transformers 4.40), which
// apply to every field a config.json leaves out.
func DefaultConfig() Config {
	return Config{
		HiddenSize: 768, IntermediateSize: 3072, NumHiddenLayers: 12, NumAttentionHeads: 12,
		NumChannels: 3, ImageSize: 224, PatchSize: 32, HiddenAct: "quick_gelu", LayerNormEps: 1e-5,
	}
}

// ViTL14_336 is the vision tower of LLaVA-1.5.
func ViTL14_336() Config {
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads = 1024, 4096, 24, 16
	c.ImageSize, c.PatchSize = 336, 14
	return c
}

// ParseConfig reads a CLIPVisionConfig JSON object (the vision_config of a
// LLaVA or CLIP config.json) over the defaults, and validates it.
func ParseConfig(raw []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("vit: vision config: %w", err)
	}
	return c, c.Validate()
}

// Validate checks the config is self-consistent and of a sane size, before
// anything is allocated from it.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("vit: vision config: %s = %v: %s", field, v, why)
	}
	switch {
	case c.HiddenSize <= 0 || c.HiddenSize > 1<<16:
		return bad("hidden_size", c.HiddenSize, "out of range")
	case c.IntermediateSize <= 0 || c.IntermediateSize > 1<<18:
		return bad("intermediate_size", c.IntermediateSize, "out of range")
	case c.NumHiddenLayers <= 0 || c.NumHiddenLayers > 1024:
		return bad("num_hidden_layers", c.NumHiddenLayers, "out of range")
	case c.NumAttentionHeads <= 0 || c.HiddenSize%c.NumAttentionHeads != 0:
		return bad("num_attention_heads", c.NumAttentionHeads, fmt.Sprintf("must divide hidden_size %d", c.HiddenSize))
	case c.NumChannels != 3:
		return bad("num_channels", c.NumChannels, "only RGB (3) is supported")
	case c.PatchSize <= 0 || c.ImageSize <= 0 || c.ImageSize > 4096 || c.ImageSize%c.PatchSize != 0:
		return bad("image_size", c.ImageSize, fmt.Sprintf("must be a positive multiple of patch_size %d", c.PatchSize))
	case !(c.LayerNormEps > 0):
		return bad("layer_norm_eps", c.LayerNormEps, "must be positive")
	}
	if _, err := c.activation(); err != nil {
		return err
	}
	return nil
}

// Tokens is the sequence length: the class token plus one per patch.
func (c Config) Tokens() int { g := c.ImageSize / c.PatchSize; return 1 + g*g }

func (c Config) activation() (backend.Activation, error) {
	switch c.HiddenAct {
	case "quick_gelu":
		return backend.QuickGELU, nil
	case "gelu":
		return backend.GELU, nil
	}
	return 0, fmt.Errorf("vit: vision config: hidden_act %q is not supported (quick_gelu, gelu)", c.HiddenAct)
}
