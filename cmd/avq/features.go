package main

import (
	"fmt"
	"os"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/llava/preprocess"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

func cmdFeatures(c *cli, args []string) error {
	fs := c.flags("features", "--model DIR --image FILE [--aspect pad|crop] [--all-layers] --out FILE")
	model := fs.String("model", "", "checkpoint `folder` (llava-hf, original LLaVA or CLIP)")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	image := fs.String("image", "", "image `file` (JPEG, PNG, GIF, WebP)")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	exif := fs.Bool("exif", false, "apply the EXIF orientation (the reference does not)")
	all := fs.Bool("all-layers", false, "also write hidden_states.0 … L")
	out := fs.String("out", "", "output safetensors `file`")
	vqPath := fs.String("vq", "", "AlignedVQ module `file`: compute the features with the VQ in place")
	framePath := fs.String("frame", "", "with --vq, compute them from this frame `file` instead of an image")
	stats := fs.Bool("token-stats", false, "with --vq, put token statistics in the frame")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "out"); err != nil {
		return err
	}
	if (*image == "") == (*framePath == "") {
		return fmt.Errorf("give exactly one of --image and --frame")
	}
	if *framePath != "" && *vqPath == "" {
		return fmt.Errorf("--frame needs --vq")
	}
	if err := checkFrameFlags(fs, *vqPath, *framePath); err != nil {
		return err
	}
	imgOpt, err := imageOptions(*aspect, *exif)
	if err != nil {
		return err
	}

	ck, err := llava.Open(*model, llava.OpenOptions{VisionTower: *tower})
	if err != nil {
		return err
	}
	defer ck.Close()
	parts := ck.VisionParts()
	parts.Projector = ck.Text != nil
	if *all {
		parts.VisionTo = vit.HiddenState(ck.Vision.NumHiddenLayers)
	}
	var m *llava.Model
	if *vqPath == "" {
		m, err = llava.Load(ck, c.backend(), llava.LoadOptions{Parts: parts})
	} else {
		if *all {
			return fmt.Errorf("--all-layers and --vq do not go together")
		}
		partsFor := func(mod *vq.Module) (llava.Parts, error) {
			if *framePath != "" {
				p, err := ck.CloudParts(mod)
				p.LLM = false
				return p, err
			}
			return parts, nil
		}
		m, err = loadWithVQ(c, ck, *vqPath, partsFor, "", false)
	}
	if err != nil {
		return err
	}
	var f *llava.FeatureSet
	switch {
	case *framePath != "":
		frame, err := os.ReadFile(*framePath)
		if err != nil {
			return err
		}
		if f, err = m.FeaturesVQ(nil, frame, false); err != nil {
			return fmt.Errorf("%s: %w", *framePath, err)
		}
	default:
		pixels, err := ck.Pixels(*image, imgOpt)
		if err != nil {
			return err
		}
		if *vqPath != "" {
			f, err = m.FeaturesVQ(pixels, nil, *stats)
		} else {
			f, err = m.Features(pixels, *all)
		}
		if err != nil {
			return err
		}
	}
	var entries []safetensors.Entry
	for _, e := range f.Entries() {
		entries = append(entries, safetensors.Entry{Name: e.Name, T: e.T})
	}
	if err := safetensors.WriteFile(*out, entries, map[string]string{"format": "pt", "producer": "avq features"}); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "wrote %d tensors to %s\n", len(entries), *out)
	return nil
}

// imageOptions reads the --aspect and --exif flags.
func imageOptions(aspect string, exif bool) (llava.ImageOptions, error) {
	opt := llava.ImageOptions{ApplyEXIF: exif}
	if aspect != "" {
		a, err := preprocess.ParseAspect(aspect)
		if err != nil {
			return opt, err
		}
		opt.Aspect = &a
	}
	return opt, nil
}
