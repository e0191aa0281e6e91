package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchGemmJSON(t *testing.T) {
	var out, errs bytes.Buffer
	args := []string{"bench", "gemm", "--m", "3", "--n", "5", "--k", "7", "--weights", "f32",
		"--threads", "2", "--json", "--min-time", "1ms", "--reps", "2", "--impl", "generic"}
	if st := Main(args, &out, &errs); st != 0 {
		t.Fatalf("status %d: %s", st, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want one per shape:\n%s", len(lines), out.String())
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"bench": "gemm", "m": 3.0, "n": 5.0, "k": 7.0, "weights": "F32",
		"threads": 2.0, "impl": "generic"} {
		if row[k] != want {
			t.Errorf("%s = %v, want %v", k, row[k], want)
		}
	}
	if g, ok := row["gflops"].(float64); !ok || !(g > 0) {
		t.Errorf("gflops = %v", row["gflops"])
	}
}

func TestBenchUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if st := Main([]string{"bench", "gemm", "--weights", "int8"}, &out, &errs); st != 1 ||
		!strings.Contains(errs.String(), "want f32 or f16") {
		t.Fatalf("bad --weights: status %d, %q", st, errs.String())
	}
	errs.Reset()
	if st := Main([]string{"bench", "nope"}, &out, &errs); st != 2 {
		t.Fatalf("unknown subcommand: status %d", st)
	}
}

func TestReportTable(t *testing.T) {
	var b bytes.Buffer
	if err := report(&b, false, []row{{{"name", "x"}, {"value", 1234.5}}, {{"name", "yy"}, {"value", 0.5}}}); err != nil {
		t.Fatal(err)
	}
	// Right-aligned columns; the words, in order, are what matters.
	if got := strings.Join(strings.Fields(b.String()), " "); got != "name value x 1234 yy 0.5" {
		t.Fatalf("table:\n%s", b.String())
	}
}
