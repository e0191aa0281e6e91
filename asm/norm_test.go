package asm

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestNorms(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, n := range vectorSizes()[1:] {
			x, w, b := make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range x {
				x[i] = float32(3 + 2*r.NormFloat64()) // an offset mean: cancellation shows
			}
			randVec(r, w)
			randVec(r, b)
			x0 := slices.Clone(x)
			var mean, ss, sq float64
			for _, v := range x {
				mean += float64(v)
				sq += float64(v) * float64(v)
			}
			mean /= float64(n)
			for _, v := range x {
				ss += (float64(v) - mean) * (float64(v) - mean)
			}
			rstd := 1 / math.Sqrt(ss/float64(n)+1e-5)
			rms := 1 / math.Sqrt(sq/float64(n)+1e-6)
			for _, bias := range [][]float32{nil, b} {
				buf, dst := guarded(n, 1)
				LayerNorm(dst, x, w, bias, 1e-5)
				for i, v := range x {
					norm := (float64(v) - mean) * rstd * float64(w[i])
					want, mag := norm, math.Abs(norm)
					if bias != nil {
						want += float64(b[i])
						mag += math.Abs(float64(b[i]))
					}
					// fp32 affine step: x−m, ·r, ·w, +b each round once.
					if tol := 8*eps32*(mag+math.Abs(float64(v)*rstd*float64(w[i]))) + 1e-30; !within(dst[i], want, tol) {
						t.Fatalf("n=%d bias=%v: layernorm[%d] = %g want %g", n, bias != nil, i, dst[i], want)
					}
				}
				checkGuards(t, "layernorm", buf, 1, 1+n)
			}
			buf, dst := guarded(n, 2)
			RMSNorm(dst, x, w, 1e-6)
			for i, v := range x {
				want := float64(v) * rms * float64(w[i])
				if !within(dst[i], want, 4*eps32*math.Abs(want)+1e-30) {
					t.Fatalf("n=%d: rmsnorm[%d] = %g want %g", n, i, dst[i], want)
				}
			}
			checkGuards(t, "rmsnorm", buf, 2, 2+n)
			if !slices.Equal(x, x0) {
				t.Fatalf("n=%d: a norm changed its input", n)
			}
			// In place gives the same values.
			y := slices.Clone(x)
			LayerNorm(y, y, w, b, 1e-5)
			want := make([]float32, n)
			LayerNorm(want, x, w, b, 1e-5)
			if !slices.Equal(y, want) {
				t.Fatalf("n=%d: in-place LayerNorm differs", n)
			}
		}
	})
}
