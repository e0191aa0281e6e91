package main

import (
	"fmt"
	"strings"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/tensor"
)

// gemmShape is one matrix product C[M,N] = A[M,K]·Wᵀ, W stored [N, K].
type gemmShape struct {
	m, n, k int
	role    string
}

// modelGemms are the products LLaVA-1.5 runs: the CLIP ViT-L/14-336 tower
// (577 tokens), the projector and prefill over the 576 image tokens, the
// one-token decoding GEMVs of the 7B decoder and its LM head, and the
// small-M products batched decoding runs (one row per sequence), between
// the GEMV's bandwidth bound and the GEMM's compute bound.
var modelGemms = []gemmShape{
	{577, 1024, 1024, "vit q/k/v/o"},
	{577, 4096, 1024, "vit fc1"},
	{577, 1024, 4096, "vit fc2"},
	{576, 4096, 1024, "projector 1"},
	{576, 4096, 4096, "projector 2 / prefill"},
	{1, 4096, 4096, "decode q/k/v/o"},
	{1, 11008, 4096, "decode gate/up"},
	{1, 32064, 4096, "decode lm_head"},
	{8, 4096, 4096, "batched decode q/k/v/o ×8"},
	{16, 4096, 4096, "batched decode q/k/v/o ×16"},
	{32, 4096, 4096, "batched decode q/k/v/o ×32"},
	{8, 11008, 4096, "batched decode gate/up ×8"},
	{16, 11008, 4096, "batched decode gate/up ×16"},
	{32, 11008, 4096, "batched decode gate/up ×32"},
}

// coldBytes is how much weight memory a GEMV rotates through, so that it
// streams from DRAM as decoding does, not from the 32 MiB L3.
const coldBytes = 512 << 20

func benchGemm(c *cli, args []string) error {
	fs, o := c.benchFlags("gemm", "[--m M --n N --k K] [--weights f32|f16] [--threads T] [--json]")
	m := fs.Int("m", 0, "rows of A (with --n and --k: one shape instead of the model's)")
	n := fs.Int("n", 0, "rows of W: columns of C")
	k := fs.Int("k", 0, "inner dimension")
	weights := fs.String("weights", "f16", "weight `dtype`: f32 or f16")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	dt, ok := tensor.ParseDType(strings.ToUpper(*weights))
	if !ok || (dt != tensor.F32 && dt != tensor.F16) {
		return fmt.Errorf("--weights %q: want f32 or f16", *weights)
	}
	shapes := modelGemms
	if *m != 0 || *n != 0 || *k != 0 {
		if *m <= 0 || *n <= 0 || *k <= 0 {
			return fmt.Errorf("--m, --n and --k must all be positive")
		}
		shapes = []gemmShape{{*m, *n, *k, "custom"}}
	}
	threads, err := o.start(c)
	if err != nil {
		return err
	}
	b := cpu.New(threads)
	defer b.Close()

	var rows []row
	for _, s := range shapes {
		r, gflops := gemmRow(b, o, s, dt, threads)
		rows = append(rows, r)
		if !o.json { // a table needs every row; show progress meanwhile
			fmt.Fprintf(c.stderr, "gemm %dx%dx%d: %.1f GFLOP/s\n", s.m, s.n, s.k, gflops)
		}
	}
	return report(c.stdout, o.json, rows)
}

func gemmRow(b *cpu.CPU, o *benchOpts, s gemmShape, dt tensor.DType, threads int) (row, float64) {
	x := tensor.New(tensor.F32, s.m, s.k)
	fillRandom(x, 1, 1)
	wBytes := s.n * s.k * dt.Size()
	copies := 1
	if s.m <= 32 { // decoding, batched or not: the weights stream from DRAM
		copies = max(1, coldBytes/wBytes)
	}
	ws := make([]*tensor.Tensor, copies)
	for i := range ws {
		ws[i] = tensor.New(dt, s.n, s.k)
		fillRandom(ws[i], uint64(i+2), 0.02)
	}
	dst := b.New(s.m, s.n)
	next := 0
	t := o.measure(func() {
		b.MatMul(dst, x, ws[next], nil)
		next = (next + 1) % copies
	})
	sec := t.median.Seconds()
	gflops := 2 * float64(s.m) * float64(s.n) * float64(s.k) / sec / 1e9
	return row{
		{"bench", "gemm"}, {"m", s.m}, {"n", s.n}, {"k", s.k}, {"role", s.role},
		{"weights", dt.String()}, {"threads", threads}, {"impl", asm.Selected()},
		{"reps", t.reps}, {"median_ms", millis(t.median)}, {"min_ms", millis(t.min)},
		{"weight_gbps", float64(wBytes) / sec / 1e9},
		{"gflops", gflops},
		{"weight_copies", copies},
	}, gflops
}
