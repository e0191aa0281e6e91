package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/vq"
)

// TestTrainWritesADeployableModule: `avq train` lowers the held-out
// distillation error, reports the greedy-answer agreement, writes the same bytes on 1 and 2 threads, and its
// module runs through the split: the edge's frame, the cloud tail's
// features from that frame equal to the in-process split's, an answer.
func TestTrainWritesADeployableModule(t *testing.T) {
	dir := t.TempDir()
	args := []string{"train", "--model", td("tiny-llava"), "--images", td("images"), "--init", td("vq", "block0_ln1", "alignedvq.safetensors"),
		"--steps", "6", "--batch", "2", "--lr", "3e-3", "--seed", "3", "--eval-every", "3", "--answer-tokens", "4"}
	var outs [][]byte
	for _, threads := range []string{"1", "2"} {
		out := filepath.Join(dir, "m"+threads+".safetensors")
		status, stdout, stderr := avq(t, append(args, "--threads", threads, "--out", out)...)
		if status != 0 {
			t.Fatal(stderr)
		}
		m := regexp.MustCompile(`held-out distillation MSE (\S+) → (\S+)`).FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("no held-out result in %q", stdout)
		}
		before, _ := strconv.ParseFloat(m[1], 64)
		after, _ := strconv.ParseFloat(m[2], 64)
		if !(after < before) {
			t.Errorf("held-out distillation MSE %v → %v: not lowered", before, after)
		}
		if strings.Count(stdout, "greedy answers identical to the unquantised model's") != 4 {
			t.Errorf("the answer agreement is not reported at the start, at step 3, at the end and after the refit: %q", stdout)
		}
		outs = append(outs, readFile(t, out))
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("1 and 2 threads wrote different modules")
	}
	module := filepath.Join(dir, "m1.safetensors")
	frame := filepath.Join(dir, "f.avq")
	if status, _, stderr := avq(t, "edge", "--model", td("tiny-llava"), "--vq", module, "--image", td("images", "square_336.png"),
		"--aspect", "pad", "--out", frame); status != 0 {
		t.Fatal(stderr)
	}
	features := func(args ...string) []float32 {
		out := filepath.Join(dir, "feat.safetensors")
		status, _, stderr := avq(t, append([]string{"features", "--model", td("tiny-llava"), "--vq", module, "--out", out}, args...)...)
		if status != 0 {
			t.Fatal(stderr)
		}
		f, err := safetensors.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		x, err := f.Tensor("image_features")
		if err != nil {
			t.Fatal(err)
		}
		return x.ToF32()
	}
	fromFrame := features("--frame", frame)
	inProcess := features("--image", td("images", "square_336.png"), "--aspect", "pad")
	for i := range fromFrame {
		if fromFrame[i] != inProcess[i] {
			t.Fatalf("image_features[%d]: %v from the frame, %v in process", i, fromFrame[i], inProcess[i])
		}
	}
	if status, _, stderr := avq(t, "run", "--model", td("tiny-llava"), "--vq", module, "--frame", frame,
		"--prompt", "What is in the image?", "--max-tokens", "4"); status != 0 {
		t.Fatal(stderr)
	}
}

// TestTrainBadInputs: each bad input is one error line naming it.
func TestTrainBadInputs(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	narrow := filepath.Join(dir, "narrow.safetensors")
	if err := vq.WriteModule(narrow, &vq.ModuleData{Block: 0, Site: "attn", Codebook: make([]float32, 4*32), K: 4, D: 32}); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.safetensors")
	writeFile(t, garbage, []byte("not a safetensors file"))
	base := []string{"train", "--model", td("tiny-llava"), "--out", filepath.Join(dir, "out.safetensors")}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--images", empty}, "no images"},
		{[]string{"--images", td("images"), "--init", narrow}, "narrow.safetensors"},
		{[]string{"--images", td("images"), "--init", garbage}, "garbage.safetensors"},
		{[]string{"--images", td("images"), "--objective", "task"}, "--objective"},
		{[]string{"--images", td("images"), "--steps", "3", "--epochs", "1"}, "--epochs"},
		{[]string{"--images", td("images"), "--init", narrow, "--block", "1"}, "--block"},
		{[]string{"--images", td("images"), "--codebook-update", "adam"}, "--codebook-update"},
		{[]string{"--images", td("images"), "--held-out", "0", "--answer-tokens", "4"}, "--answer-tokens"},
		{[]string{"--images", td("images"), "--init", td("vq", "block0_ln1", "alignedvq.safetensors"), "--steps", "1",
			"--resume", td("vq", "block0_ln1", "alignedvq.safetensors")}, "--resume"},
	} {
		status, _, stderr := avq(t, append(base, c.args...)...)
		if status != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: status %d, stderr %q (want one line naming %s)", c.args, status, stderr, c.want)
		}
	}
}

const trainData = `[
 {"image": "square_336.png", "conversations": [{"from": "human", "value": "<image>\nWhat shape is this?"}, {"from": "gpt", "value": "A square."}]},
 {"image": "wide_640x360.jpg", "conversations": [{"from": "human", "value": "What is shown?\n<image>"}, {"from": "gpt", "value": "A wide picture."},
   {"from": "human", "value": "Colours?"}, {"from": "gpt", "value": "Many."}]},
 {"image": "tall_200x500.png", "conversations": [{"from": "human", "value": "<image>\nDescribe it."}, {"from": "gpt", "value": "A tall image."}]},
 {"image": "gray_260x180.png", "conversations": [{"from": "human", "value": "<image>\nIs it gray?"}, {"from": "gpt", "value": "Yes."}]},
 {"image": "rgba_300x220.png", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A picture."}]}]`

// TestTrainTaskWritesAnAdapter: `avq train --objective task` lowers the
// held-out answers' cross-entropy and writes a module and a PEFT adapter
// that `avq run --lora --vq` load.
func TestTrainTaskWritesAnAdapter(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.json")
	writeFile(t, data, []byte(trainData))
	module, adapter := filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "lora")
	status, stdout, stderr := avq(t, "train", "--objective", "task", "--model", td("tiny-llava"), "--images", td("images"), "--data", data,
		"--init", td("vq", "block0_ln1", "alignedvq.safetensors"), "--steps", "6", "--batch", "2", "--lr", "3e-3", "--lora-rank", "2",
		"--seed", "2", "--out", module, "--lora-out", adapter)
	if status != 0 {
		t.Fatal(stderr)
	}
	m := regexp.MustCompile(`held-out answers' cross-entropy (\S+) → (\S+)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no held-out result in %q", stdout)
	}
	before, _ := strconv.ParseFloat(m[1], 64)
	after, _ := strconv.ParseFloat(m[2], 64)
	if !(after < before) {
		t.Errorf("held-out cross-entropy %v → %v: not lowered", before, after)
	}
	if status, _, stderr := avq(t, "run", "--model", td("tiny-llava"), "--lora", adapter, "--vq", module, "--image", td("images", "square_336.png"),
		"--prompt", "What shape is this?", "--max-tokens", "4"); status != 0 {
		t.Fatal(stderr)
	}
}

// TestTrainTaskBadInputs: each bad input of the task objective is one error
// line naming it.
func TestTrainTaskBadInputs(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(body))
		return p
	}
	good := file("good.json", trainData)
	base := []string{"train", "--model", td("tiny-llava"), "--images", td("images"), "--out", filepath.Join(dir, "o.safetensors"),
		"--init", td("vq", "block0_ln1", "alignedvq.safetensors"), "--steps", "1"}
	with := func(head []string, more ...string) []string { return append(append([]string{}, head...), more...) }
	task := with(base, "--objective", "task", "--lora-out", filepath.Join(dir, "lora"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{with(task, "--data", file("bad.json", `[{"image": "square_336.png", "conversations": [`)), "bad.json"},
		{with(task, "--data", file("noimage.json", `[{"conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]}]`)), "entry 0"},
		{with(task, "--data", file("twice.json", `[{"image": "square_336.png", "conversations": [{"from": "human", "value": "<image><image>\nQ"}, {"from": "gpt", "value": "A"}]}]`)), "placeholders"},
		{with(task, "--data", file("missing.json", `[{"image": "nothere.png", "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]}]`), "--held-out", "0"), "nothere.png"},
		{with(task, "--data", good, "--lora-targets", "q_proj,qkv"), "qkv"},
		{with(base, "--objective", "task", "--data", good), "--lora-out"},
		{with(base, "--lora-rank", "4"), "--objective task"},
	} {
		status, _, stderr := avq(t, c.args...)
		if status != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: status %d, stderr %q (want one line naming %s)", c.args[len(base):], status, stderr, c.want)
		}
	}
}

// TestBenchTrainRefusals: avq bench train knows one shape and needs K ≥ 1.
func TestBenchTrainRefusals(t *testing.T) {
	for _, c := range [][]string{{"--shape", "vit-b-224"}, {"--codebook", "0"}} {
		status, _, stderr := avq(t, append([]string{"bench", "train"}, c...)...)
		if status != 1 || !strings.Contains(stderr, c[0]) {
			t.Errorf("%v: status %d, stderr %q", c, status, stderr)
		}
	}
}
