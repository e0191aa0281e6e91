package main

import (
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
