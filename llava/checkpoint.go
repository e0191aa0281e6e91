package llava

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava/preprocess"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/ptfile"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/vit"
)

// Layout is how a checkpoint folder is organised.
type Layout int

const (
	LayoutHF       Layout = iota + 1 // llava-hf: LlavaForConditionalGeneration, one folder
	LayoutOriginal                   // haotian-liu/LLaVA: LlavaLlamaForCausalLM + a separate CLIP folder
	LayoutCLIP                       // a CLIP checkpoint: the vision tower only
)

func (l Layout) String() string {
	switch l {
	case LayoutHF:
		return "llava-hf (LlavaForConditionalGeneration)"
	case LayoutOriginal:
		return "original LLaVA (LlavaLlamaForCausalLM)"
	case LayoutCLIP:
		return "CLIP vision tower"
	}
	return "unknown"
}

// Checkpoint is an opened model folder: what its configs say, and its weights
// under canonical names (see names.go). Nothing is loaded onto a backend yet.
type Checkpoint struct {
	Dir    string
	Layout Layout

	Vision       vit.Config
	Text         *llama.Config // nil for a CLIP checkpoint
	Projector    ProjectorConfig
	FeatureLayer int  // hidden state the features come from (−2 in LLaVA-1.5)
	DropCLS      bool // feature selection drops the class token ("default"/"patch")
	ImageToken   int32
	Image        preprocess.Config
	Aspect       preprocess.Aspect // the layout's default
	MaxLength    int               // original LLaVA's tokenizer_model_max_length (0: none)
	TokenizerDir string            // folder holding tokenizer.model
	VisionDir    string            // folder of the vision tower's config (Dir, or the original layout's CLIP folder)
	ConfigDir    string            // folder whose config.json was read (Dir, or an original-form LoRA's)

	src     *canonicalSource
	closers []func() error
}

// OpenOptions are what a folder may not say for itself.
type OpenOptions struct {
	// VisionTower is a CLIP checkpoint folder for the original layout, whose
	// config names the tower by hub id ("openai/clip-vit-large-patch14-336").
	VisionTower string
	// LoRA is the adapter folder the model will be loaded with. An adapter in
	// original LLaVA's form (with non_lora_trainables.bin) carries the
	// config.json the model is built from, as LLaVA's builder does.
	LoRA string
}

// Open reads a checkpoint folder: config.json decides the layout, the weights
// are safetensors (sharded or not) or PyTorch pickles, all memory-mapped and
// validated, none loaded.
func Open(dir string, opt OpenOptions) (ck *Checkpoint, err error) {
	configDir := dir
	if opt.LoRA != "" && isOriginalLoRA(opt.LoRA) {
		configDir = opt.LoRA
	}
	raw, err := os.ReadFile(filepath.Join(configDir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("llava: %w", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("llava: %s: %w", filepath.Join(configDir, "config.json"), err)
	}
	ck = &Checkpoint{Dir: dir, ImageToken: 32000, FeatureLayer: -2, DropCLS: true, TokenizerDir: dir, VisionDir: dir, ConfigDir: configDir}
	opened := ck
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	weights, err := openWeights(dir)
	if err != nil {
		return nil, err
	}
	ck.closers = append(ck.closers, weights.close)
	srcs := []nn.Source{weights.src}

	switch {
	case has(cfg, "mm_vision_tower") || has(cfg, "mm_projector_type"):
		ck.Layout = LayoutOriginal
		towerDir, err := ck.readOriginal(raw, opt)
		if err != nil {
			return nil, err
		}
		tower, err := openWeights(towerDir)
		if err != nil {
			return nil, err
		}
		ck.closers = append(ck.closers, tower.close)
		// LLaVA's builder reloads the tower from mm_vision_tower over any tower
		// weights saved in the checkpoint, so the separate folder wins.
		srcs = []nn.Source{withoutTower{weights.src}, tower.src}
		ck.VisionDir = towerDir
		if ck.Vision, err = readVisionConfig(towerDir); err != nil {
			return nil, err
		}
		if ck.Image, err = readImageConfig(towerDir, ck.Vision); err != nil {
			return nil, err
		}
	case has(cfg, "text_config") || has(cfg, "vision_config") && has(cfg, "image_token_index") ||
		strings.Contains(string(cfg["architectures"]), "LlavaForConditionalGeneration"):
		ck.Layout = LayoutHF
		if err := ck.readHF(raw); err != nil {
			return nil, err
		}
		if ck.Image, err = readImageConfig(dir, ck.Vision); err != nil {
			return nil, err
		}
		ck.Aspect = preprocess.Crop
		if ck.Image.DoPad != nil && *ck.Image.DoPad {
			ck.Aspect = preprocess.Pad
		}
	case string(cfg["model_type"]) == `"clip"` || string(cfg["model_type"]) == `"clip_vision_model"`:
		ck.Layout = LayoutCLIP
		if ck.Vision, err = readVisionConfig(dir); err != nil {
			return nil, err
		}
		if ck.Image, err = readImageConfig(dir, ck.Vision); err != nil {
			return nil, err
		}
		ck.Aspect = preprocess.Crop
	default:
		return nil, fmt.Errorf("llava: %s: not a LLaVA or CLIP config (no text_config, vision_config or mm_vision_tower)",
			filepath.Join(dir, "config.json"))
	}
	if ck.src, err = newCanonicalSource(srcs...); err != nil {
		return nil, err
	}
	if ck.Text != nil {
		if ck.Text.VocabSize <= int(ck.ImageToken) && ck.Layout == LayoutHF {
			return nil, fmt.Errorf("llava: image_token_index %d is outside the vocabulary of %d", ck.ImageToken, ck.Text.VocabSize)
		}
	}
	return ck, nil
}

// isOriginalLoRA reports whether an adapter folder is in original LLaVA's
// form: the projector trained with it in non_lora_trainables.bin, and the
// model's config.json beside it.
func isOriginalLoRA(dir string) bool {
	for _, f := range []string{"non_lora_trainables.bin", "config.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

func has(m map[string]json.RawMessage, k string) bool {
	v, ok := m[k]
	return ok && string(v) != "null"
}

// readHF reads a LlavaConfig. transformers' LlavaConfig fills a missing
// vision_config with CLIP ViT-L/14-336 and a missing text_config with
// LlamaConfig's defaults; a given one takes its class's defaults field by field.
func (ck *Checkpoint) readHF(raw []byte) error {
	var c struct {
		TextConfig      json.RawMessage `json:"text_config"`
		VisionConfig    json.RawMessage `json:"vision_config"`
		ImageTokenIndex *int32          `json:"image_token_index"`
		ProjectorAct    *string         `json:"projector_hidden_act"`
		FeatureLayer    json.RawMessage `json:"vision_feature_layer"`
		SelectStrategy  *string         `json:"vision_feature_select_strategy"`
		ProjectorBias   *bool           `json:"multimodal_projector_bias"`
		Tie             *bool           `json:"tie_word_embeddings"`
	}
	path := filepath.Join(ck.Dir, "config.json")
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("llava: %s: %w", path, err)
	}
	var err error
	if len(c.VisionConfig) == 0 || string(c.VisionConfig) == "null" {
		ck.Vision = vit.ViTL14_336()
	} else if ck.Vision, err = vit.ParseConfig(c.VisionConfig); err != nil {
		return fmt.Errorf("llava: %s: %w", path, err)
	}
	text := []byte("{}")
	if len(c.TextConfig) > 0 && string(c.TextConfig) != "null" {
		text = c.TextConfig
	}
	tc, err := llama.ParseConfig(text)
	if err != nil {
		return fmt.Errorf("llava: %s: %w", path, err)
	}
	if c.Tie != nil && !strings.Contains(string(text), "tie_word_embeddings") {
		tc.TieWordEmbeddings = *c.Tie
	}
	ck.Text = &tc
	if c.ImageTokenIndex != nil {
		ck.ImageToken = *c.ImageTokenIndex
	}
	act := "gelu"
	if c.ProjectorAct != nil {
		act = *c.ProjectorAct
	}
	ck.Projector = ProjectorConfig{Layers: 2, Act: act, Bias: c.ProjectorBias == nil || *c.ProjectorBias}
	if len(c.FeatureLayer) > 0 && string(c.FeatureLayer) != "null" {
		if err := json.Unmarshal(c.FeatureLayer, &ck.FeatureLayer); err != nil {
			return fmt.Errorf("llava: %s: vision_feature_layer %s: only a single layer is supported", path, c.FeatureLayer)
		}
	}
	if c.SelectStrategy != nil {
		switch *c.SelectStrategy {
		case "default":
		case "full":
			ck.DropCLS = false
		default:
			return fmt.Errorf("llava: %s: vision_feature_select_strategy %q is not supported (default, full)", path, *c.SelectStrategy)
		}
	}
	return ck.checkFeatureLayer(path)
}

func (ck *Checkpoint) checkFeatureLayer(path string) error {
	if _, err := ck.Vision.ResolveLayer(ck.FeatureLayer); err != nil {
		return fmt.Errorf("llava: %s: %w", path, err)
	}
	return nil
}

// readOriginal reads a LlavaLlamaForCausalLM config (LLaMA fields at the root,
// mm_* fields for the vision side) and returns the vision tower's folder.
func (ck *Checkpoint) readOriginal(raw []byte, opt OpenOptions) (string, error) {
	path := filepath.Join(ck.Dir, "config.json")
	var c struct {
		Tower        string  `json:"mm_vision_tower"`
		ProjType     *string `json:"mm_projector_type"`
		SelectLayer  *int    `json:"mm_vision_select_layer"`
		SelectFeat   *string `json:"mm_vision_select_feature"`
		Aspect       *string `json:"image_aspect_ratio"`
		MMHidden     *int    `json:"mm_hidden_size"`
		ImStartEnd   bool    `json:"mm_use_im_start_end"`
		PatchToken   bool    `json:"mm_use_im_patch_token"`
		PatchMerge   *string `json:"mm_patch_merge_type"`
		TokMaxLength *int    `json:"tokenizer_model_max_length"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("llava: %s: %w", path, err)
	}
	tc, err := llama.ParseConfig(raw)
	if err != nil {
		return "", fmt.Errorf("llava: %s: %w", path, err)
	}
	ck.Text = &tc
	ck.ImageToken = -200 // IMAGE_TOKEN_INDEX: a sentinel, not a vocabulary token
	if c.TokMaxLength != nil {
		ck.MaxLength = *c.TokMaxLength
	}
	proj := "linear"
	if c.ProjType != nil {
		proj = *c.ProjType
	}
	if ck.Projector, err = parseProjectorType(proj); err != nil {
		return "", fmt.Errorf("llava: %s: %w", path, err)
	}
	switch {
	case c.ImStartEnd || c.PatchToken:
		return "", fmt.Errorf("llava: %s: mm_use_im_start_end / mm_use_im_patch_token are not supported (LLaVA-1.5 sets both false)", path)
	case c.PatchMerge != nil && *c.PatchMerge != "flat":
		return "", fmt.Errorf("llava: %s: mm_patch_merge_type %q is not supported (flat)", path, *c.PatchMerge)
	}
	if c.SelectLayer != nil {
		ck.FeatureLayer = *c.SelectLayer
	}
	if c.SelectFeat != nil {
		switch *c.SelectFeat {
		case "patch":
		case "cls_patch":
			ck.DropCLS = false
		default:
			return "", fmt.Errorf("llava: %s: mm_vision_select_feature %q is not supported (patch, cls_patch)", path, *c.SelectFeat)
		}
	}
	ck.Aspect = preprocess.Crop
	if c.Aspect != nil {
		switch *c.Aspect {
		case "pad":
			ck.Aspect = preprocess.Pad
		case "square", "":
		default:
			return "", fmt.Errorf("llava: %s: image_aspect_ratio %q is not supported (pad, square)", path, *c.Aspect)
		}
	}
	tower, err := findVisionTower(ck.Dir, c.Tower, opt.VisionTower)
	if err != nil {
		return "", err
	}
	vc, err := readVisionConfig(tower)
	if err != nil {
		return "", err
	}
	if c.MMHidden != nil && *c.MMHidden != vc.HiddenSize {
		return "", fmt.Errorf("llava: %s: mm_hidden_size %d disagrees with the vision tower's hidden_size %d (%s)",
			path, *c.MMHidden, vc.HiddenSize, tower)
	}
	ck.Vision = vc
	return tower, ck.checkFeatureLayer(path)
}

// findVisionTower resolves mm_vision_tower: an explicit folder wins, then a
// local path (absolute, or relative to the checkpoint), then the Hugging Face
// cache for a hub id.
func findVisionTower(dir, named, override string) (string, error) {
	isModel := func(p string) bool {
		st, err := os.Stat(filepath.Join(p, "config.json"))
		return err == nil && st.Mode().IsRegular()
	}
	if override != "" {
		if !isModel(override) {
			return "", fmt.Errorf("llava: vision tower %s: no config.json there", override)
		}
		return override, nil
	}
	if named == "" {
		return "", fmt.Errorf("llava: %s: mm_vision_tower is empty; give the CLIP folder with --vision-tower", dir)
	}
	for _, p := range []string{named, filepath.Join(dir, named)} {
		if isModel(p) {
			return p, nil
		}
	}
	if org, name, ok := strings.Cut(named, "/"); ok && !strings.Contains(name, "/") {
		hub := os.Getenv("HF_HUB_CACHE")
		if hub == "" {
			home := os.Getenv("HF_HOME")
			if home == "" {
				if h, err := os.UserHomeDir(); err == nil {
					home = filepath.Join(h, ".cache", "huggingface")
				}
			}
			hub = filepath.Join(home, "hub")
		}
		snaps, _ := filepath.Glob(filepath.Join(hub, "models--"+org+"--"+name, "snapshots", "*"))
		for _, s := range snaps {
			if isModel(s) {
				return s, nil
			}
		}
	}
	return "", fmt.Errorf("llava: mm_vision_tower %q is neither a folder nor in the Hugging Face cache; give the CLIP folder with --vision-tower", named)
}

// readVisionConfig reads a CLIP config.json: a CLIPConfig (vision_config
// inside) or a CLIPVisionConfig.
func readVisionConfig(dir string) (vit.Config, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return vit.Config{}, fmt.Errorf("llava: %w", err)
	}
	var c struct {
		VisionConfig json.RawMessage `json:"vision_config"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return vit.Config{}, fmt.Errorf("llava: %s: %w", path, err)
	}
	if len(c.VisionConfig) > 0 && string(c.VisionConfig) != "null" {
		raw = c.VisionConfig
	}
	vc, err := vit.ParseConfig(raw)
	if err != nil {
		return vc, fmt.Errorf("llava: %s: %w", path, err)
	}
	return vc, nil
}

// readImageConfig reads preprocessor_config.json; a folder without one gets
// CLIPImageProcessor's defaults sized to the tower. The crop must be the
// tower's image size.
func readImageConfig(dir string, v vit.Config) (preprocess.Config, error) {
	path := filepath.Join(dir, "preprocessor_config.json")
	c, err := preprocess.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		c = preprocess.DefaultConfig()
		c.Size, c.CropSize = v.ImageSize, v.ImageSize
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("llava: %w", err)
	}
	if c.CropSize != v.ImageSize {
		return c, fmt.Errorf("llava: %s: crop_size %d disagrees with the vision tower's image_size %d", path, c.CropSize, v.ImageSize)
	}
	return c, nil
}

// weightSet is an opened set of weight files.
type weightSet struct {
	src   nn.Source
	close func() error
}

// openWeights opens a folder's weights: safetensors first (they map without
// parsing anything), then PyTorch pickles.
func openWeights(dir string) (weightSet, error) {
	exists := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}
	st, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if exists(safetensors.IndexFileName) || len(st) > 0 {
		c, err := safetensors.OpenCheckpoint(dir)
		if err != nil {
			return weightSet{}, err
		}
		return weightSet{src: c, close: c.Close}, nil
	}
	if exists("pytorch_model.bin.index.json") || exists("pytorch_model.bin") {
		c, err := ptfile.OpenCheckpoint(dir)
		if err != nil {
			return weightSet{}, err
		}
		return weightSet{src: c, close: c.Close}, nil
	}
	return weightSet{}, fmt.Errorf("llava: %s: no weights (model.safetensors[.index.json] or pytorch_model.bin[.index.json])", dir)
}

// Source is the checkpoint's tensors under canonical names.
func (ck *Checkpoint) Source() nn.Source { return ck.src }

// OriginalName is the name a canonical tensor has in its file.
func (ck *Checkpoint) OriginalName(canonical string) string { return ck.src.originalName(canonical) }

// Close unmaps every file.
func (ck *Checkpoint) Close() error {
	var first error
	for _, c := range ck.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	ck.closers = nil
	return first
}
