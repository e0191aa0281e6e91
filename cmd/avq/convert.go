package main

import (
	"fmt"
	"strings"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/tensor"
)

func cmdConvert(c *cli, args []string) error {
	fs := c.flags("convert", "--model DIR [--vision-tower DIR] [--lora DIR] [--dtype f16|bf16|f32] --out DIR")
	model := fs.String("model", "", "checkpoint `folder` (PyTorch pickles or safetensors)")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	lora := fs.String("lora", "", "LoRA adapter `folder` to merge in")
	dtype := fs.String("dtype", "", "store floating-point tensors as f16, bf16 or f32 (default: as they are)")
	shard := fs.Int64("shard-size", 5<<30, "largest shard in `bytes`")
	out := fs.String("out", "", "output `folder`")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "out"); err != nil {
		return err
	}
	opt := llava.ConvertOptions{VisionTower: *tower, LoRA: *lora, ShardBytes: *shard}
	if *dtype != "" {
		dt, ok := tensor.ParseDType(strings.ToUpper(*dtype))
		if !ok || (dt != tensor.F16 && dt != tensor.BF16 && dt != tensor.F32) {
			return fmt.Errorf("--dtype %q: want f16, bf16 or f32", *dtype)
		}
		opt.DType = dt
	}
	rep, err := llava.Convert(*model, *out, opt, c.backend())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %d tensors (%s) to %s in %d files\n", rep.Tensors, humanBytes(rep.Bytes), *out, len(rep.Files))
	return nil
}
