package main

import (
	"fmt"
	"os"
	"time"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/vq"
)

func cmdEdge(c *cli, args []string) error {
	fs := c.flags("edge", "--model DIR --vq FILE --image FILE [--aspect pad|crop] [--token-stats] --out FRAME")
	model := fs.String("model", "", "checkpoint `folder`; only the embeddings and the blocks up to the split are read")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	vqPath := fs.String("vq", "", "AlignedVQ module `file` (alignedvq.safetensors)")
	image := fs.String("image", "", "image `file`")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	exif := fs.Bool("exif", false, "apply the EXIF orientation (the reference does not)")
	stats := fs.Bool("token-stats", false, "send each token's LayerNorm mean and deviation (exact residual, 4 bytes a token)")
	out := fs.String("out", "", "frame `file` to write")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "vq", "image", "out"); err != nil {
		return err
	}
	imgOpt, err := imageOptions(*aspect, *exif)
	if err != nil {
		return err
	}
	stop, err := c.profile()
	if err != nil {
		return err
	}
	defer stop()
	t0 := time.Now()
	m, err := loadEdge(c, *model, *tower, *vqPath)
	if err != nil {
		return err
	}
	defer m.Checkpoint.Close()
	load := time.Since(t0)
	t1 := time.Now()
	pixels, err := m.Checkpoint.Pixels(*image, imgOpt)
	if err != nil {
		return err
	}
	e, err := m.EncodeFrame(pixels, *stats)
	if err != nil {
		return err
	}
	compute := time.Since(t1)
	if err := os.WriteFile(*out, e.Frame, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: %d bytes (%d tokens × %d bits, split at block %d %s)\n",
		*out, len(e.Frame), len(e.Quantized.Indices), m.VQ.Bits, m.VQ.Block, m.VQ.Site)
	fmt.Fprintf(c.stderr, "load %.0f ms, edge compute %.0f ms\n", ms(load), ms(compute))
	return nil
}

// loadEdge loads what an edge device runs: the tower up to the module's split.
func loadEdge(c *cli, model, tower, vqPath string) (*llava.Model, error) {
	ck, err := llava.Open(model, llava.OpenOptions{VisionTower: tower})
	if err != nil {
		return nil, err
	}
	m, err := loadWithVQ(c, ck, vqPath, func(mod *vq.Module) (llava.Parts, error) { return ck.EdgeParts(mod) }, "", false)
	if err != nil {
		ck.Close()
		return nil, err
	}
	return m, nil
}

// loadWithVQ loads a module, the parts of ck that parts says, and attaches it.
func loadWithVQ(c *cli, ck *llava.Checkpoint, vqPath string, parts func(*vq.Module) (llava.Parts, error), lora string, merge bool) (*llava.Model, error) {
	b := c.backend()
	mod, err := vq.Load(vqPath, b)
	if err != nil {
		return nil, err
	}
	p, err := parts(mod)
	if err != nil {
		return nil, err
	}
	m, err := llava.Load(ck, b, llava.LoadOptions{Parts: p, LoRA: lora, LoRAMerge: merge})
	if err != nil {
		return nil, err
	}
	return m, m.AttachVQ(mod)
}
