package llama

import (
	"encoding/json"
	"fmt"
)

// Config is the part of transformers' LlamaConfig the decoder needs. Preset
// Vicuna7B is lmsys/vicuna-7b-v1.5 as llava-hf/llava-1.5-7b-hf ships it
// (https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/main/config.json).
type Config struct {
	VocabSize             int          `json:"vocab_size"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim"`
	HiddenAct             string       `json:"hidden_act"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	RMSNormEps            float32      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling"`
	AttentionBias         bool         `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	BOSTokenID            int          `json:"bos_token_id"`
	EOSTokenID            EOS          `json:"eos_token_id"`
}

// RopeScaling is LlamaConfig.rope_scaling; only the "linear" type is supported.
type RopeScaling struct {
	Type     string  `json:"type"`
	RopeType string  `json:"rope_type"` // newer configs' name for Type
	Factor   float64 `json:"factor"`
}

// EOS is eos_token_id, which configs write as a number or a list of numbers.
type EOS []int

func (e *EOS) UnmarshalJSON(b []byte) error {
	var one int
	if err := json.Unmarshal(b, &one); err == nil {
		*e = EOS{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("eos_token_id: want a number or a list of numbers")
	}
	*e = many
	return nil
}

// DefaultConfig holds LlamaConfig's defaults (transformers 4.40), which apply
// to every field a config.json leaves out.
func DefaultConfig() Config {
	return Config{
		VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32,
		NumAttentionHeads: 32, HiddenAct: "silu", MaxPositionEmbeddings: 2048, RMSNormEps: 1e-6,
		RopeTheta: 10000, BOSTokenID: 1, EOSTokenID: EOS{2},
	}
}

// Vicuna7B is the language model of LLaVA-1.5-7B (llava-hf layout: vocabulary
// padded to 32064).
func Vicuna7B() Config {
	c := DefaultConfig()
	c.VocabSize, c.MaxPositionEmbeddings, c.RMSNormEps = 32064, 4096, 1e-5
	c.NumKeyValueHeads, c.HeadDim = 32, 128
	return c
}

// ParseConfig reads a LlamaConfig JSON object (a LLaVA text_config, or a
// whole LLaMA/original-LLaVA config.json) over the defaults, and validates it.
func ParseConfig(raw []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("llama: text config: %w", err)
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	return c, c.Validate()
}

// Validate checks the config is self-consistent and of a sane size, before
// anything is allocated from it.
func (c Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("llama: text config: %s = %v: %s", field, v, why)
	}
	switch {
	case c.VocabSize <= 0 || c.VocabSize > 1<<22:
		return bad("vocab_size", c.VocabSize, "out of range")
	case c.HiddenSize <= 0 || c.HiddenSize > 1<<16:
		return bad("hidden_size", c.HiddenSize, "out of range")
	case c.IntermediateSize <= 0 || c.IntermediateSize > 1<<18:
		return bad("intermediate_size", c.IntermediateSize, "out of range")
	case c.NumHiddenLayers <= 0 || c.NumHiddenLayers > 1024:
		return bad("num_hidden_layers", c.NumHiddenLayers, "out of range")
	case c.NumAttentionHeads <= 0:
		return bad("num_attention_heads", c.NumAttentionHeads, "must be positive")
	case c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return bad("num_key_value_heads", c.NumKeyValueHeads, fmt.Sprintf("must divide num_attention_heads %d", c.NumAttentionHeads))
	case c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.HeadDim > 1024:
		return bad("head_dim", c.HeadDim, "must be a positive even number")
	case c.MaxPositionEmbeddings <= 0 || c.MaxPositionEmbeddings > 1<<20:
		return bad("max_position_embeddings", c.MaxPositionEmbeddings, "out of range")
	case !(c.RMSNormEps > 0):
		return bad("rms_norm_eps", c.RMSNormEps, "must be positive")
	case !(c.RopeTheta > 0):
		return bad("rope_theta", c.RopeTheta, "must be positive")
	case c.HiddenAct != "silu":
		return bad("hidden_act", c.HiddenAct, "only silu (SwiGLU) is supported")
	}
	if rs := c.RopeScaling; rs != nil && ((rs.Type != "linear" && rs.RopeType != "linear") || !(rs.Factor >= 1)) {
		return bad("rope_scaling", *c.RopeScaling, "only {\"type\": \"linear\", \"factor\" ≥ 1} is supported")
	}
	return nil
}

// IsEOS reports whether id ends generation.
func (c Config) IsEOS(id int32) bool {
	for _, e := range c.EOSTokenID {
		if int32(e) == id {
			return true
		}
	}
	return false
}
