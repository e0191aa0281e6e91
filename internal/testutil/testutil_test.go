package testutil

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/avq/avq/tensor"
)

// recorder is a testing.TB that records failures instead of failing, so the
// helpers' own verdicts can be tested. Methods it does not define panic.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// verdict runs check against a fresh recorder and returns what it reported.
func verdict(check func(t testing.TB)) string {
	r := &recorder{}
	check(r)
	return strings.Join(r.errors, "\n")
}

// A NaN or an Inf planted in a real reference tensor, on either side, makes
// the parity helper fail however loose the tolerance.
func TestNonFiniteReferenceFails(t *testing.T) {
	ref := F32(t, Ref(t, "ref", "tiny-llava", "vision.safetensors"), "square_336.selected")
	if msg := verdict(func(r testing.TB) { Close(r, "selected", ref, ref, 0, 1) }); msg != "" {
		t.Fatalf("a reference against itself failed: %s", msg)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, side := range []string{"want", "got", "both"} {
			got, want := clone(ref), clone(ref)
			if side != "got" {
				want[1234] = bad
			}
			if side != "want" {
				got[1234] = bad
			}
			msg := verdict(func(r testing.TB) { Close(r, "selected", got, want, math.Inf(1), -1) })
			if !strings.Contains(msg, "NaN or Inf") || !strings.Contains(msg, "at 1234") {
				t.Errorf("%v planted in %s: %q, want a failure naming index 1234", bad, side, msg)
			}
		}
	}
}

func TestCompareRefusesWhatItCannotCompare(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want []float32
		problem   string
	}{
		{"length", []float32{1, 2}, []float32{1, 2, 3}, "comparing 2 values with a reference of 3"},
		{"empty", nil, nil, "nothing to compare"},
		{"zero want", []float32{1, 2}, []float32{0, 0}, "zero norm"},
		{"zero got", []float32{0, 0}, []float32{1e-30, 0}, "zero norm"},
		{"both zero", []float32{0, 0}, []float32{0, 0}, "zero norm"},
	} {
		s := Compare(c.got, c.want)
		if !strings.Contains(s.Problem, c.problem) || s.Fails(math.Inf(1), -1) == "" {
			t.Errorf("%s: problem %q, want %q and a failure", c.name, s.Problem, c.problem)
		}
		if msg := verdict(func(r testing.TB) { Close(r, c.name, c.got, c.want, math.Inf(1), -1) }); msg == "" {
			t.Errorf("%s: Close passed", c.name)
		}
	}
}

func TestCloseTolerances(t *testing.T) {
	want := []float32{1, -2, 3, 4}
	got := []float32{1, -2, 3, 4.001}
	s := Compare(got, want)
	if s.Problem != "" || s.At != 3 || math.Abs(s.MaxAbs-0.001) > 1e-6 || s.Cosine > 1 || s.Cosine < 0.99999 {
		t.Fatalf("stats %v", s)
	}
	for _, c := range []struct {
		maxAbs, minCos float64
		fails          string
	}{
		{1e-2, 0.9999, ""},
		{1e-4, 0.9999, "max|Δ|"},
		{1e-2, 1, "cosine"},
	} {
		if got := s.Fails(c.maxAbs, c.minCos); (c.fails == "") != (got == "") || !strings.Contains(got, c.fails) {
			t.Errorf("Fails(%g, %g) = %q, want %q", c.maxAbs, c.minCos, got, c.fails)
		}
	}
}

func TestCloseTensorChecksShape(t *testing.T) {
	a := tensor.FromF32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b := tensor.FromF32([]float32{1, 2, 3, 4, 5, 6}, 3, 2)
	batch := tensor.FromF32([]float32{1, 2, 3, 4, 5, 6}, 1, 2, 3)
	if msg := verdict(func(r testing.TB) { CloseTensor(r, "x", batch, a, 0, 1) }); msg != "" {
		t.Fatalf("equal tensors, one with a batch dimension: %s", msg)
	}
	if msg := verdict(func(r testing.TB) { CloseTensor(r, "x", a, b, 0, 1) }); !strings.Contains(msg, "shape [2, 3], reference [3, 2]") {
		t.Errorf("shape mismatch: %q", msg)
	}
}

func TestExact(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		name      string
		got, want []float32
		pass      bool
	}{
		{"equal", []float32{1, 2}, []float32{1, 2}, true},
		{"one ulp", []float32{1, 2}, []float32{1, math.Nextafter32(2, 3)}, false},
		{"NaN against NaN", []float32{nan}, []float32{nan}, false},
		{"signed zero", []float32{0}, []float32{float32(math.Copysign(0, -1))}, false},
		{"length", []float32{1}, []float32{1, 1}, false},
	} {
		msg := verdict(func(r testing.TB) { Exact(r, c.name, c.got, c.want) })
		if (msg == "") != c.pass {
			t.Errorf("%s: verdict %q, want pass=%v", c.name, msg, c.pass)
		}
	}
}

func clone(x []float32) []float32 { return append([]float32(nil), x...) }
