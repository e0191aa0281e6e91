package llava

import "testing"

func TestCanonicalNames(t *testing.T) {
	for in, want := range map[string]string{
		"language_model.model.layers.0.mlp.up_proj.weight":               "language_model.model.layers.0.mlp.up_proj.weight",
		"model.language_model.layers.0.mlp.up_proj.weight":               "language_model.model.layers.0.mlp.up_proj.weight",
		"model.layers.0.mlp.up_proj.weight":                              "language_model.model.layers.0.mlp.up_proj.weight",
		"lm_head.weight":                                                 "language_model.lm_head.weight",
		"model.vision_tower.vision_model.pre_layrnorm.bias":              "vision_tower.vision_model.pre_layrnorm.bias",
		"model.vision_tower.vision_tower.vision_model.pre_layrnorm.bias": "vision_tower.vision_model.pre_layrnorm.bias",
		"vision_model.post_layernorm.weight":                             "vision_tower.vision_model.post_layernorm.weight",
		"model.mm_projector.0.weight":                                    "multi_modal_projector.linear_1.weight",
		"model.mm_projector.2.bias":                                      "multi_modal_projector.linear_2.bias",
		"model.mm_projector.weight":                                      "multi_modal_projector.linear_1.weight",
		"model.multi_modal_projector.linear_2.weight":                    "multi_modal_projector.linear_2.weight",
	} {
		if got, ok := canonicalName(in); !ok || got != want {
			t.Errorf("%s → %q (%v), want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"logit_scale", "text_model.encoder.layers.0.mlp.fc1.weight", "vision_model.embeddings.position_ids",
		"model.layers.0.self_attn.rotary_emb.inv_freq", "visual_projection.weight", "model.mm_projector.1.weight"} {
		if got, ok := canonicalName(in); ok {
			t.Errorf("%s → %q, want it ignored", in, got)
		}
	}
}
