package testutil

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
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

// Stats describes how far got is from want.
type Stats struct {
	MaxAbs float64 // max |got − want|
	At     int     // index of MaxAbs
	Cosine float64 // cosine similarity of the two vectors
	NonFin int     // count of NaN/Inf in got where want is finite
	Got    float64 // got[At]
	Want   float64 // want[At]
	Elems  int
}

// Compare computes Stats in float64.
func Compare(got, want []float32) Stats {
	if len(got) != len(want) {
		panic(fmt.Sprintf("testutil: comparing %d values with %d", len(got), len(want)))
	}
	s := Stats{Elems: len(got), At: -1}
	var dot, ng, nw float64
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			if !(math.IsNaN(w) && math.IsNaN(g)) && g != w {
				s.NonFin++
			}
			continue
		}
		if d := math.Abs(g - w); d > s.MaxAbs || s.At < 0 {
			s.MaxAbs, s.At, s.Got, s.Want = d, i, g, w
		}
		dot += g * w
		ng += g * g
		nw += w * w
	}
	s.Cosine = dot / math.Sqrt(ng*nw)
	if ng == 0 && nw == 0 {
		s.Cosine = 1
	}
	return s
}

func (s Stats) String() string {
	return fmt.Sprintf("max|Δ| %.3g at %d (got %.7g, want %.7g), cosine %.8f, %d elements", s.MaxAbs, s.At, s.Got, s.Want, s.Cosine, s.Elems)
}

// Close fails the test unless max|got − want| ≤ maxAbs, the cosine is at least
// minCos, and got has no NaN or Inf that want lacks.
func Close(t testing.TB, name string, got, want []float32, maxAbs, minCos float64) Stats {
	t.Helper()
	s := Compare(got, want)
	if s.NonFin > 0 || s.MaxAbs > maxAbs || s.Cosine < minCos {
		t.Errorf("%s: %v (%d non-finite); tolerance max|Δ| ≤ %g, cosine ≥ %g", name, s, s.NonFin, maxAbs, minCos)
	}
	return s
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

// Exists reports whether a testdata path exists.
func Exists(parts ...string) bool {
	_, err := os.Stat(Testdata(parts...))
	return err == nil
}
