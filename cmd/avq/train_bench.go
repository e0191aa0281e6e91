package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/train"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// benchTrain times one image of an `avq train` step at a real shape: the
// quantizer and the student from a block-0 ln1 split to layer −2, forward
// and backward, against the forward of the same blocks, on random F16
// weights. The teacher's features are cached per image in a real run, so
// they are not part of a step.
func benchTrain(c *cli, args []string) error {
	fs, o := c.benchFlags("train", "[--shape vit-l-336] [--codebook K] [--threads T] [--json]")
	shape := fs.String("shape", "vit-l-336", "tower shape: vit-l-336 (CLIP ViT-L/14-336, LLaVA-1.5's)")
	k := fs.Int("codebook", 4096, "codebook size K")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *shape != "vit-l-336" {
		return fmt.Errorf("--shape %q: only vit-l-336 is known", *shape)
	}
	if *k < 1 {
		return fmt.Errorf("--codebook %d: want at least 1", *k)
	}
	threads, err := o.start(c)
	if err != nil {
		return err
	}
	cfg := vit.ViTL14_336()
	blocks := cfg.NumHiddenLayers - 1 // layer −2
	end := vit.HiddenState(blocks)
	split := vit.Split{Block: 0, Site: vit.SiteLN1}
	b := cpu.New(threads)
	defer b.Close()
	m, err := vit.Load(nn.NewWeights(vitSource(cfg, blocks), b, nil), cfg, vit.Pixels, end)
	if err != nil {
		return err
	}
	pixels := tensor.New(tensor.F32, cfg.NumChannels, cfg.ImageSize, cfg.ImageSize)
	fillRandom(pixels, 7, 1)
	s := m.NewStream(b)
	m.Run(b, s, pixels.F32(), vit.Pixels, split)
	t, d := cfg.Tokens(), cfg.HiddenSize
	zin, x0 := make([]float32, t*d), make([]float32, t*d)
	b.Read(zin, s.Z)
	b.Read(x0, s.X)
	forward := func() { // the same blocks, inference only
		b.Write(s.X, x0)
		b.Write(s.Z, zin)
		m.Run(b, s, nil, split, end)
	}
	forward()
	target := make([]float32, (t-1)*d)
	b.Read(target, b.Rows(s.X, 1, t))
	cb := tensor.New(tensor.F32, *k, d)
	fillRandom(cb, 11, 1)
	md := &vq.ModuleData{Block: 0, Site: "ln1", Codebook: cb.F32(), K: *k, D: d, Scale: make([]float32, d), Shift: make([]float32, d)}
	for i := range md.Scale {
		md.Scale[i] = 1
	}
	step, err := train.BenchStep(b, m, end, md, zin, target)
	if err != nil {
		return err
	}
	var stepErr error
	tf := o.measure(forward)
	ts := o.measure(func() {
		if err := step(); err != nil && stepErr == nil {
			stepErr = err
		}
	})
	if stepErr != nil {
		return stepErr
	}
	peak, err := peakRSS()
	if err != nil {
		return err
	}
	return report(c.stdout, o.json, []row{{
		{"bench", "train"}, {"shape", *shape}, {"blocks", blocks}, {"codebook", *k}, {"threads", threads},
		{"impl", asm.Selected()}, {"reps", ts.reps}, {"step_s_per_image", ts.median.Seconds()},
		{"forward_s", tf.median.Seconds()}, {"step_over_forward", ts.median.Seconds() / tf.median.Seconds()},
		{"peak_rss_gb", float64(peak) / (1 << 30)},
	}})
}

// peakRSS is the process's peak resident set (VmHWM of /proc/self/status)
// in bytes: the weights, the cached features, the forward's tape and the
// backward's temporaries together.
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak memory: VmHWM %q", v)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak memory: no VmHWM in /proc/self/status")
}
