package llava

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

// ConvertOptions say how to rewrite a checkpoint.
type ConvertOptions struct {
	VisionTower string       // the original layout's CLIP folder, when its config names a hub id
	LoRA        string       // an adapter to merge in (PEFT or original LLaVA's form)
	DType       tensor.DType // the floating-point dtype to store; Invalid keeps each tensor's
	ShardBytes  int64        // shard size; 0 means 5 GB
}

// ConvertReport lists what Convert wrote.
type ConvertReport struct {
	Files   []string
	Tensors int
	Bytes   int64
}

// Convert rewrites a checkpoint (typically the original LLaVA's PyTorch
// pickles) as safetensors shards with an index, keeping its layout and tensor
// names, so every later load is a zero-copy map. An original-layout model's
// vision tower is written beside it in out/vision_tower, and the config points
// there; an adapter is merged in (in fp32, then stored in the target dtype)
// together with the projector its original form carries. Tensors are
// converted and written one at a time, so memory stays at one tensor.
func Convert(model, out string, opt ConvertOptions, b backend.Backend) (*ConvertReport, error) {
	ck, err := Open(model, OpenOptions{VisionTower: opt.VisionTower, LoRA: opt.LoRA})
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if opt.DType != tensor.Invalid && opt.DType != tensor.F32 && opt.DType != tensor.F16 && opt.DType != tensor.BF16 {
		return nil, fmt.Errorf("llava: convert: dtype %v (want F32, F16 or BF16)", opt.DType)
	}
	if opt.ShardBytes <= 0 {
		opt.ShardBytes = 5 << 30
	}
	src := nn.Source(ck.src)
	var adapter *nn.Adapter
	if opt.LoRA != "" {
		if src, adapter, err = openAdapter(opt.LoRA, ck, true); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	separateTower := ck.Layout == LayoutOriginal
	var main, vision []safetensors.Entry
	for _, cn := range src.Names() {
		e, err := convertEntry(src, cn, ck, opt.DType, adapter, b)
		if err != nil {
			return nil, err
		}
		if separateTower && strings.HasPrefix(cn, "vision_tower.") {
			e.Name = strings.TrimPrefix(cn, "vision_tower.")
			vision = append(vision, e)
		} else {
			main = append(main, e)
		}
	}
	rep := &ConvertReport{}
	if err := writeShards(out, main, opt.ShardBytes, rep); err != nil {
		return nil, err
	}
	if u := adapter.Unused(); len(u) > 0 { // the merges ran as the shards were written
		return nil, fmt.Errorf("llava: convert: the adapter updates modules the model does not have: %s", strings.Join(u, ", "))
	}
	cfg := map[string]any{}
	if separateTower {
		towerOut := filepath.Join(out, "vision_tower")
		if err := os.MkdirAll(towerOut, 0o755); err != nil {
			return nil, err
		}
		if err := writeShards(towerOut, vision, opt.ShardBytes, rep); err != nil {
			return nil, err
		}
		if err := copyFiles(ck.VisionDir, towerOut, "config.json", "preprocessor_config.json"); err != nil {
			return nil, err
		}
		cfg["mm_vision_tower"] = "vision_tower" // avq resolves it relative to the checkpoint folder
	}
	if opt.DType != tensor.Invalid {
		cfg["torch_dtype"] = map[tensor.DType]string{tensor.F32: "float32", tensor.F16: "float16", tensor.BF16: "bfloat16"}[opt.DType]
	}
	if err := rewriteConfig(filepath.Join(ck.ConfigDir, "config.json"), filepath.Join(out, "config.json"), cfg); err != nil {
		return nil, err
	}
	if err := copyFiles(ck.Dir, out, "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
		"added_tokens.json", "generation_config.json", "preprocessor_config.json", "chat_template.json"); err != nil {
		return nil, err
	}
	return rep, nil
}

// convertEntry makes the lazy entry of one canonical tensor: its name in the
// file it came from, the target dtype, and the adapter merged in.
func convertEntry(src nn.Source, cn string, ck *Checkpoint, dt tensor.DType, adapter *nn.Adapter, b backend.Backend) (safetensors.Entry, error) {
	t, err := src.Tensor(cn)
	if err != nil {
		return safetensors.Entry{}, err
	}
	target := t.DType()
	if dt != tensor.Invalid && t.DType().IsFloat() {
		target = dt
	}
	name := ck.OriginalName(cn)
	if o, ok := src.(*overlaySource); ok {
		name = o.originalName(cn)
	}
	e := safetensors.Entry{Name: name, DType: target, Shape: t.Shape().Clone()}
	e.Lazy = func() (*tensor.Tensor, error) {
		t, err := src.Tensor(cn)
		if err != nil {
			return nil, err
		}
		if t.DType().IsFloat() {
			t = t.Convert(target)
		}
		if module, ok := strings.CutSuffix(cn, ".weight"); ok && adapter != nil {
			m, _, err := adapter.Merged(b, module, t)
			if err != nil {
				return nil, err
			}
			t = m
		}
		return t, nil
	}
	return e, nil
}

// writeShards writes entries as model.safetensors, or as numbered shards of at
// most limit bytes each with model.safetensors.index.json when they do not fit
// in one.
func writeShards(dir string, entries []safetensors.Entry, limit int64, rep *ConvertReport) error {
	var shards [][]safetensors.Entry
	var size, total int64
	for _, e := range entries {
		n := int64(e.Shape.Numel() * e.DType.Size())
		if len(shards) == 0 || (size+n > limit && size > 0) {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], e)
		size += n
		total += n
	}
	name := func(i int) string {
		if len(shards) == 1 {
			return safetensors.SingleFileName
		}
		return fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
	}
	weightMap := map[string]string{}
	for i, sh := range shards {
		path := filepath.Join(dir, name(i))
		if err := safetensors.WriteFile(path, sh, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		for _, e := range sh {
			weightMap[e.Name] = name(i)
		}
		rep.Files = append(rep.Files, path)
		rep.Tensors += len(sh)
	}
	rep.Bytes += total
	if len(shards) <= 1 {
		return nil
	}
	idx, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, safetensors.IndexFileName)
	rep.Files = append(rep.Files, path)
	return os.WriteFile(path, append(idx, '\n'), 0o644)
}

// rewriteConfig copies a config.json with some fields replaced.
func rewriteConfig(from, to string, set map[string]any) error {
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("llava: %s: %w", from, err)
	}
	for k, v := range set {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(to, append(b, '\n'), 0o644)
}

// copyFiles copies the named files that exist in from into to.
func copyFiles(from, to string, names ...string) error {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(from, n))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, n), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
