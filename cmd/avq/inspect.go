package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/ptfile"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

func cmdInspect(c *cli, args []string) error {
	fs := c.flags("inspect", "PATH (a checkpoint folder, .safetensors, index .json or PyTorch .bin)")
	if err := c.parse(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	path := fs.Arg(0)
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	l, err := listing(path, st.IsDir())
	if err != nil {
		return err
	}
	defer l.close()
	w := c.stdout
	fmt.Fprintf(w, "path: %s\n", path)
	if st.IsDir() {
		fmt.Fprintf(w, "model: %s\n", recognizeFolder(path))
	} else {
		fmt.Fprintf(w, "model: %s\n", recognizeTensors(l))
	}
	if len(l.files) > 1 {
		fmt.Fprintf(w, "files: %d shards\n", len(l.files))
	}
	printMetadata(w, l.metadata)
	var total int64
	for _, t := range l.tensors {
		total += t.bytes
	}
	fmt.Fprintf(w, "tensors: %d, %s\n", len(l.tensors), humanBytes(total))
	for _, t := range l.tensors {
		fmt.Fprintf(w, "  %-64s %-5v %-20v %s\n", t.name, t.dtype, t.shape, humanBytes(t.bytes))
	}
	return nil
}

type tensorLine struct {
	name  string
	dtype tensor.DType
	shape tensor.Shape
	bytes int64
}

type tensorListing struct {
	tensors  []tensorLine
	metadata map[string]string
	files    []string
	close    func() error
}

// listing reads only headers: safetensors headers, or the pickled index of a
// PyTorch file (tensor data stays unread in the mapping).
func listing(path string, dir bool) (*tensorListing, error) {
	l := &tensorListing{close: func() error { return nil }}
	isBin := strings.HasSuffix(path, ".bin") || strings.HasSuffix(path, ".bin.index.json")
	if dir {
		_, errST := os.Stat(filepath.Join(path, safetensors.IndexFileName))
		matches, _ := filepath.Glob(filepath.Join(path, "*.safetensors"))
		isBin = errST != nil && len(matches) == 0
	}
	if isBin {
		ck, err := ptfile.OpenCheckpoint(path)
		if err != nil {
			return nil, err
		}
		l.close = ck.Close
		for _, n := range ck.Names() {
			info, _ := ck.Info(n)
			l.tensors = append(l.tensors, tensorLine{n, info.DType, info.Shape, int64(info.Shape.Numel() * info.DType.Size())})
		}
		l.files = []string{path}
		return l, nil
	}
	ck, err := safetensors.OpenCheckpoint(path)
	if err != nil {
		return nil, err
	}
	l.close = ck.Close
	l.metadata = ck.Metadata()
	seen := map[string]bool{}
	for _, n := range ck.Names() {
		info, _ := ck.Info(n)
		l.tensors = append(l.tensors, tensorLine{n, info.DType, info.Shape, info.End - info.Begin})
		if f := ck.FileOf(n); !seen[f] {
			seen[f] = true
			l.files = append(l.files, f)
		}
	}
	return l, nil
}

// recognizeFolder describes what llava.Open makes of a checkpoint folder.
func recognizeFolder(dir string) string {
	ck, err := llava.Open(dir, llava.OpenOptions{})
	if err != nil {
		return "not recognised: " + oneLine(err.Error())
	}
	defer ck.Close()
	v := ck.Vision
	s := fmt.Sprintf("%v; vision: CLIP ViT %d blocks × %d (heads %d, %d px, patch %d, %s)",
		ck.Layout, v.NumHiddenLayers, v.HiddenSize, v.NumAttentionHeads, v.ImageSize, v.PatchSize, v.HiddenAct)
	if t := ck.Text; t != nil {
		s += fmt.Sprintf("; language: LLaMA %d layers × %d (heads %d, kv heads %d, vocab %d, context %d); projector: %d linear, %s; features: layer %d",
			t.NumHiddenLayers, t.HiddenSize, t.NumAttentionHeads, t.NumKeyValueHeads, t.VocabSize, t.MaxPositionEmbeddings,
			ck.Projector.Layers, ck.Projector.Act, ck.FeatureLayer)
	}
	return s + fmt.Sprintf("; default aspect: %v", ck.Aspect)
}

// recognizeTensors guesses what a single file holds from its names.
func recognizeTensors(l *tensorListing) string {
	has := func(prefix string) bool {
		for _, t := range l.tensors {
			if strings.HasPrefix(t.name, prefix) {
				return true
			}
		}
		return false
	}
	hasSub := func(sub string) bool {
		for _, t := range l.tensors {
			if strings.Contains(t.name, sub) {
				return true
			}
		}
		return false
	}
	switch {
	case l.metadata["format"] == "alignedvq":
		return fmt.Sprintf("AlignedVQ module (block %s, site %s)", l.metadata["block"], l.metadata["site"])
	case hasSub(".lora_A."):
		return "PEFT LoRA adapter"
	case has("vision_tower.") || has("model.vision_tower.") || has("language_model.") || has("model.language_model."):
		return "llava-hf LLaVA weights"
	case has("model.mm_projector") || has("base_model.model.model.mm_projector"):
		return "original LLaVA weights (LLaMA + mm_projector)"
	case has("vision_model."):
		return "CLIP weights"
	case has("model.layers."):
		return "LLaMA weights"
	}
	return "unrecognised tensors"
}

func printMetadata(w io.Writer, md map[string]string) {
	if len(md) == 0 {
		return
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "metadata:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, md[k])
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
