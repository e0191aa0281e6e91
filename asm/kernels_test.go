package asm

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDotMatchesFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 5, 7, 8, 15, 16, 17, 63, 64, 65, 1024, 4097} {
		x, y := make([]float32, n), make([]float32, n)
		var want, mag float64
		for i := range x {
			x[i], y[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			want += float64(x[i]) * float64(y[i])
			mag += math.Abs(float64(x[i]) * float64(y[i]))
		}
		got := float64(Dot(x, y))
		if tol := float64(n+1)*1.2e-7*mag + 1e-30; math.Abs(got-want) > tol {
			t.Errorf("n=%d: got %g want %g (tol %g)", n, got, want, tol)
		}
	}
}

func TestWidenF16Exhaustive(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	WidenF16(dst, src)
	for i, h := range src {
		got := math.Float32bits(dst[i])
		if want := f16ToF32Bits(h); got != want {
			t.Fatalf("%#04x: got %#08x want %#08x", h, got, want)
		}
	}
}

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
