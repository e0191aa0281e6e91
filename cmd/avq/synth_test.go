package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSynth(t *testing.T) {
	out := filepath.Join(t.TempDir(), "set")
	if code, stdout, stderr := avq(t, "synth", "--seed", "4", "--count", "3", "--out", out); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	for _, f := range []string{"questions.json", "annotations.json", "train.json", "images/COCO_synth_000000000003.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	for _, args := range [][]string{
		{"synth", "--seed", "4", "--count", "3", "--out", out}, // not empty
		{"synth", "--count", "0", "--out", out},
		{"synth", "--count", "3"},
	} {
		code, _, stderr := avq(t, args...)
		if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "avq synth: ") {
			t.Errorf("%v: exit %d, stderr %q; want one error line", args, code, stderr)
		}
	}
}

// TestEvalReportsWhatWasSent scores a synthetic set cloud-only from the
// files, through the JPEG baseline and through the split, and checks the
// bytes per image each run reports.
func TestEvalReportsWhatWasSent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "set")
	if code, _, stderr := avq(t, "synth", "--seed", "8", "--count", "2", "--out", dir); code != 0 {
		t.Fatal(stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "images", "*.png"))
	fileBytes := 0
	for _, f := range files {
		fileBytes += len(readFile(t, f))
	}
	for _, tc := range []struct {
		args []string
		what string
		want func(float64) bool
	}{
		{nil, "image file", func(b float64) bool { return b == float64(fileBytes)/float64(len(files)) }},
		{[]string{"--jpeg-quality", "90"}, "jpeg q90", func(b float64) bool { return b > 5000 && b < float64(fileBytes)/float64(len(files)) }},
		{[]string{"--jpeg-quality", "10"}, "jpeg q10", func(b float64) bool { return b > 500 && b < 5000 }},
		{[]string{"--vq", td("vq", "block0_ln1", "alignedvq.safetensors")}, "AlignedVQ frame", func(b float64) bool { return b == 605 }},
	} {
		args := append([]string{"eval", "--task", "vqav2", "--questions", filepath.Join(dir, "questions.json"),
			"--annotations", filepath.Join(dir, "annotations.json"), "--images", filepath.Join(dir, "images"),
			"--model", td("tiny-llava"), "--max-tokens", "2", "--json", "--out", filepath.Join(t.TempDir(), "p.jsonl")}, tc.args...)
		code, stdout, stderr := avq(t, args...)
		if code != 0 {
			t.Fatalf("%v: %s", tc.args, stderr)
		}
		var r struct {
			Transfer struct {
				What          string  `json:"what"`
				Images        int     `json:"images"`
				BytesPerImage float64 `json:"bytes_per_image"`
			} `json:"transfer"`
		}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		if r.Transfer.What != tc.what || r.Transfer.Images != 2 || !tc.want(r.Transfer.BytesPerImage) {
			t.Errorf("%v: sent %+v", tc.args, r.Transfer)
		}
	}
}
