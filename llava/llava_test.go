package llava

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
)

// refCase is one case of a fixture's cases.json.
type refCase struct {
	Name          string  `json:"name"`
	Image         *string `json:"image"`
	PixelMode     *string `json:"pixel_mode"`
	Question      string  `json:"question"`
	Prompt        string  `json:"prompt"`
	Template      string  `json:"template"`
	InputIDs      []int32 `json:"input_ids"`
	GeneratedIDs  []int32 `json:"generated_ids"`
	GeneratedText string  `json:"generated_text"`
	MinStepMargin float64 `json:"min_step_margin"`
}

// mustTemplate looks up a prompt template the test needs.
func mustTemplate(t testing.TB, name string) *Template {
	t.Helper()
	tmpl, err := LookupTemplate(name)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func readCases(t testing.TB, parts ...string) []refCase {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata(parts...))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []refCase }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

// runCases checks, for every case: the prompt ids, the last prompt
// position's logits (fed the reference pixel values, so the language side is
// tested on its own), and the 24 greedy ids.
func runCases(t *testing.T, model, lora string, merge bool, refDir string) {
	b := cpu.New(0)
	defer b.Close()
	ck, err := Open(testutil.Testdata(model), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if lora != "" {
		lora = testutil.Testdata(lora)
	}
	m, err := Load(ck, b, LoadOptions{Parts: ck.AllParts(), LoRA: lora, LoRAMerge: merge})
	if err != nil {
		t.Fatal(err)
	}
	pix := testutil.Ref(t, "ref", "images.safetensors")
	ref := testutil.Ref(t, "ref", refDir, "llm.safetensors")
	cases := readCases(t, "ref", refDir, "cases.json")
	if len(cases) == 0 {
		t.Fatalf("ref/%s/cases.json holds no cases", refDir)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			tmpl, err := LookupTemplate(strings.Fields(c.Template)[0])
			if err != nil {
				t.Fatal(err)
			}
			prompt := tmpl.Prompt(c.Question, c.Image != nil)
			if prompt.Text != c.Prompt {
				t.Fatalf("prompt\n got %q\nwant %q", prompt.Text, c.Prompt)
			}
			req := Request{Prompt: prompt, MaxTokens: len(c.GeneratedIDs)}
			if c.Image != nil {
				mode := *c.PixelMode
				if mode != "pad" && mode != "hf" {
					t.Fatalf("pixel_mode %q (want pad or hf)", mode)
				}
				f, err := m.SelectFeatures(testutil.F32(t, pix, *c.Image+".pixel_values."+mode))
				if err != nil {
					t.Fatal(err)
				}
				req.Image = m.Project(f)
			}
			var firstLogits []float32
			res, err := m.generateWithFirstLogits(context.Background(), req, &firstLogits)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.PromptIDs) != fmt.Sprint(c.InputIDs) {
				t.Fatalf("prompt ids\n got %v\nwant %v", res.PromptIDs, c.InputIDs)
			}
			// Every case has its logits; a missing tensor fails the test.
			testutil.Close(t, "logits_last", firstLogits, testutil.F32(t, ref, c.Name+".logits_last"), 1e-4, 0.99999)
			if fmt.Sprint(res.IDs) != fmt.Sprint(c.GeneratedIDs) {
				t.Fatalf("greedy ids (smallest reference margin %.2g)\n got %v\nwant %v", c.MinStepMargin, res.IDs, c.GeneratedIDs)
			}
			if res.Text != c.GeneratedText {
				t.Fatalf("text\n got %q\nwant %q", res.Text, c.GeneratedText)
			}
		})
	}
}

func TestTinyLLaVAMatchesTransformers(t *testing.T) {
	runCases(t, "tiny-llava", "", false, "tiny-llava")
}

func TestTinyLLaVAF16MatchesTransformers(t *testing.T) {
	runCases(t, "tiny-llava-f16", "", false, "tiny-llava-f16")
}

func TestLoRAAppliedMatchesTransformers(t *testing.T) {
	runCases(t, "tiny-llava", "lora", false, "lora")
}

func TestLoRAMergedMatchesTransformers(t *testing.T) {
	runCases(t, "tiny-llava", "lora", true, "lora")
}
