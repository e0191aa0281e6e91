package llama

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/safetensors"
)

type refCase struct {
	Name         string  `json:"name"`
	InputIDs     []int32 `json:"input_ids"`
	GeneratedIDs []int32 `json:"generated_ids"`
}

func loadTiny(t testing.TB, b backend.Backend) *Model {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("tiny-llava", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		TextConfig json.RawMessage `json:"text_config"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(top.TextConfig)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := safetensors.OpenCheckpoint(testutil.Testdata("tiny-llava"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	m, err := Load(nn.NewWeights(ck, b, nil).Sub("language_model"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func textCase(t testing.TB) refCase {
	raw, err := os.ReadFile(testutil.Testdata("ref", "tiny-llava", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []refCase }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Cases {
		if c.Name == "text.t1" {
			return c
		}
	}
	t.Fatal("no text.t1 case")
	return refCase{}
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

func TestRoPETablesMatchTransformers(t *testing.T) {
	ref := testutil.Ref(t, "ref", "tiny-llava", "llm.safetensors")
	cfg := DefaultConfig()
	cfg.HeadDim, cfg.MaxPositionEmbeddings = 16, 768
	cos, sin := ropeTables(cfg)
	testutil.Close(t, "rope.cos", cos.F32(), testutil.F32(t, ref, "rope.cos"), 1e-6, 0.9999999)
	testutil.Close(t, "rope.sin", sin.F32(), testutil.F32(t, ref, "rope.sin"), 1e-6, 0.9999999)
}

// TestTextPromptMatchesTransformers checks every layer's output, the final
// norm and the last logits of the text-only case, then the 24 greedy ids.
func TestTextPromptMatchesTransformers(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	m := loadTiny(t, b)
	c := textCase(t)
	ref := testutil.Ref(t, "ref", "tiny-llava", "llm.safetensors")
	got := map[string][]float32{}
	s, err := m.NewState(b, 128)
	if err != nil {
		t.Fatal(err)
	}
	s.Trace = func(name string, layer int, x backend.Tensor) {
		v := make([]float32, x.Shape().Numel())
		b.Read(v, x)
		got[fmt.Sprint(name, layer)] = v
	}
	emb := b.New(len(c.InputIDs), m.Config.HiddenSize)
	if err := m.Embed(b, emb, c.InputIDs); err != nil {
		t.Fatal(err)
	}
	e := make([]float32, emb.Shape().Numel())
	b.Read(e, emb)
	testutil.Close(t, "inputs_embeds", e, testutil.F32(t, ref, "text.t1.llm_hidden_states.0"), 0, 1)
	logits, err := s.Prefill(emb)
	if err != nil {
		t.Fatal(err)
	}
	// transformers' hidden_states are the embeddings, the output of every layer
	// but the last, and the final norm of the last (FIXTURES.md says 0..3 for
	// this 2-layer model; the file holds 0..2, and the file is right).
	n := m.Config.NumHiddenLayers
	for l := range n - 1 {
		testutil.Close(t, fmt.Sprint("layer ", l), got[fmt.Sprint("l_out", l)],
			testutil.F32(t, ref, fmt.Sprintf("text.t1.llm_hidden_states.%d", l+1)), 1e-4, 0.99999)
	}
	testutil.Close(t, "final norm", got["norm-1"], testutil.F32(t, ref, fmt.Sprintf("text.t1.llm_hidden_states.%d", n)), 1e-4, 0.99999)
	st := testutil.Close(t, "logits_last", logits, testutil.F32(t, ref, "text.t1.logits_last"), 1e-4, 0.99999)
	t.Logf("logits_last: %v", st)

	s.Trace = nil
	var ids []int32
	for len(ids) < len(c.GeneratedIDs) {
		id := argmax(logits)
		ids = append(ids, id)
		if m.Config.IsEOS(id) {
			break
		}
		if logits, err = s.Decode(id); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(ids) != fmt.Sprint(c.GeneratedIDs) {
		t.Fatalf("greedy ids\n got %v\nwant %v", ids, c.GeneratedIDs)
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count is checked in the full run")
	}
	b := cpu.New(2)
	defer b.Close()
	m := loadTiny(t, b)
	s, err := m.NewState(b, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(1); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() {
		if _, err := s.Decode(29871); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per decoded token", n)
	}
}

func TestContextLimits(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	m := loadTiny(t, b)
	if _, err := m.NewState(b, m.Config.MaxPositionEmbeddings+1); err == nil {
		t.Fatal("a context past max_position_embeddings was accepted")
	}
	s, _ := m.NewState(b, 4)
	emb := b.New(5, m.Config.HiddenSize)
	if _, err := s.Prefill(emb); err == nil {
		t.Fatal("a prompt longer than the context was accepted")
	}
	if _, err := s.Decode(int32(m.Config.VocabSize)); err == nil {
		t.Fatal("a token outside the vocabulary was accepted")
	}
}
