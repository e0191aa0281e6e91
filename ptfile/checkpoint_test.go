package ptfile

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/avq/avq/tensor"
)

const originalDir = "../testdata/original"

// tinyLLaVA holds the weights every original-format checkpoint was derived
// from (testdata/original/README.md: "Values").
func tinyLLaVA(t *testing.T) map[string]stTensor {
	return readSafetensors(t, "../testdata/tiny-llava/model.safetensors")
}

// asF32 widens an F32/F16/BF16 tensor's values.
func asF32(t *testing.T, c interface {
	Tensor(string) (*tensor.Tensor, error)
}, name string) []float32 {
	t.Helper()
	tt, err := c.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return tt.ToF32()
}

func stF32(t *testing.T, e stTensor) []float32 {
	t.Helper()
	if e.DType != "F32" {
		t.Fatalf("reference is %s", e.DType)
	}
	tt, err := tensor.FromBytes(tensor.F32, tensor.Shape(e.Shape), e.Data)
	if err != nil {
		t.Fatal(err)
	}
	return tt.F32()
}

func TestShardedLLaVA(t *testing.T) {
	dir := filepath.Join(originalDir, "orig-llava")
	raw, err := os.ReadFile(filepath.Join(dir, weightsIndexName))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		} `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, filepath.Join(dir, weightsIndexName)} {
		c, err := OpenCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var keys []string
		var total int64
		for k := range idx.WeightMap {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(c.Names(), keys) {
			t.Fatalf("%s: names %v, want the weight_map's %v", path, c.Names(), keys)
		}
		for _, n := range c.Names() {
			info, _ := c.Info(n)
			total += int64(info.Shape.Numel() * info.DType.Size())
			if !info.Contiguous || info.Offset != 0 {
				t.Errorf("%s: %+v", n, info)
			}
		}
		if total != idx.Metadata.TotalSize {
			t.Errorf("Σ numel·itemsize = %d, index total_size %d", total, idx.Metadata.TotalSize)
		}
	}
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, want := range map[string]struct {
		dt    tensor.DType
		shape []int
	}{
		"model.embed_tokens.weight":                      {tensor.F16, []int{32000, 64}},
		"model.layers.0.self_attn.rotary_emb.inv_freq":   {tensor.F32, []int{8}},
		"model.layers.1.mlp.down_proj.weight":            {tensor.F16, []int{64, 172}},
		"model.layers.1.post_attention_layernorm.weight": {tensor.F16, []int{64}},
		"model.mm_projector.0.weight":                    {tensor.F32, []int{64, 64}},
		"model.mm_projector.2.bias":                      {tensor.F32, []int{64}},
		"lm_head.weight":                                 {tensor.F16, []int{32000, 64}},
	} {
		info, ok := c.Info(name)
		if !ok || info.DType != want.dt || !info.Shape.Equal(want.shape) {
			t.Errorf("%s: %+v, want %v%v", name, info, want.dt, want.shape)
		}
	}

	// Values: tiny-llava's, LLaMA part rounded to F16, vocabulary cut to 32000.
	ref := tinyLLaVA(t)
	for ours, theirs := range map[string]string{
		"model.mm_projector.0.weight":         "multi_modal_projector.linear_1.weight",
		"model.mm_projector.2.bias":           "multi_modal_projector.linear_2.bias",
		"model.layers.1.mlp.down_proj.weight": "language_model.model.layers.1.mlp.down_proj.weight",
		"lm_head.weight":                      "language_model.lm_head.weight",
	} {
		got, want := asF32(t, c, ours), stF32(t, ref[theirs])
		want = want[:len(got)] // lm_head: rows ≥ 32000 were dropped
		tt, _ := c.Tensor(ours)
		for i := range got {
			w := want[i]
			if tt.DType() == tensor.F16 {
				w = tensor.F16ToF32(tensor.F32ToF16(w))
			}
			if math.Float32bits(got[i]) != math.Float32bits(w) {
				t.Fatalf("%s[%d] = %v, want %v", ours, i, got[i], w)
			}
		}
	}

	// Opening one shard directly gives just that shard.
	one, err := OpenCheckpoint(filepath.Join(dir, "pytorch_model-00001-of-00002.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if n := len(one.Names()); n != 11 {
		t.Errorf("shard 1 has %d tensors, want 11", n)
	}
	if _, err := one.Tensor("lm_head.weight"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tensor of the other shard: %v", err)
	}
}

func TestCLIPVision(t *testing.T) {
	c, err := OpenCheckpoint(filepath.Join(originalDir, "clip-vision"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := len(c.Names()); n != 74 {
		t.Fatalf("%d tensors, want 74", n)
	}
	ids, err := c.Tensor("vision_model.embeddings.position_ids")
	if err != nil {
		t.Fatal(err)
	}
	if ids.DType() != tensor.I64 || !ids.Shape().Equal([]int{1, 577}) {
		t.Fatalf("position_ids %v", ids)
	}
	for i, v := range ids.I64() {
		if v != int64(i) {
			t.Fatalf("position_ids[%d] = %d", i, v)
		}
	}
	// Records start 64-byte aligned in the file (the local header's padding)
	// and a contiguous tensor at storage offset 0 is the record in place.
	if addr := uintptr(unsafe.Pointer(unsafe.SliceData(ids.Bytes()))); addr%64 != 0 {
		t.Errorf("position_ids at %#x: not the 64-byte aligned record in the mapping", addr)
	}
	scale, err := c.Tensor("logit_scale")
	if err != nil {
		t.Fatal(err)
	}
	// README: 0-dim, 4.6052 (quoted to 4 decimals).
	if scale.DType() != tensor.F32 || len(scale.Shape()) != 0 || math.Abs(float64(scale.F32()[0])-4.6052) > 5e-5 {
		t.Fatalf("logit_scale %v = %v", scale, scale.F32())
	}
	// Vision values equal tiny-llava's vision_tower.* exactly.
	ref := tinyLLaVA(t)
	checked := 0
	for _, n := range c.Names() {
		e, ok := ref["vision_tower."+n]
		if !ok {
			continue
		}
		tt, err := c.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		if tt.DType() != tensor.F32 || !slices.Equal([]int(tt.Shape()), e.Shape) || string(tt.Bytes()) != string(e.Data) {
			t.Errorf("%s: %v differs from the reference", n, tt)
		}
		checked++
	}
	if checked != 71 {
		t.Errorf("compared %d vision tensors, want 71", checked)
	}
}

func TestLoRA(t *testing.T) {
	dir := filepath.Join(originalDir, "orig-lora")
	ad, err := OpenCheckpoint(filepath.Join(dir, "adapter_model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	if n := len(ad.Names()); n != 28 {
		t.Fatalf("adapter: %d tensors, want 28", n)
	}
	for _, n := range ad.Names() {
		info, _ := ad.Info(n)
		if info.DType != tensor.BF16 || len(info.Shape) != 2 ||
			(strings.HasSuffix(n, "lora_A.weight") && info.Shape[0] != 8) ||
			(strings.HasSuffix(n, "lora_B.weight") && info.Shape[1] != 8) {
			t.Errorf("%s: %+v", n, info)
		}
	}
	nl, err := Open(filepath.Join(dir, "non_lora_trainables.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	want := []string{"base_model.model.model.mm_projector.0.bias", "base_model.model.model.mm_projector.0.weight",
		"base_model.model.model.mm_projector.2.bias", "base_model.model.model.mm_projector.2.weight"}
	if got := slices.Sorted(slices.Values(nl.Names())); !slices.Equal(got, want) {
		t.Fatalf("non_lora_trainables: %v", got)
	}
	for _, n := range want {
		if info, _ := nl.Info(n); info.DType != tensor.BF16 {
			t.Errorf("%s: %v", n, info.DType)
		}
	}

	// The reference merge W + (16/8)·B·A of layer 0's q_proj checks A's and
	// B's values and layout: float64 here, float32 in the reference.
	base, err := OpenCheckpoint(filepath.Join(originalDir, "orig-llava"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	w := asF32(t, base, "model.layers.0.self_attn.q_proj.weight")
	a := asF32(t, ad, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") // [8, 64]
	b := asF32(t, ad, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight") // [64, 8]
	merged := stF32(t, readSafetensors(t, filepath.Join(originalDir, "ref/orig-lora/llm.safetensors"))["merged.model.layers.0.self_attn.q_proj.weight"])
	for i := 0; i < 64; i++ {
		for j := 0; j < 64; j++ {
			s := 0.0
			for r := 0; r < 8; r++ {
				s += float64(b[i*8+r]) * float64(a[r*64+j])
			}
			if got := float64(w[i*64+j]) + 2*s; math.Abs(got-float64(merged[i*64+j])) > 1e-6 {
				t.Fatalf("merged[%d,%d] = %v, reference %v", i, j, got, merged[i*64+j])
			}
		}
	}
}

func TestOpenCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenCheckpoint(dir); !errors.Is(err, ErrOpen) {
		t.Errorf("empty directory: %v", err)
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	shard, err := os.ReadFile(filepath.Join(originalDir, "orig-llava", "pytorch_model-00001-of-00002.bin"))
	if err != nil {
		t.Fatal(err)
	}
	write("s1.bin", string(shard))
	for _, tc := range []struct{ name, index string }{
		{"escape", `{"weight_map": {"model.norm.weight": "../s1.bin"}}`},
		{"empty", `{"weight_map": {}}`},
		{"not json", `{"weight_map": `},
		{"missing tensor", `{"weight_map": {"no.such.tensor": "s1.bin"}}`},
		{"unlisted tensor", `{"weight_map": {"model.embed_tokens.weight": "s1.bin"}}`},
	} {
		_, err := OpenCheckpoint(write("idx.json", tc.index))
		if !errors.Is(err, ErrIndex) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
