package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/avq/avq/eval"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

func cmdCalibrate(c *cli, args []string) error {
	fs := c.flags("calibrate", "--model DIR --images DIR [--block 0] [--site ln1] [--codebook 4096] [--sample N] [--iters N] [--seed S] --out FILE")
	model := fs.String("model", "", "checkpoint `folder`")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	images := fs.String("images", "", "`folder` of calibration images")
	block := fs.Int("block", 0, "block of the split, from 0")
	siteName := fs.String("site", "ln1", "site of the split: ln1, attn, ln2 or ffn")
	k := fs.Int("codebook", 4096, "codebook size K")
	sample := fs.Int("sample", 0, "points k-means++ seeding draws from (0: all)")
	iters := fs.Int("iters", 20, "most Lloyd iterations")
	seed := fs.Uint64("seed", 0, "random seed (the same seed writes the same bytes)")
	holdOut := fs.Int("held-out", -1, "images kept out of the fit to measure the features' cosine (-1: one in five)")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	out := fs.String("out", "", "module `file` to write (alignedvq.safetensors)")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "images", "out"); err != nil {
		return err
	}
	site, err := vit.ParseSite(*siteName)
	if err != nil {
		return err
	}
	imgOpt, err := imageOptions(*aspect, false)
	if err != nil {
		return err
	}
	files, err := imageFiles(*images)
	if err != nil {
		return err
	}
	fit, held, err := heldOut(files, *holdOut, *images)
	if err != nil {
		return err
	}

	ck, err := llava.Open(*model, llava.OpenOptions{VisionTower: *tower})
	if err != nil {
		return err
	}
	defer ck.Close()
	sp := vit.Split{Block: *block, Site: site}
	if err := sp.Validate(ck.Vision); err != nil {
		return err
	}
	parts := ck.VisionParts()
	if len(held) == 0 {
		parts.VisionTo = sp
	}
	m, err := llava.Load(ck, c.backend(), llava.LoadOptions{Parts: parts})
	if err != nil {
		return err
	}
	pixels := make([][]float32, len(fit))
	for i, f := range fit {
		if pixels[i], err = ck.Pixels(f, imgOpt); err != nil {
			return err
		}
	}
	stage := ""
	var bar *eval.Progress
	progress := func(s string, done, total int) {
		if s != stage {
			if bar != nil {
				bar.Finish()
			}
			stage = s
			fmt.Fprintf(c.stderr, "%s:\n", s)
			bar = eval.NewProgress(c.stderr, isTerminal(c.stderr))
		}
		bar.Update(done, total)
	}
	cal, err := m.Calibrate(pixels, llava.CalibrateOptions{Split: sp,
		KMeans: vq.KMeansOptions{K: *k, Iters: *iters, Sample: *sample, Seed: *seed, Progress: progress}})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if err := vq.WriteModule(*out, cal.Module); err != nil {
		return err
	}
	w := c.stdout
	fmt.Fprintf(w, "wrote %s: block %d, site %v, K %d, D %d (%d bits a token)\n", *out, sp.Block, sp.Site, *k, cal.Module.D, vq.BitsFor(*k))
	fmt.Fprintf(w, "fitted on %d tokens from %d images\n", cal.Tokens, len(fit))
	fmt.Fprintf(w, "quantization error (mean ‖z − e‖² per token): %.6g\n", cal.MSE)
	fmt.Fprintf(w, "codebook usage: %d of %d entries used, %d dead\n", *k-cal.Dead, *k, cal.Dead)
	if site.IsNorm() {
		fmt.Fprintf(w, "residual map fit (mean squared error): %.6g\n", cal.ResidualMSE)
	}
	if len(held) == 0 {
		fmt.Fprintln(w, "no held-out images: the features' cosine is not measured")
		return nil
	}
	mod, err := vq.NewModule(cal.Module, c.backend())
	if err != nil {
		return err
	}
	if err := m.AttachVQ(mod); err != nil {
		return err
	}
	var sum, worst float64 = 0, 1
	for _, f := range held {
		px, err := ck.Pixels(f, imgOpt)
		if err != nil {
			return err
		}
		plain, err := m.Features(px, false)
		if err != nil {
			return err
		}
		with, err := m.FeaturesVQ(px, nil, false)
		if err != nil {
			return err
		}
		cs := llava.Cosine(plain.Selected.F32(), with.Selected.F32())
		sum += cs
		worst = min(worst, cs)
	}
	fmt.Fprintf(w, "held-out images: %d; cosine of the final features with and without VQ: mean %.5f, worst %.5f\n",
		len(held), sum/float64(len(held)), worst)
	return nil
}

// imageFiles lists a folder's image files, sorted, so runs are repeatable.
func imageFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png", ".gif", ".webp":
			if e.Type().IsRegular() {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no images (.jpg, .png, .gif, .webp)", dir)
	}
	return out, nil
}

// isTerminal reports whether w is a character device (a terminal), where a
// progress bar may redraw its line.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
