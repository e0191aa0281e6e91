package main

import (
	"fmt"

	"github.com/avq/avq/llava/preprocess"
	"github.com/avq/avq/vq"
)

// benchCompression is the paper's Table 3 for a set of images: what each way
// of sending an image to the cloud costs in bytes, and its ratio to the raw
// RGB image.
func benchCompression(c *cli, args []string) error {
	fs, o := c.benchFlags("compression", "--model DIR --vq FILE --images DIR [--aspect pad|crop] [--json]")
	model := fs.String("model", "", "checkpoint `folder`")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	vqPath := fs.String("vq", "", "AlignedVQ module `file`")
	images := fs.String("images", "", "`folder` of images")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "vq", "images"); err != nil {
		return err
	}
	// It counts bytes and times nothing: the timing flags the bench
	// commands share would be ignored, so they are refused.
	if err := refuseFlags(fs, "does not apply: bench compression counts bytes and times nothing", "impl", "min-time", "reps"); err != nil {
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
	m, err := loadEdge(c, *model, *tower, *vqPath)
	if err != nil {
		return err
	}
	defer m.Checkpoint.Close()
	mod := m.VQ
	n, d := m.Checkpoint.Vision.Tokens(), m.Checkpoint.Vision.HiddenSize
	const overhead = 28 // 24-byte header + 4-byte CRC
	var raw, q90, q10, plain, withStats float64
	for _, f := range files {
		img, err := preprocess.DecodeFile(f, preprocess.DecodeOptions{})
		if err != nil {
			return err
		}
		side := m.Checkpoint.Image.CropSize
		raw += float64(3 * side * side) // the model image, as the JPEG baselines send it
		for _, q := range []struct {
			quality int
			sum     *float64
		}{{90, &q90}, {10, &q10}} {
			opt := imgOpt
			opt.JPEGQuality = q.quality
			jpg, err := m.Checkpoint.BaselineJPEG(img, opt)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			*q.sum += float64(len(jpg))
		}
		px := m.Checkpoint.PixelsOf(img, imgOpt)
		e, err := m.EncodeFrame(px, false)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		plain += float64(len(e.Frame) - overhead)
		if vq.SiteIsNorm(mod.Site) {
			s, err := m.EncodeFrame(px, true)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			withStats += float64(len(s.Frame) - overhead)
		}
	}
	k := float64(len(files))
	raw, q90, q10, plain, withStats = raw/k, q90/k, q10/k, plain/k, withStats/k
	line := func(what string, bytes float64) row {
		ratio := any("n/a")
		if bytes > 0 {
			ratio = raw / bytes
		}
		var b any = bytes // a mean over images may be fractional; an exact count is printed as one
		if bytes == float64(int64(bytes)) {
			b = int64(bytes)
		}
		return row{{"data sent", what}, {"bytes", b}, {"ratio to raw", ratio}}
	}
	rows := []row{
		line("model image (RGB, 8 bit)", raw),
		line("JPEG of it, quality 90", q90),
		line("JPEG of it, quality 10", q10),
		line(fmt.Sprintf("features, fp16 (%d × %d)", n, d), float64(n*d*2)),
		line("features, 1 bit", float64((n*d+7)/8)),
		line(fmt.Sprintf("AlignedVQ indices (%d × %d bits)", n, mod.Bits), plain),
	}
	if vq.SiteIsNorm(mod.Site) {
		rows = append(rows, line("AlignedVQ indices + token statistics", withStats))
	}
	rows = append(rows, line("frame overhead (header 24 + CRC 4)", overhead))
	if !o.json {
		fmt.Fprintf(c.stdout, "%d images from %s; mean bytes per image; module block %d %s, K %d\n",
			len(files), *images, mod.Block, mod.Site, mod.K)
	}
	return report(c.stdout, o.json, rows)
}
