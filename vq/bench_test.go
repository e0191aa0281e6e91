package vq

import (
	"math/rand/v2"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/tensor"
)

// BenchmarkQuantize is the edge's per-image work at LLaVA-1.5 size: 577
// tokens of ViT-L/14-336 (D = 1024) against K = 4096 codes, with DLP_in, on
// one thread.
func BenchmarkQuantize(bb *testing.B) {
	const n, d, k = 577, 1024, 4096
	b := cpu.New(1)
	defer b.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	normal := func(size int, std float64) []float32 {
		v := make([]float32, size)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
		}
		return v
	}
	dlp := func() *DLPData { return &DLPData{Weight: normal(d*d, 0.02), Bias: normal(d, 0.02), Gamma: 0.3} }
	m, err := NewModule(&ModuleData{
		Site: "ln1", K: k, D: d, Codebook: normal(k*d, 1),
		DLPIn: dlp(), DLPOut: dlp(), Scale: normal(d, 1), Shift: normal(d, 1),
	}, b)
	if err != nil {
		bb.Fatal(err)
	}
	z := tensor.FromF32(normal(n*d, 1), n, d)
	bb.ResetTimer()
	for bb.Loop() {
		if _, err := m.Quantize(b, z); err != nil {
			bb.Fatal(err)
		}
	}
}
