package testutil

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

// Testdata is the absolute path of the repository's testdata directory.
func Testdata(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "testdata")
	return filepath.Join(append([]string{root}, parts...)...)
}

// Stats describes how far got is from want. Problem is set when the two
// cannot be compared meaningfully: then every check fails, whatever the
// tolerance.
type Stats struct {
	MaxAbs  float64 // max |got − want| over the finite pairs
	At      int     // index of MaxAbs (−1 when there is none)
	Cosine  float64 // cosine similarity of the two vectors
	Got     float64 // got[At]
	Want    float64 // want[At]
	Elems   int
	Problem string // a length mismatch, a NaN or Inf on either side, a zero norm
}

// Compare computes Stats in float64. A NaN or an infinity in got or in want
// is a Problem (a reference that holds one cannot vouch for anything, and
// NaN compares false against every tolerance), and so is a zero-norm vector
// (its cosine is undefined).
func Compare(got, want []float32) Stats {
	s := Stats{Elems: len(got), At: -1, Cosine: math.NaN()}
	if len(got) != len(want) {
		s.Problem = fmt.Sprintf("comparing %d values with a reference of %d", len(got), len(want))
		return s
	}
	var dot, ng, nw float64
	nonFinite, first, firstSide := 0, -1, ""
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		gBad, wBad := math.IsNaN(g) || math.IsInf(g, 0), math.IsNaN(w) || math.IsInf(w, 0)
		if gBad || wBad {
			if nonFinite == 0 {
				first, firstSide = i, fmt.Sprintf("got %g, want %g", g, w)
			}
			nonFinite++
			continue
		}
		if d := math.Abs(g - w); d > s.MaxAbs || s.At < 0 {
			s.MaxAbs, s.At, s.Got, s.Want = d, i, g, w
		}
		dot += g * w
		ng += g * g
		nw += w * w
	}
	switch {
	case nonFinite > 0:
		s.Problem = fmt.Sprintf("%d NaN or Inf values, the first at %d (%s)", nonFinite, first, firstSide)
	case len(got) == 0:
		s.Problem = "nothing to compare (0 values)"
	case ng == 0 || nw == 0:
		s.Problem = fmt.Sprintf("zero norm (|got| %g, |want| %g): no cosine", math.Sqrt(ng), math.Sqrt(nw))
	default:
		s.Cosine = dot / math.Sqrt(ng*nw)
	}
	return s
}

func (s Stats) String() string {
	str := fmt.Sprintf("max|Δ| %.3g at %d (got %.7g, want %.7g), cosine %.8f, %d elements", s.MaxAbs, s.At, s.Got, s.Want, s.Cosine, s.Elems)
	if s.Problem != "" {
		str += "; " + s.Problem
	}
	return str
}

// Fails reports why s does not meet max|Δ| ≤ maxAbs and cosine ≥ minCos, or
// "" when it does. A Stats with a Problem always fails.
func (s Stats) Fails(maxAbs, minCos float64) string {
	switch {
	case s.Problem != "":
		return s.Problem
	case !(s.MaxAbs <= maxAbs):
		return fmt.Sprintf("max|Δ| %.3g > %g", s.MaxAbs, maxAbs)
	case !(s.Cosine >= minCos):
		return fmt.Sprintf("cosine %.8f < %g", s.Cosine, minCos)
	}
	return ""
}

// Close fails the test unless got and want have the same length, both are
// finite and of non-zero norm, max|got − want| ≤ maxAbs and the cosine is at
// least minCos.
func Close(t testing.TB, name string, got, want []float32, maxAbs, minCos float64) Stats {
	t.Helper()
	s := Compare(got, want)
	switch why := s.Fails(maxAbs, minCos); {
	case s.Problem != "":
		t.Errorf("%s: %v", name, s) // the Problem ends the line
	case why != "":
		t.Errorf("%s: %s (%v); tolerance max|Δ| ≤ %g, cosine ≥ %g", name, why, s, maxAbs, minCos)
	}
	return s
}

// CloseTensor is Close for tensors, which must also have the same shape up
// to dimensions of size 1 (a reference stored without the batch dimension of
// 1 matches; [576, 64] against [577, 64] does not).
func CloseTensor(t testing.TB, name string, got, want *tensor.Tensor, maxAbs, minCos float64) Stats {
	t.Helper()
	if !slices.Equal(squeeze(got.Shape()), squeeze(want.Shape())) {
		s := Stats{At: -1, Cosine: math.NaN(), Problem: fmt.Sprintf("shape %v, reference %v", got.Shape(), want.Shape())}
		t.Errorf("%s: %s", name, s.Problem)
		return s
	}
	return Close(t, name, got.ToF32(), want.ToF32(), maxAbs, minCos)
}

// squeeze drops the dimensions of size 1.
func squeeze(s tensor.Shape) []int {
	var out []int
	for _, d := range s {
		if d != 1 {
			out = append(out, d)
		}
	}
	return out
}

// Exact fails the test unless got equals want bit for bit (so a NaN fails
// even against a NaN), for results that are computed exactly.
func Exact(t testing.TB, name string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, reference %d", name, len(got), len(want))
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if math.Float32bits(g) != math.Float32bits(w) || g != g {
			t.Errorf("%s: value %d is %.9g, want exactly %.9g", name, i, g, w)
			return
		}
	}
}

// Ref opens a reference safetensors file under testdata and closes it when the
// test ends.
func Ref(t testing.TB, parts ...string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(Testdata(parts...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// F32 reads a reference tensor as float32.
func F32(t testing.TB, f *safetensors.File, name string) []float32 {
	t.Helper()
	x, err := f.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return x.ToF32()
}

// Tensor reads a reference tensor.
func Tensor(t testing.TB, f *safetensors.File, name string) *tensor.Tensor {
	t.Helper()
	x, err := f.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}
