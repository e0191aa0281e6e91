package llava

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/ptfile"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

type origCase struct {
	Name          string  `json:"name"`
	Image         *string `json:"image"`
	Question      string  `json:"question"`
	Prompt        string  `json:"prompt"`
	InputIDs      []int32 `json:"input_ids"`
	GeneratedIDs  []int32 `json:"generated_ids"`
	GeneratedText string  `json:"generated_text"`
}

// runOriginal checks the original-layout cases: the chunked tokenization with
// −200 at the image, the vision references, the last logits and the greedy ids.
//
// The base weights are F16. The reference merges the adapter in fp32 and keeps
// the fp32 result; --lora-merge stores the merged weight in the base dtype, so
// there the check is that the merged weight is the reference's rounded to F16
// (exactly), and the logits carry that rounding: logitTol states its size.
func runOriginal(t *testing.T, lora, refDir string, merge bool, logitTol float64) {
	opt := OpenOptions{VisionTower: testutil.Testdata("original", "clip-vision")}
	if lora != "" {
		opt.LoRA = testutil.Testdata("original", lora)
	}
	runOriginalFrom(t, testutil.Testdata("original", "orig-llava"), opt, refDir, merge, logitTol)
}

func runOriginalFrom(t *testing.T, model string, opt OpenOptions, refDir string, merge bool, logitTol float64) {
	b := cpu.New(0)
	defer b.Close()
	ck, err := Open(model, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Layout != LayoutOriginal || ck.Aspect.String() != "pad" {
		t.Fatalf("layout %v, aspect %v", ck.Layout, ck.Aspect)
	}
	m, err := Load(ck, b, LoadOptions{Parts: ck.AllParts(), LoRA: opt.LoRA, LoRAMerge: merge})
	if err != nil {
		t.Fatal(err)
	}
	llm := testutil.Ref(t, "original", "ref", refDir, "llm.safetensors")
	if merge {
		got := make([]float32, 64*64)
		b.Read(got, m.LLM.Layers[0].SelfAttn.QProj.Weight)
		want := testutil.F32(t, llm, "merged.model.layers.0.self_attn.q_proj.weight")
		for i := range want {
			want[i] = tensor.F16ToF32(tensor.F32ToF16(want[i]))
		}
		testutil.Exact(t, "merged q_proj (F16)", got, want)
	}
	raw, err := os.ReadFile(testutil.Testdata("original", "ref", refDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []origCase }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s/cases.json holds no cases", refDir)
	}
	vis := testutil.Ref(t, "original", "ref", "orig-llava", "vision.safetensors")
	visRef := testutil.Ref(t, "original", "ref", refDir, "vision.safetensors")
	tmpl := mustTemplate(t, "vicuna_v1")
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			req := Request{Prompt: tmpl.Prompt(c.Question, c.Image != nil), MaxTokens: len(c.GeneratedIDs)}
			if req.Prompt.Text != c.Prompt {
				t.Fatalf("prompt %q, want %q", req.Prompt.Text, c.Prompt)
			}
			if c.Image != nil {
				pixels, err := ck.Pixels(testutil.Testdata("images", *c.Image+imageExt(*c.Image)), ImageOptions{})
				if err != nil {
					t.Fatal(err)
				}
				want := testutil.F32(t, vis, *c.Image+".pixel_values")
				if *c.Image == "wide_640x360" {
					// Go's image/jpeg IDCT is not libjpeg's (issue 10): measured, not held.
					t.Logf("pixel_values from our JPEG decode: %v", testutil.Compare(pixels, want))
				} else {
					testutil.Exact(t, "pixel_values", pixels, want)
				}
				fs, err := m.Features(testutil.F32(t, vis, *c.Image+".pixel_values"), false)
				if err != nil {
					t.Fatal(err)
				}
				testutil.CloseTensor(t, "selected", fs.Selected, testutil.Tensor(t, vis, *c.Image+".selected"), 1e-4, 0.99999)
				testutil.CloseTensor(t, "projector", fs.Projected, testutil.Tensor(t, visRef, *c.Image+".projector"), 1e-4, 0.99999)
				f, err := m.SelectFeatures(testutil.F32(t, vis, *c.Image+".pixel_values"))
				if err != nil {
					t.Fatal(err)
				}
				req.Image = m.Project(f)
			}
			var first []float32
			res, err := m.generateWithFirstLogits(context.Background(), req, &first)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.PromptIDs) != fmt.Sprint(c.InputIDs) {
				t.Fatalf("prompt ids\n got %v\nwant %v", res.PromptIDs, c.InputIDs)
			}
			st := testutil.Close(t, "logits_last", first, testutil.F32(t, llm, c.Name+".logits_last"), logitTol, 0.99999)
			t.Logf("logits_last (merged into the F16 base: %v): %v", merge, st)
			if fmt.Sprint(res.IDs) != fmt.Sprint(c.GeneratedIDs) || res.Text != c.GeneratedText {
				t.Fatalf("generation\n got %v %q\nwant %v %q", res.IDs, res.Text, c.GeneratedIDs, c.GeneratedText)
			}
		})
	}
}

func imageExt(name string) string {
	if name == "wide_640x360" {
		return ".jpg"
	}
	return ".png"
}

func TestOriginalLayoutMatchesLLaVA(t *testing.T) { runOriginal(t, "", "orig-llava", false, 1e-4) }

func TestOriginalLoRAMatchesLLaVA(t *testing.T) {
	runOriginal(t, "orig-lora", "orig-lora", false, 1e-4)
}

// The F16 rounding of 14 merged 64×64 weights moves these logits by about
// 0.01 (docs/lora.md); the greedy ids must not change.
func TestOriginalLoRAMergedMatchesLLaVA(t *testing.T) {
	runOriginal(t, "orig-lora", "orig-lora", true, 0.02)
}

// TestConvertedCheckpointAnswersTheSame rewrites the pickle checkpoint as F32
// safetensors (tower alongside, config pointing at it; then with the LoRA
// merged in) and runs the same cases on the result, which loads with no
// --vision-tower and no adapter.
func TestConvertedCheckpointAnswersTheSame(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	base := OpenOptions{VisionTower: testutil.Testdata("original", "clip-vision")}
	out := t.TempDir()
	rep, err := Convert(testutil.Testdata("original", "orig-llava"), out,
		ConvertOptions{VisionTower: base.VisionTower, DType: tensor.F32, ShardBytes: 3 << 20}, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) < 3 {
		t.Fatalf("expected shards and an index, wrote %v", rep.Files)
	}
	runOriginalFrom(t, out, OpenOptions{}, "orig-llava", false, 1e-4)

	merged := t.TempDir()
	if _, err := Convert(testutil.Testdata("original", "orig-llava"), merged,
		ConvertOptions{VisionTower: base.VisionTower, LoRA: testutil.Testdata("original", "orig-lora"), DType: tensor.F32}, b); err != nil {
		t.Fatal(err)
	}
	runOriginalFrom(t, merged, OpenOptions{}, "orig-lora", false, 1e-4)
}

// TestOriginalLoRAOnAPlainLLaMABase is how liuhaotian/llava-v1.5-7b-lora is
// used: on Vicuna, a LLaMA with no projector, which non_lora_trainables.bin
// supplies.
func TestOriginalLoRAOnAPlainLLaMABase(t *testing.T) {
	base := t.TempDir()
	for _, f := range []string{"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"} {
		b, err := os.ReadFile(testutil.Testdata("original", "orig-llava", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "config.json"), []byte(`{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
		"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4, "rms_norm_eps": 1e-05}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ck, err := ptfile.OpenCheckpoint(testutil.Testdata("original", "orig-llava"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var entries []safetensors.Entry
	for _, n := range ck.Names() {
		if !strings.Contains(n, "mm_projector") {
			x, err := ck.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, safetensors.Entry{Name: n, T: x})
		}
	}
	if err := safetensors.WriteFile(filepath.Join(base, "model.safetensors"), entries, nil); err != nil {
		t.Fatal(err)
	}
	runOriginalFrom(t, base, OpenOptions{VisionTower: testutil.Testdata("original", "clip-vision"),
		LoRA: testutil.Testdata("original", "orig-lora")}, "orig-lora", false, 1e-4)
}
