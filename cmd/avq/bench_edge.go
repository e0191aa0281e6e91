package main

import (
	"fmt"
	"time"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// benchEdge times the edge head of AlignedVQ split at block 0's ln1, as the
// edge device runs it: patch embedding, pre_layrnorm, LN1 of block 0, the
// module's input DLP and the nearest-code search over K codes. Its bound is
// arithmetic: the three matrix products' FLOPs at the one-core FMA peak,
// which the bench measures as the micro-kernel's rate on L1-resident data.
func benchEdge(c *cli, args []string) error {
	fs, o := c.benchFlags("edge", "[--shape vit-l-336] [--k K] [--threads 1] [--json]")
	shape := fs.String("shape", "vit-l-336", "tower shape: vit-l-336")
	k := fs.Int("k", 4096, "codebook entries")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *shape != "vit-l-336" {
		return fmt.Errorf("--shape %q: only vit-l-336 is known", *shape)
	}
	if *k < 1 {
		return fmt.Errorf("--k must be positive")
	}
	if c.threads == 0 {
		c.threads = 1 // the edge head's budget is one core
	}
	threads, err := o.start(c)
	if err != nil {
		return err
	}
	cfg := vit.ViTL14_336()
	d, t := cfg.HiddenSize, cfg.Tokens()
	b := cpu.New(threads)
	defer b.Close()
	split := vit.Split{Block: 0, Site: vit.SiteLN1}
	m, err := vit.Load(nn.NewWeights(vitSource(cfg, 1), b, nil), cfg, vit.Pixels, split)
	if err != nil {
		return err
	}
	mod, err := vq.NewModule(randomModule(*k, d), b)
	if err != nil {
		return err
	}
	pixels := tensor.New(tensor.F32, cfg.NumChannels, cfg.ImageSize, cfg.ImageSize)
	fillRandom(pixels, 7, 1)
	s := m.NewStream(b)

	var qerr error
	tower := o.measure(func() { m.Run(b, s, pixels.F32(), vit.Pixels, split) })
	quant := o.measure(func() { _, qerr = mod.Quantize(b, s.Z) })
	whole := o.measure(func() {
		m.Run(b, s, pixels.F32(), vit.Pixels, split)
		_, qerr = mod.Quantize(b, s.Z)
	})
	if qerr != nil {
		return qerr
	}
	patch := 2 * float64(t-1) * float64(d) * float64(cfg.NumChannels*cfg.PatchSize*cfg.PatchSize)
	dlp := 2 * float64(t) * float64(d) * float64(d)
	search := 2 * float64(t) * float64(*k) * float64(d)
	flops := patch + dlp + search
	peak := kernelPeak(o.minTime / 4)
	bound := time.Duration(flops / (peak * 1e9) * 1e9)
	return report(c.stdout, o.json, []row{{
		{"bench", "edge"}, {"shape", *shape}, {"k", *k}, {"threads", threads}, {"impl", asm.Selected()},
		{"reps", whole.reps}, {"median_ms", millis(whole.median)}, {"min_ms", millis(whole.min)},
		{"tower_ms", millis(tower.median)}, {"quantize_ms", millis(quant.median)},
		{"gflop", flops / 1e9}, {"gflops", flops / whole.median.Seconds() / 1e9},
		{"peak_gflops", peak}, {"bound_ms", millis(bound)},
		{"x_bound", float64(whole.median) / float64(bound)},
	}})
}

// randomModule is an AlignedVQ module for site ln1 of block 0 with a random
// codebook (N(0,1) entries, the scale of a LayerNorm output) and DLPs.
func randomModule(k, d int) *vq.ModuleData {
	random := func(n int, seed uint64, std float32) []float32 {
		t := tensor.New(tensor.F32, n)
		fillRandom(t, seed, std)
		return t.F32()
	}
	ones := make([]float32, d)
	for i := range ones {
		ones[i] = 1
	}
	return &vq.ModuleData{
		Block: 0, Site: "ln1", K: k, D: d, Codebook: random(k*d, 11, 1),
		DLPIn:  &vq.DLPData{Weight: random(d*d, 12, 0.02), Bias: make([]float32, d), Gamma: 0.5},
		DLPOut: &vq.DLPData{Weight: random(d*d, 13, 0.02), Bias: make([]float32, d), Gamma: 0.5},
		Scale:  ones, Shift: make([]float32, d),
	}
}

// kernelPeak measures the GEMM micro-kernel's rate on one thread with its
// operands in L1 (GFLOP/s): the practical fp32 peak of one core with the
// kernel set in use. It is the best of 20 ms windows over d, so that a moment
// of interference from another process does not lower the bound.
func kernelPeak(d time.Duration) float64 {
	g := asm.GemmKernel()
	const kc = 128
	a := make([]float32, g.MR*kc)
	panel := make([]float32, kc*g.NR)
	c := make([]float32, g.MR*g.NR)
	best := 0.0
	for start := time.Now(); time.Since(start) < d; {
		calls := 0
		t0 := time.Now()
		for time.Since(t0) < 20*time.Millisecond {
			for range 100 {
				g.Tile(kc, a, kc, panel, c, g.NR, 1, true)
			}
			calls += 100
		}
		best = max(best, float64(2*g.MR*g.NR*kc*calls)/time.Since(t0).Seconds()/1e9)
	}
	return best
}
