package llava

import (
	"context"
	"fmt"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/vq"
)

// A server checks a prompt's length and a frame's validity before the work;
// these are the entry points that let it do each once: Request.PromptIDs
// (Generate uses them instead of tokenizing again) and CloudTail (the cloud
// tail of a frame already parsed).
func TestTokenizeOnceParseOnce(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	ck, err := Open(testutil.Testdata("tiny-llava"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	mod, err := vq.Load(testutil.Testdata("vq", "block0_ln1", "alignedvq.safetensors"), b)
	if err != nil {
		t.Fatal(err)
	}
	m := loadSplit(t, ck, b, mod, func(*vq.Module) (Parts, error) { return ck.AllParts(), nil })
	tmpl := mustTemplate(t, DefaultTemplate)
	asked, other := tmpl.Prompt("What is in the image?", false), tmpl.Prompt("Name a colour.", false)
	want, err := m.Generate(context.Background(), Request{Prompt: other, MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Generate(context.Background(), Request{Prompt: asked, PromptIDs: m.PromptIDs(other), MaxTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.PromptIDs, got.IDs) != fmt.Sprint(want.PromptIDs, want.IDs) {
		t.Fatalf("with PromptIDs given: %v %v; want the ids' own answer %v %v", got.PromptIDs, got.IDs, want.PromptIDs, want.IDs)
	}

	pix := testutil.Ref(t, "ref", "images.safetensors")
	e, err := m.EncodeFrame(testutil.F32(t, pix, "square_336.pixel_values.pad"), false)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := m.DecodeFrame(e.Frame)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mod.DecodeFrame(e.Frame, ck.Vision.Tokens())
	if err != nil {
		t.Fatal(err)
	}
	tail, err := m.CloudTail(f)
	if err != nil {
		t.Fatal(err)
	}
	a, c := make([]float32, whole.Projected.Shape().Numel()), make([]float32, tail.Projected.Shape().Numel())
	b.Read(a, whole.Projected)
	b.Read(c, tail.Projected)
	testutil.Exact(t, "CloudTail against DecodeFrame", c, a)
}
