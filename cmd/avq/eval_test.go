package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avq/avq/eval"
)

// popeQuestions writes a small POPE label file over the test images.
func popeQuestions(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "coco_pope_random.json")
	lines := []string{
		`{"question_id": 1, "image": "square_336.png", "text": "Is there a circle in the image?", "label": "yes"}`,
		`{"question_id": 2, "image": "tall_200x500.png", "text": "Is there a dog in the image?", "label": "no"}`,
		`{"question_id": 3, "image": "wide_640x360.jpg", "text": "Is there a car in the image?", "label": "no"}`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEvalWritesAndResumes(t *testing.T) {
	questions := popeQuestions(t)
	out := filepath.Join(t.TempDir(), "preds.jsonl")
	args := []string{"eval", "--task", "pope", "--questions", questions, "--images", td("images"),
		"--model", td("tiny-llava"), "--max-tokens", "4", "--out", out}
	status, stdout, stderr := avq(t, args...)
	if status != 0 {
		t.Fatal(stderr)
	}
	preds, err := eval.ReadPredictions(out)
	if err != nil || len(preds) != 3 {
		t.Fatalf("%d predictions: %v", len(preds), err)
	}
	if !strings.Contains(stdout, "f1") || !strings.Contains(stderr, "3/3") {
		t.Fatalf("report %q, progress %q", stdout, stderr)
	}
	first, _ := os.ReadFile(out)

	// A run that died while writing its second answer: one complete line and
	// part of the next. The rerun keeps the first, asks the other two again.
	lines := strings.SplitAfter(string(first), "\n")
	if err := os.WriteFile(out, []byte(lines[0]+lines[1][:10]), 0o644); err != nil {
		t.Fatal(err)
	}
	status, _, stderr = avq(t, args...)
	if status != 0 {
		t.Fatal(stderr)
	}
	again, _ := os.ReadFile(out)
	if string(again) != string(first) || !strings.Contains(stderr, "1/3") {
		t.Fatalf("resumed run wrote %q (progress %q), the first %q", again, stderr, first)
	}
	// A finished run asks nothing.
	status, stdout, stderr = avq(t, append(args, "--json")...)
	var report map[string]any
	if status != 0 || !strings.Contains(stderr, "3/3") || json.Unmarshal([]byte(stdout), &report) != nil {
		t.Fatalf("rerun: %d %s %s", status, stdout, stderr)
	}
	if after, _ := os.ReadFile(out); string(after) != string(first) {
		t.Fatalf("a finished run changed the predictions")
	}
}

// TestEvalSplitLocalEqualsCloud: the split in process and the edge head
// here with the tail on a server give the same predictions.
func TestEvalSplitLocalEqualsCloud(t *testing.T) {
	url := startServer(t)
	questions := popeQuestions(t)
	dir := t.TempDir()
	var answers [2][]eval.Prediction
	for i, extra := range [][]string{nil, {"--cloud", url}} {
		out := filepath.Join(dir, []string{"local.jsonl", "cloud.jsonl"}[i])
		args := append([]string{"eval", "--task", "pope", "--questions", questions, "--images", td("images"),
			"--model", td("tiny-llava"), "--vq", td("vq", "block0_ln1", "alignedvq.safetensors"), "--max-tokens", "6",
			"--out", out, "--json"}, extra...)
		status, stdout, stderr := avq(t, args...)
		if status != 0 {
			t.Fatal(stderr)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("report %q: %v", stdout, err)
		}
		var err error
		if answers[i], err = eval.ReadPredictions(out); err != nil {
			t.Fatal(err)
		}
	}
	for i := range answers[0] {
		if answers[0][i] != answers[1][i] {
			t.Errorf("in process %+v, through the server %+v", answers[0][i], answers[1][i])
		}
	}
	status, _, stderr := avq(t, "eval", "--task", "pope", "--questions", questions, "--images", td("images"),
		"--model", td("tiny-llava"), "--cloud", url, "--out", filepath.Join(dir, "x.jsonl"))
	if status == 0 || !strings.Contains(stderr, "--cloud needs --vq") {
		t.Errorf("--cloud without --vq: %d %s", status, stderr)
	}
}
