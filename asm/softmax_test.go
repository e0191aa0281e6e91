package asm

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExp32(t *testing.T) {
	var worst float64
	for x := float32(-103); x < 88; x += 0.00137 {
		got := float64(Exp32(x))
		want := math.Exp(float64(x))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want))
		if ulp == 0 {
			continue
		}
		if e := math.Abs(got-want) / ulp; e > worst {
			worst = e
		}
	}
	if worst > 1 {
		t.Fatalf("worst error %.2f ulp", worst)
	}
	if Exp32(-200) != 0 || !math.IsInf(float64(Exp32(100)), 1) || Exp32(0) != 1 {
		t.Fatal("range ends wrong")
	}
}

func TestSoftmax(t *testing.T) {
	x := []float32{1, 2, 3, -1e30}
	Softmax(x)
	den := math.Exp(-2) + math.Exp(-1) + 1
	want := []float64{math.Exp(-2) / den, math.Exp(-1) / den, 1 / den, 0}
	for i := range x {
		if math.Abs(float64(x[i])-want[i]) > 1e-7 {
			t.Fatalf("softmax[%d] = %g want %g", i, x[i], want[i])
		}
	}
}

func TestSoftmaxAllImplementations(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, n := range vectorSizes()[1:] {
			for off := range 2 {
				buf, x := guarded(n, off)
				for i := range x {
					x[i] = float32(3 * r.NormFloat64())
					if i%17 == 5 {
						x[i] = -1e30 // a masked score
					}
				}
				want := make([]float64, n)
				m := math.Inf(-1)
				for _, v := range x {
					m = math.Max(m, float64(v))
				}
				var sum float64
				for i, v := range x {
					// the reference sees the fp32-rounded difference, as the kernel does
					want[i] = math.Exp(float64(v - float32(m)))
					sum += want[i]
				}
				Softmax(x)
				for i := range x {
					w := want[i] / sum
					if tol := 4*float64(n+4)*eps32*w + 1e-45; !within(x[i], w, tol) {
						t.Fatalf("n=%d: softmax[%d] = %g want %g", n, i, x[i], w)
					}
				}
				checkGuards(t, "softmax", buf, off, off+n)
			}
		}
	})
}

func TestXSigmoid(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		var x []float32
		for v := float32(-120); v < 120; v += 0.0173 {
			x = append(x, v)
		}
		inf := float32(math.Inf(1))
		x = append(x, 0, -0.0, inf, -inf, float32(math.NaN()), 1e-40, -1e-40, 88.7, -88.7, 103.9, -103.9)
		for _, a := range []float32{1, 1.702} {
			for _, n := range []int{len(x), 1, 7, 8, 9, 17} {
				xs := x[len(x)-n:]
				buf, dst := guarded(n, 1)
				XSigmoid(dst, xs, a)
				for i, v := range xs {
					got := dst[i]
					want := float64(v) / (1 + math.Exp(float64(-a*v)))
					switch {
					case math.IsNaN(float64(v)) || math.IsInf(float64(v), -1):
						if !math.IsNaN(float64(got)) {
							t.Fatalf("a=%g: XSigmoid(%g) = %g, want NaN", a, v, got)
						}
					case math.IsInf(float64(v), 1):
						if !math.IsInf(float64(got), 1) {
							t.Fatalf("a=%g: XSigmoid(+Inf) = %g", a, got)
						}
					case !within(got, want, 4*eps32*math.Abs(want)+1e-36): // where exp(−a·x) overflows fp32, x/Inf = 0
						t.Fatalf("a=%g: XSigmoid(%g) = %g want %g", a, v, got, want)
					}
				}
				checkGuards(t, "xsigmoid", buf, 1, 1+n)
			}
		}
		// dst may alias x.
		y := []float32{-3, -1, 0, 1, 2, 3, 4, 5, 6}
		want := make([]float32, len(y))
		XSigmoid(want, y, 1)
		XSigmoid(y, y, 1)
		for i := range y {
			if y[i] != want[i] {
				t.Fatalf("in place: %v, want %v", y, want)
			}
		}
	})
}
