package vq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/tensor"
)

// TestTokenStatsInvertLayerNorm runs a LayerNorm on the backend over tokens
// of very different means and spreads, then inverts it from the fp16 token
// statistics: the error must be what the fp16 rounding of μ and σ explains.
func TestTokenStatsInvertLayerNorm(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	const n, d, eps = 40, 96, 1e-5
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*d)
	for tok := range n {
		mean := (rng.Float64() - 0.5) * 100
		spread := math.Pow(10, rng.Float64()*4-2) // 0.01 … 100
		for c := range d {
			x[tok*d+c] = float32(mean + spread*rng.NormFloat64())
		}
	}
	gamma, beta := make([]float32, d), make([]float32, d)
	for c := range d {
		gamma[c] = float32(0.5 + rng.Float64())
		if c%7 == 0 {
			gamma[c] = -gamma[c]
		}
		beta[c] = float32(rng.NormFloat64() * 0.1)
	}
	z := b.New(n, d)
	b.LayerNorm(z, tensor.FromF32(x, n, d), tensor.FromF32(gamma, d), tensor.FromF32(beta, d), eps)
	zs := make([]float32, n*d)
	b.Read(zs, z)

	stats := TokenStats(x, n, d, eps)
	for tok := range n {
		var mean, ss float64
		for _, v := range x[tok*d : (tok+1)*d] {
			mean += float64(v)
		}
		mean /= d
		for _, v := range x[tok*d : (tok+1)*d] {
			ss += (float64(v) - mean) * (float64(v) - mean)
		}
		if stats[2*tok] != tensor.F32ToF16(float32(mean)) || stats[2*tok+1] != tensor.F32ToF16(float32(math.Sqrt(ss/d+eps))) {
			t.Fatalf("token %d: statistics are not the fp16 mean and sqrt(var + eps)", tok)
		}
	}
	checkInverted(t, "synthetic", InvertLayerNorm(zs, n, d, stats, gamma, beta), x, stats, n, d)
}

func TestFitResidual(t *testing.T) {
	const n, d = 500, 8
	rng := rand.New(rand.NewPCG(5, 6))
	z, x := make([]float32, n*d), make([]float32, n*d)
	a := []float64{0.5, -2, 3.25, 1, 0.001, 7, -0.3, 0}
	c := []float64{1, 0, -4, 0.25, 10, -1, 2, 3}
	for i := range z {
		ch := i % d
		z[i] = float32(rng.NormFloat64()*2 + float64(ch))
		if ch == 7 {
			z[i] = 1.5 // a constant channel: no slope to fit
		}
		x[i] = float32(a[ch]*float64(z[i]) + c[ch])
	}
	scale, shift, mse := FitResidual(x, z, n, d)
	for ch := range d {
		wantA, wantC := a[ch], c[ch]
		if ch == 7 {
			wantA, wantC = 0, a[ch]*1.5+c[ch]
		}
		if math.Abs(float64(scale[ch])-wantA) > 1e-6*(1+math.Abs(wantA)) || math.Abs(float64(shift[ch])-wantC) > 1e-5*(1+math.Abs(wantC)) {
			t.Errorf("channel %d: scale %g shift %g, want %g %g", ch, scale[ch], shift[ch], wantA, wantC)
		}
	}
	if mse > 1e-10 {
		t.Errorf("exact affine map fitted with MSE %g", mse)
	}

	// With noise, the reported MSE is that of the returned map, and no
	// perturbation of a channel's fit lowers it.
	for i := range x {
		x[i] += float32(rng.NormFloat64() * 0.1)
	}
	scale, shift, mse = FitResidual(x, z, n, d)
	eval := func(s, h []float32) float64 {
		var e float64
		for i := range x {
			v := float64(s[i%d])*float64(z[i]) + float64(h[i%d]) - float64(x[i])
			e += v * v
		}
		return e / float64(n*d)
	}
	if got := eval(scale, shift); math.Abs(got-mse) > 1e-12 {
		t.Errorf("reported MSE %g, the map gives %g", mse, got)
	}
	for ch := range d - 1 {
		for _, delta := range []float32{1e-3, -1e-3} {
			s2 := append([]float32(nil), scale...)
			s2[ch] += delta
			if eval(s2, shift) < mse {
				t.Errorf("channel %d: scale %+g lowers the MSE", ch, delta)
			}
		}
	}
}

// TestResidualArithmetic checks Residual = scale ⊙ Z_out + shift on the
// block1_ln2 module, whose true residual h_1 is not in the fixtures.
func TestResidualArithmetic(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	m := loadFixture(t, b, "block1_ln2")
	md := fixtureData(t, "block1_ln2")
	const n = 3
	zout := make([]float32, n*m.D)
	for i := range zout {
		zout[i] = float32(i%11) - 4.5
	}
	got := make([]float32, n*m.D)
	b.Read(got, m.Residual(b, tensor.FromF32(zout, n, m.D)))
	want := make([]float32, n*m.D)
	for i := range want {
		want[i] = float32(float64(md.Scale[i%m.D])*float64(zout[i]) + float64(md.Shift[i%m.D]))
	}
	testutil.Close(t, "residual", got, want, 1e-6, 0.9999999)
}
