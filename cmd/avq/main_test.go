package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

// avq runs the command in process and returns its status, stdout and stderr.
func avq(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	status := Main(args, &out, &errb)
	return status, out.String(), errb.String()
}

func td(parts ...string) string { return testutil.Testdata(parts...) }

// readFile and writeFile fail the test on an error.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type refCase struct {
	Name         string  `json:"name"`
	Question     string  `json:"question"`
	PixelMode    *string `json:"pixel_mode"`
	Image        *string `json:"image"`
	InputIDs     []int32 `json:"input_ids"`
	GeneratedIDs []int32 `json:"generated_ids"`
	Text         string  `json:"generated_text"`
}

func cases(t *testing.T, parts ...string) map[string]refCase {
	raw := readFile(t, td(parts...))
	var f struct{ Cases []refCase }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	m := map[string]refCase{}
	for _, c := range f.Cases {
		m[c.Name] = c
	}
	return m
}

// TestRunMatchesTransformers runs the README's main job through the CLI,
// from the image file, for PNG inputs in both aspects and the text-only case.
func TestRunMatchesTransformers(t *testing.T) {
	all := cases(t, "ref", "tiny-llava", "cases.json")
	for _, name := range []string{"square_336.p1.pad", "tall_200x500.p3.pad", "gray_260x180.p1.hf", "text.t1"} {
		c, ok := all[name]
		if !ok {
			t.Fatalf("no case %s in ref/tiny-llava/cases.json", name)
		}
		args := []string{"run", "--model", td("tiny-llava"), "--prompt", c.Question, "--max-tokens", "24", "--json"}
		if c.Image != nil {
			aspect, ok := map[string]string{"pad": "pad", "hf": "crop"}[*c.PixelMode]
			if !ok {
				t.Fatalf("%s: pixel_mode %q", name, *c.PixelMode)
			}
			args = append(args, "--image", td("images", *c.Image+".png"), "--aspect", aspect)
		}
		status, out, stderr := avq(t, args...)
		if status != 0 {
			t.Fatalf("%s: status %d: %s", name, status, stderr)
		}
		var got runOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: %v in %q", name, err, out)
		}
		if fmt.Sprint(got.PromptIDs) != fmt.Sprint(c.InputIDs) || fmt.Sprint(got.IDs) != fmt.Sprint(c.GeneratedIDs) || got.Text != c.Text {
			t.Fatalf("%s:\n got %v %v %q\nwant %v %v %q", name, got.PromptIDs, got.IDs, got.Text, c.InputIDs, c.GeneratedIDs, c.Text)
		}
	}
}

func TestRunStreams(t *testing.T) {
	c, ok := cases(t, "ref", "tiny-llava", "cases.json")["text.t1"]
	if !ok {
		t.Fatal("no case text.t1 in ref/tiny-llava/cases.json")
	}
	status, out, stderr := avq(t, "run", "--model", td("tiny-llava"), "--prompt", c.Question, "--max-tokens", "24")
	if status != 0 {
		t.Fatal(stderr)
	}
	if strings.TrimSuffix(out, "\n") != c.Text {
		t.Fatalf("streamed %q, want %q", out, c.Text)
	}
	if !strings.Contains(stderr, "tokens/s") {
		t.Fatalf("no timings on stderr: %q", stderr)
	}
}

func TestFeaturesMatchTransformers(t *testing.T) {
	out := filepath.Join(t.TempDir(), "f.safetensors")
	status, _, stderr := avq(t, "features", "--model", td("tiny-llava"), "--image", td("images", "tall_200x500.png"),
		"--aspect", "pad", "--all-layers", "--out", out)
	if status != 0 {
		t.Fatal(stderr)
	}
	f, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vis := testutil.Ref(t, "ref", "tiny-llava", "vision.safetensors")
	pix := testutil.Ref(t, "ref", "images.safetensors")
	// PNG pixel values are exact (the preprocessing reproduces Pillow and
	// CLIPImageProcessor bit for bit).
	testutil.Exact(t, "pixel_values", testutil.F32(t, f, "pixel_values"), testutil.F32(t, pix, "tall_200x500.pixel_values.pad"))
	testutil.CloseTensor(t, "image_features", testutil.Tensor(t, f, "image_features"), testutil.Tensor(t, vis, "tall_200x500.selected"), 1e-4, 0.99999)
	testutil.CloseTensor(t, "projected", testutil.Tensor(t, f, "projected"), testutil.Tensor(t, vis, "tall_200x500.projector"), 1e-4, 0.99999)
	for l := range 5 {
		n := fmt.Sprintf("hidden_states.%d", l)
		testutil.CloseTensor(t, n, testutil.Tensor(t, f, n), testutil.Tensor(t, vis, "tall_200x500."+n), 1e-4, 0.99999)
	}
	if got := testutil.Tensor(t, f, "projected").Shape(); !got.Equal(tensor.Shape{1, 576, 64}) {
		t.Fatalf("projected shape %v", got)
	}
}

func TestInspect(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	status, out, stderr := avq(t, "inspect", "--cpuprofile", prof, td("tiny-llava"))
	if status != 0 {
		t.Fatal(stderr)
	}
	if st, err := os.Stat(prof); err != nil || st.Size() == 0 {
		t.Fatalf("--cpuprofile wrote no profile: %v", err)
	}
	for _, want := range []string{"llava-hf", "vision_tower.vision_model.pre_layrnorm.weight", "tensors: 96"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, out)
		}
	}
}

// copyModel makes a writable copy of tiny-llava's small files in a temp dir.
func copyModel(t *testing.T) string {
	dir := t.TempDir()
	for _, f := range []string{"config.json", "tokenizer.model", "tokenizer_config.json", "added_tokens.json",
		"special_tokens_map.json", "preprocessor_config.json", "generation_config.json"} {
		writeFile(t, filepath.Join(dir, f), readFile(t, td("tiny-llava", f)))
	}
	return dir
}

// writeWeights writes tiny-llava's tensors, changed by edit, into dir.
func writeWeights(t *testing.T, dir string, edit func(name string, x *tensor.Tensor) (*tensor.Tensor, bool)) {
	ck, err := safetensors.OpenCheckpoint(td("tiny-llava"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var entries []safetensors.Entry
	for _, n := range ck.Names() {
		x, err := ck.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		if y, keep := edit(n, x); keep {
			entries = append(entries, safetensors.Entry{Name: n, T: y})
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), entries, nil); err != nil {
		t.Fatal(err)
	}
}

// TestBadInputsFailCleanly: every bad input gives one error line naming the
// problem and exit status 1, never a panic.
func TestBadInputsFailCleanly(t *testing.T) {
	img := td("images", "square_336.png")
	run := func(model string, extra ...string) []string {
		return append([]string{"run", "--model", model, "--image", img, "--prompt", "hi", "--max-tokens", "2"}, extra...)
	}

	missing := copyModel(t)
	writeWeights(t, missing, func(n string, x *tensor.Tensor) (*tensor.Tensor, bool) {
		return x, n != "language_model.model.layers.1.mlp.up_proj.weight"
	})
	wrongShape := copyModel(t)
	writeWeights(t, wrongShape, func(n string, x *tensor.Tensor) (*tensor.Tensor, bool) {
		if n == "multi_modal_projector.linear_1.weight" {
			return x.Rows(0, 32), true
		}
		return x, true
	})
	truncated := copyModel(t)
	writeWeights(t, truncated, func(_ string, x *tensor.Tensor) (*tensor.Tensor, bool) { return x, true })
	st, err := os.Stat(filepath.Join(truncated, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(truncated, "model.safetensors"), st.Size()-100); err != nil {
		t.Fatal(err)
	}
	contradicts := copyModel(t)
	writeWeights(t, contradicts, func(_ string, x *tensor.Tensor) (*tensor.Tensor, bool) { return x, true })
	cfg := readFile(t, filepath.Join(contradicts, "config.json"))
	writeFile(t, filepath.Join(contradicts, "config.json"), bytes.Replace(cfg, []byte(`"intermediate_size": 256`), []byte(`"intermediate_size": 512`), 1))
	extra := copyModel(t)
	writeWeights(t, extra, func(_ string, x *tensor.Tensor) (*tensor.Tensor, bool) { return x, true })
	extraEntry(t, extra, "language_model.model.layers.2.mlp.up_proj.weight")
	notImage := filepath.Join(t.TempDir(), "photo.jpg")
	writeFile(t, notImage, []byte("this is not a JPEG"))
	longPrompt := strings.Repeat("word ", 5000)
	dora := t.TempDir()
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json"} {
		b := readFile(t, td("lora", f))
		if f == "adapter_config.json" {
			b = bytes.Replace(b, []byte(`"use_dora": false`), []byte(`"use_dora": true`), 1)
		}
		writeFile(t, filepath.Join(dora, f), b)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing tensor", run(missing), "layers.1.mlp.up_proj.weight"},
		{"wrong shape", run(wrongShape), "linear_1.weight"},
		{"truncated file", run(truncated), "model.safetensors"},
		{"config contradicts weights", run(contradicts), "fc1.weight"},
		{"a tensor the config does not account for", run(extra), "layers.2.mlp.up_proj.weight"},
		{"not an image", []string{"run", "--model", td("tiny-llava"), "--image", notImage, "--prompt", "hi"}, "photo.jpg"},
		{"unknown template", run(td("tiny-llava"), "--template", "chatml"), "chatml"},
		{"an adapter whose shapes do not fit", run(td("tiny-llava"), "--lora", td("gqa", "lora")), "do not fit"},
		{"an adapter option avq does not implement", run(td("tiny-llava"), "--lora", dora), "use_dora"},
		{"prompt longer than the context", []string{"run", "--model", td("tiny-llava"), "--prompt", longPrompt}, "context"},
		{"unknown aspect", run(td("tiny-llava"), "--aspect", "stretch"), "stretch"},
		{"no model", []string{"run", "--prompt", "hi"}, "--model"},
		{"missing folder", run(filepath.Join(t.TempDir(), "nope")), "config.json"},
	} {
		status, _, stderr := avq(t, c.args...)
		t.Logf("%s: %s", c.name, strings.TrimSpace(stderr))
		if status != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, c.want) ||
			strings.Contains(stderr, "internal error") {
			t.Errorf("%s: status %d, stderr %q (want one line naming %q)", c.name, status, stderr, c.want)
		}
	}
}

// extraEntry rewrites dir's model.safetensors with one more tensor.
func extraEntry(t *testing.T, dir, name string) {
	path := filepath.Join(dir, "model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []safetensors.Entry
	for _, n := range f.Names() {
		x, err := f.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		c := tensor.New(x.DType(), x.Shape()...)
		copy(c.Bytes(), x.Bytes())
		entries = append(entries, safetensors.Entry{Name: n, T: c})
	}
	f.Close()
	entries = append(entries, safetensors.Entry{Name: name, T: tensor.New(tensor.F32, 4, 4)})
	if err := safetensors.WriteFile(path, entries, nil); err != nil {
		t.Fatal(err)
	}
}

// TestIgnoredFlagsAreRefused: a flag the command takes but that would mean
// nothing in the use at hand is refused with one line naming it, never
// silently ignored.
func TestIgnoredFlagsAreRefused(t *testing.T) {
	model, module := td("tiny-llava"), td("vq", "block1_ln2", "alignedvq.safetensors")
	img := td("images", "square_336.png")
	frame, _ := refFrame(t, "block1_ln2", "square_336")
	compression := []string{"bench", "compression", "--model", model, "--vq", module, "--images", td("images")}
	runFrame := []string{"run", "--model", model, "--vq", module, "--frame", frame, "--prompt", "hi", "--max-tokens", "1"}
	featFrame := []string{"features", "--model", model, "--vq", module, "--frame", frame, "--out", filepath.Join(t.TempDir(), "f.safetensors")}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{append(compression, "--impl", "generic"), "--impl"},
		{append(compression, "--min-time", "1s"), "--min-time"},
		{append(compression, "--reps", "3"), "--reps"},
		{[]string{"run", "--model", model, "--image", img, "--prompt", "hi", "--token-stats"}, "--token-stats"},
		{[]string{"run", "--model", model, "--prompt", "hi", "--aspect", "pad"}, "--aspect"},
		{[]string{"run", "--model", model, "--prompt", "hi", "--exif"}, "--exif"},
		{append(runFrame, "--aspect", "crop"), "--aspect"},
		{append(runFrame, "--exif"), "--exif"},
		{append(runFrame, "--token-stats"), "--token-stats"},
		{append(featFrame, "--aspect", "pad"), "--aspect"},
		{append(featFrame, "--exif"), "--exif"},
		{append(featFrame, "--token-stats"), "--token-stats"},
		{[]string{"features", "--model", model, "--image", img, "--token-stats", "--out", filepath.Join(t.TempDir(), "g.safetensors")}, "--token-stats"},
		{[]string{"eval", "--task", "pope", "--questions", popeQuestions(t), "--images", td("images"), "--model", model,
			"--out", filepath.Join(t.TempDir(), "p.jsonl"), "--token-stats"}, "--token-stats"},
		{[]string{"run", "--model", model, "--prompt", "hi", "--lora-merge"}, "--lora-merge"},
		{[]string{"eval", "--task", "pope", "--questions", popeQuestions(t), "--images", td("images"), "--model", model,
			"--out", filepath.Join(t.TempDir(), "p.jsonl"), "--lora-merge"}, "--lora-merge"},
	} {
		status, _, stderr := avq(t, c.args...)
		if status != 1 || !strings.Contains(stderr, c.flag+" ") ||
			strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: status %d, stderr %q (want one line refusing %s)", c.args, status, stderr, c.flag)
		}
	}
}
