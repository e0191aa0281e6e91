package vq

import (
	"math"

	"github.com/avq/avq/tensor"
)

// TokenStats computes the exact-mode side information (frame flag 0x0001):
// for each token t of x [n, d], the input of the site's LayerNorm, its mean
// μ_t and σ_t = sqrt(var_t + eps) with the biased variance, as the LayerNorm
// computes them, rounded to fp16 and interleaved μ0, σ0, μ1, σ1, … (2n
// values). The sums run in float64, so the only error is the fp16 rounding.
func TokenStats(x []float32, n, d int, eps float32) []uint16 {
	if len(x) != n*d || d < 1 {
		panic("vq: TokenStats input is not [n, d]")
	}
	out := make([]uint16, 2*n)
	for t := range n {
		row := x[t*d : (t+1)*d]
		var sum float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := sum / float64(d)
		var ss float64
		for _, v := range row {
			dv := float64(v) - mean
			ss += dv * dv
		}
		sigma := math.Sqrt(ss/float64(d) + float64(eps))
		out[2*t] = tensor.F32ToF16(float32(mean))
		out[2*t+1] = tensor.F32ToF16(float32(sigma))
	}
	return out
}

// InvertLayerNorm undoes the site's LayerNorm with the token statistics:
// x̂_t = μ_t + σ_t·(Z_out,t − β)/γ, with γ, β the LayerNorm's weight and bias
// [d]. A channel with γ = 0 carries no information and comes out as ±Inf or
// NaN; CLIP's LayerNorms have none.
func InvertLayerNorm(zout []float32, n, d int, stats []uint16, gamma, beta []float32) []float32 {
	if len(zout) != n*d || len(stats) != 2*n || len(gamma) != d || len(beta) != d {
		panic("vq: InvertLayerNorm operands disagree in size")
	}
	out := make([]float32, n*d)
	for t := range n {
		mean := float64(tensor.F16ToF32(stats[2*t]))
		sigma := float64(tensor.F16ToF32(stats[2*t+1]))
		for c := range d {
			z := float64(zout[t*d+c])
			out[t*d+c] = float32(mean + sigma*(z-float64(beta[c]))/float64(gamma[c]))
		}
	}
	return out
}

// FitResidual fits, per channel c, the affine map target ≈ scale_c·zout +
// shift_c by least squares over the n tokens (target and zout are [n, d];
// float64 sums, centred first for accuracy). A channel where zout is
// constant gets scale 0 and the target's mean as shift. mse is the mean
// squared error of the fitted map over all n·d values.
func FitResidual(target, zout []float32, n, d int) (scale, shift []float32, mse float64) {
	if len(target) != n*d || len(zout) != n*d || n < 1 || d < 1 {
		panic("vq: FitResidual operands are not [n, d] with n, d ≥ 1")
	}
	mz, mx := make([]float64, d), make([]float64, d)
	for t := range n {
		for c := range d {
			mz[c] += float64(zout[t*d+c])
			mx[c] += float64(target[t*d+c])
		}
	}
	for c := range d {
		mz[c] /= float64(n)
		mx[c] /= float64(n)
	}
	szz, szx := make([]float64, d), make([]float64, d)
	for t := range n {
		for c := range d {
			dz := float64(zout[t*d+c]) - mz[c]
			szz[c] += dz * dz
			szx[c] += dz * (float64(target[t*d+c]) - mx[c])
		}
	}
	scale, shift = make([]float32, d), make([]float32, d)
	for c := range d {
		a := 0.0
		if szz[c] > 0 {
			a = szx[c] / szz[c]
		}
		scale[c] = float32(a)
		shift[c] = float32(mx[c] - a*mz[c])
	}
	for t := range n {
		for c := range d {
			e := float64(scale[c])*float64(zout[t*d+c]) + float64(shift[c]) - float64(target[t*d+c])
			mse += e * e
		}
	}
	return scale, shift, mse / float64(n*d)
}
