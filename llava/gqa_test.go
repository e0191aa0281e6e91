package llava

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
)

// TestGQABF16ShardedWithLoRA runs the checkpoint of testdata/gqa (made by
// make_gqa.py with float32 torch, following transformers): grouped-query
// attention, BF16 weights in two shards under the newer transformers names,
// rope_theta 5e5, a "gelu" CLIP tower, and an rslora adapter with a
// rank_pattern applied on the fly.
func TestGQABF16ShardedWithLoRA(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	ck, err := Open(testutil.Testdata("gqa", "model"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Text.NumKeyValueHeads != 2 || ck.Text.NumAttentionHeads != 4 {
		t.Fatalf("heads %d / kv %d", ck.Text.NumAttentionHeads, ck.Text.NumKeyValueHeads)
	}
	m, err := Load(ck, b, LoadOptions{Parts: ck.AllParts(), LoRA: testutil.Testdata("gqa", "lora")})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(testutil.Testdata("gqa", "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Name, Image, Question string
			InputIDs              []int32 `json:"input_ids"`
			GeneratedIDs          []int32 `json:"generated_ids"`
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	ref := testutil.Ref(t, "gqa", "ref.safetensors")
	pix := testutil.Ref(t, "ref", "images.safetensors")
	tmpl := mustTemplate(t, "vicuna_v1")
	if len(f.Cases) == 0 {
		t.Fatal("gqa/ref.json holds no cases")
	}
	for _, c := range f.Cases {
		fs, err := m.Features(testutil.F32(t, pix, c.Image+".pixel_values.pad"), false)
		if err != nil {
			t.Fatal(err)
		}
		testutil.CloseTensor(t, c.Name+" selected", fs.Selected, testutil.Tensor(t, ref, c.Image+".selected"), 1e-4, 0.99999)
		testutil.CloseTensor(t, c.Name+" projector", fs.Projected, testutil.Tensor(t, ref, c.Image+".projector"), 1e-4, 0.99999)
		sel, err := m.SelectFeatures(testutil.F32(t, pix, c.Image+".pixel_values.pad"))
		if err != nil {
			t.Fatal(err)
		}
		var first []float32
		res, err := m.generateWithFirstLogits(context.Background(),
			Request{Prompt: tmpl.Prompt(c.Question, true), Image: m.Project(sel), MaxTokens: len(c.GeneratedIDs)}, &first)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(res.PromptIDs) != fmt.Sprint(c.InputIDs) {
			t.Fatalf("%s: prompt ids\n got %v\nwant %v", c.Name, res.PromptIDs, c.InputIDs)
		}
		st := testutil.Close(t, c.Name+" logits_last", first, testutil.F32(t, ref, c.Image+".logits_last"), 1e-4, 0.99999)
		t.Logf("%s logits_last: %v", c.Name, st)
		if fmt.Sprint(res.IDs) != fmt.Sprint(c.GeneratedIDs) {
			t.Fatalf("%s: greedy ids\n got %v\nwant %v", c.Name, res.IDs, c.GeneratedIDs)
		}
	}
}
