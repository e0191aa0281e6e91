package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avq/avq/eval"
)

// jsonLines writes lines as a JSON-lines file in a temp dir.
func jsonLines(t *testing.T, name string, lines ...string) string {
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, []byte(strings.Join(lines, "\n")+"\n"))
	return path
}

// popeQuestions writes a small POPE label file over the test images.
func popeQuestions(t *testing.T) string {
	return jsonLines(t, "coco_pope_random.json",
		`{"question_id": 1, "image": "square_336.png", "text": "Is there a circle in the image?", "label": "yes"}`,
		`{"question_id": 2, "image": "tall_200x500.png", "text": "Is there a dog in the image?", "label": "no"}`,
		`{"question_id": 3, "image": "wide_640x360.jpg", "text": "Is there a car in the image?", "label": "no"}`)
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
	first := readFile(t, out)

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
	again := readFile(t, out)
	if string(again) != string(first) || !strings.Contains(stderr, "1/3") {
		t.Fatalf("resumed run wrote %q (progress %q), the first %q", again, stderr, first)
	}
	// A finished run asks nothing.
	status, stdout, stderr = avq(t, append(args, "--json")...)
	var report map[string]any
	if status != 0 || !strings.Contains(stderr, "3/3") || json.Unmarshal([]byte(stdout), &report) != nil {
		t.Fatalf("rerun: %d %s %s", status, stdout, stderr)
	}
	if after := readFile(t, out); string(after) != string(first) {
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
	if len(answers[0]) != 3 || len(answers[1]) != 3 {
		t.Fatalf("%d predictions in process, %d through the server; want 3 each", len(answers[0]), len(answers[1]))
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

// TestEvalWritesVQAv2Submission: --submission lists every question of
// --submission-questions in its order, in EvalAI's form, the evaluated ones
// with their normalised answer and the rest with "", as LLaVA's
// convert_vqav2_for_submission.py fills them.
func TestEvalWritesVQAv2Submission(t *testing.T) {
	questions := jsonLines(t, "llava_vqav2_mscoco_test-dev2015.jsonl",
		`{"question_id": 20, "image": "square_336.png", "text": "What shape is this?\nAnswer the question using a single word or phrase."}`,
		`{"question_id": 40, "image": "gray_260x180.png", "text": "What color is it?\nAnswer the question using a single word or phrase."}`)
	all := jsonLines(t, "llava_vqav2_mscoco_test2015.jsonl",
		`{"question_id": 10, "image": "tiny_32x24.png", "text": "Is it day?"}`,
		`{"question_id": 20, "image": "square_336.png", "text": "What shape is this?"}`,
		`{"question_id": 30, "image": "tall_200x500.png", "text": "How many?"}`,
		`{"question_id": 40, "image": "gray_260x180.png", "text": "What color is it?"}`)
	dir := t.TempDir()
	out, sub := filepath.Join(dir, "preds.jsonl"), filepath.Join(dir, "answers_upload.json")
	args := []string{"eval", "--task", "vqav2", "--questions", questions, "--images", td("images"),
		"--model", td("tiny-llava"), "--max-tokens", "3", "--out", out}
	status, _, stderr := avq(t, append(args, "--submission", sub, "--submission-questions", all)...)
	if status != 0 {
		t.Fatal(stderr)
	}
	preds, err := eval.ReadPredictions(out)
	if err != nil {
		t.Fatal(err)
	}
	answer := eval.PredictionMap(preds)
	if len(answer) != 2 {
		t.Fatalf("%d predictions, want 2", len(answer))
	}
	var got []struct {
		QuestionID int64  `json:"question_id"`
		Answer     string `json:"answer"`
	}
	if err := json.Unmarshal(readFile(t, sub), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"", eval.NormalizeEvalAI(answer["20"]), "", eval.NormalizeEvalAI(answer["40"])}
	if len(got) != len(want) {
		t.Fatalf("submission lists %d questions, want %d", len(got), len(want))
	}
	for i, g := range got {
		if g.QuestionID != int64(10*(i+1)) || g.Answer != want[i] {
			t.Errorf("entry %d: %+v, want question_id %d answer %q", i, g, 10*(i+1), want[i])
		}
	}

	partial := jsonLines(t, "partial.jsonl", `{"question_id": 20, "image": "square_336.png", "text": "What shape is this?"}`)
	for _, c := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"a task other than vqav2", []string{"--task", "pope", "--submission", sub, "--submission-questions", all}, "--task vqav2"},
		{"no question list", []string{"--submission", sub}, "--submission-questions"},
		{"a list without the evaluated questions", []string{"--submission", sub, "--submission-questions", partial}, "lacks question_id 40"},
	} {
		status, _, stderr := avq(t, append(args, c.extra...)...)
		if status != 1 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: status %d, stderr %q (want one line naming %q)", c.name, status, stderr, c.want)
		}
	}
}
