package preprocess

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
)

// Aspect says what happens to a non-square image before the resize.
type Aspect int

const (
	// Crop resizes the short side and centre-crops the long one (the llava-hf
	// processor; the fixtures call it "hf").
	Crop Aspect = iota
	// Pad first pastes the image centred on a square of the mean colour
	// (original LLaVA-1.5's expand2square, what the paper evaluates).
	Pad
)

// ParseAspect reads "pad" or "crop".
func ParseAspect(s string) (Aspect, error) {
	switch s {
	case "pad":
		return Pad, nil
	case "crop":
		return Crop, nil
	}
	return 0, fmt.Errorf("preprocess: unknown aspect %q (want pad or crop)", s)
}

func (a Aspect) String() string {
	switch a {
	case Pad:
		return "pad"
	case Crop:
		return "crop"
	}
	return "Aspect(" + strconv.Itoa(int(a)) + ")"
}

// Config is what preprocessor_config.json says about CLIP preprocessing.
type Config struct {
	Size     int // the short side after the resize (size.shortest_edge)
	CropSize int // side of the square centre crop (crop_size)
	// Mean and Std are image_mean and image_std as the JSON writes them. They
	// stay float64 because expand2square's fill is int(mean*255) in Python
	// floats; normalisation rounds them to float32 as numpy does.
	Mean, Std     [3]float64
	DoRescale     bool    // do_rescale: multiply by RescaleFactor
	RescaleFactor float64 // rescale_factor, 1/255
	DoNormalize   bool    // do_normalize: subtract Mean, divide by Std
	// DoPad is do_pad when the file has it (llava-hf uses it to choose Pad
	// over Crop) and nil when it does not.
	DoPad *bool
}

// OpenAI CLIP's normalisation constants, transformers' OPENAI_CLIP_MEAN/STD.
var (
	clipMean = [3]float64{0.48145466, 0.4578275, 0.40821073}
	clipStd  = [3]float64{0.26862954, 0.26130258, 0.27577711}
)

// Bounds on Size and CropSize, so that a hostile config cannot ask for huge
// intermediate images (the resize keeps CropSize columns of every source row
// the crop needs).
const (
	maxConfigSize = 4096
	maxCropSize   = 2048
)

// DefaultConfig is CLIPImageProcessor's defaults (transformers 4.40.2): short
// side 224, 224x224 crop, OpenAI CLIP mean and std, rescale by 1/255. Fields
// missing from a preprocessor_config.json take these values; LLaVA-1.5's
// files set 336 for both sizes.
func DefaultConfig() Config {
	return Config{
		Size:          224,
		CropSize:      224,
		Mean:          clipMean,
		Std:           clipStd,
		DoRescale:     true,
		RescaleFactor: 1.0 / 255,
		DoNormalize:   true,
	}
}

// LoadConfig reads and parses a preprocessor_config.json.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("preprocess: %w", err)
	}
	c, err := parseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("preprocess: %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses a preprocessor_config.json in either of the forms
// checkpoints use: CLIPImageProcessor's ({"size": {"shortest_edge": 336},
// "crop_size": {"height": 336, "width": 336}}) or the legacy
// CLIPFeatureExtractor's ("size": 336, "crop_size": 336).
func ParseConfig(b []byte) (Config, error) {
	c, err := parseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("preprocess: preprocessor config: %w", err)
	}
	return c, nil
}

func parseConfig(b []byte) (Config, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return Config{}, err
	}
	if fields == nil {
		return Config{}, fmt.Errorf("not a JSON object")
	}
	c := DefaultConfig()
	var err error
	if raw, ok := fields["size"]; ok {
		if c.Size, err = parseSize(raw); err != nil {
			return Config{}, fmt.Errorf("size: %w", err)
		}
	}
	if raw, ok := fields["crop_size"]; ok {
		if c.CropSize, err = parseCropSize(raw); err != nil {
			return Config{}, fmt.Errorf("crop_size: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		dst  *[3]float64
	}{{"image_mean", &c.Mean}, {"image_std", &c.Std}} {
		if raw, ok := fields[f.name]; ok {
			if *f.dst, err = parseTriple(raw); err != nil {
				return Config{}, fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	if raw, ok := fields["rescale_factor"]; ok {
		if err := json.Unmarshal(raw, &c.RescaleFactor); err != nil {
			return Config{}, fmt.Errorf("rescale_factor: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"do_rescale", &c.DoRescale}, {"do_normalize", &c.DoNormalize}} {
		if raw, ok := fields[f.name]; ok {
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return Config{}, fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	// The pipeline always resizes and crops; a config that turns either off
	// describes a different model input, so say so rather than ignore it.
	for _, name := range []string{"do_resize", "do_center_crop"} {
		if raw, ok := fields[name]; ok {
			var on bool
			if err := json.Unmarshal(raw, &on); err != nil {
				return Config{}, fmt.Errorf("%s: %w", name, err)
			}
			if !on {
				return Config{}, fmt.Errorf("%s: false is not supported", name)
			}
		}
	}
	if raw, ok := fields["resample"]; ok {
		var r int
		if err := json.Unmarshal(raw, &r); err != nil {
			return Config{}, fmt.Errorf("resample: %w", err)
		}
		if r != pilBicubic {
			return Config{}, fmt.Errorf("resample: %d is not supported (only 3, bicubic)", r)
		}
	}
	if raw, ok := fields["do_pad"]; ok {
		var pad bool
		if err := json.Unmarshal(raw, &pad); err != nil {
			return Config{}, fmt.Errorf("do_pad: %w", err)
		}
		c.DoPad = &pad
	}
	return c, c.validate()
}

// pilBicubic is PIL.Image.Resampling.BICUBIC, the "resample" value CLIP uses.
const pilBicubic = 3

func (c Config) validate() error {
	if c.Size < 1 || c.Size > maxConfigSize {
		return fmt.Errorf("size: %d outside [1, %d]", c.Size, maxConfigSize)
	}
	// transformers pads with zeros when the crop is larger than the resized
	// image, and its versions disagree on where; refuse rather than guess.
	if c.CropSize < 1 || c.CropSize > maxCropSize || c.CropSize > c.Size {
		return fmt.Errorf("crop_size: %d outside [1, min(size=%d, %d)]", c.CropSize, c.Size, maxCropSize)
	}
	for i := range 3 {
		if !(c.Std[i] > 0) || math.IsInf(c.Std[i], 0) {
			return fmt.Errorf("image_std[%d]: %v is not a positive number", i, c.Std[i])
		}
		if math.IsNaN(c.Mean[i]) || math.IsInf(c.Mean[i], 0) {
			return fmt.Errorf("image_mean[%d]: %v is not a finite number", i, c.Mean[i])
		}
	}
	if math.IsNaN(c.RescaleFactor) || math.IsInf(c.RescaleFactor, 0) {
		return fmt.Errorf("rescale_factor: %v is not a finite number", c.RescaleFactor)
	}
	return nil
}

// parseSize reads "size": an int (legacy, the shortest edge) or
// {"shortest_edge": n}.
func parseSize(raw json.RawMessage) (int, error) {
	if n, ok, err := parseInt(raw); ok || err != nil {
		return n, err
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(raw, &d); err != nil {
		return 0, err
	}
	se, ok := d["shortest_edge"]
	if !ok || len(d) != 1 {
		return 0, fmt.Errorf("want an integer or {\"shortest_edge\": n}; CLIP resizes the shortest edge")
	}
	n, ok, err := parseInt(se)
	if !ok && err == nil {
		err = fmt.Errorf("shortest_edge is not an integer")
	}
	return n, err
}

// parseCropSize reads "crop_size": an int (legacy) or {"height": h, "width": w}
// with h == w.
func parseCropSize(raw json.RawMessage) (int, error) {
	if n, ok, err := parseInt(raw); ok || err != nil {
		return n, err
	}
	var d struct {
		Height *int `json:"height"`
		Width  *int `json:"width"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return 0, err
	}
	if d.Height == nil || d.Width == nil {
		return 0, fmt.Errorf("want an integer or {\"height\": h, \"width\": w}")
	}
	if *d.Height != *d.Width {
		return 0, fmt.Errorf("%dx%d is not square", *d.Width, *d.Height)
	}
	return *d.Height, nil
}

// parseInt reads raw as an integer; ok is false when raw is not a number.
func parseInt(raw json.RawMessage) (n int, ok bool, err error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || (t[0] != '-' && (t[0] < '0' || t[0] > '9')) {
		return 0, false, nil
	}
	if err := json.Unmarshal(t, &n); err != nil {
		return 0, true, err
	}
	return n, true, nil
}

// parseTriple reads a per-channel value: a list of three numbers, or one
// number that transformers applies to every channel.
func parseTriple(raw json.RawMessage) ([3]float64, error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return [3]float64{}, fmt.Errorf("null")
	}
	var one float64
	if err := json.Unmarshal(raw, &one); err == nil {
		return [3]float64{one, one, one}, nil
	}
	var list []float64
	if err := json.Unmarshal(raw, &list); err != nil {
		return [3]float64{}, err
	}
	if len(list) != 3 {
		return [3]float64{}, fmt.Errorf("%d values, want 3", len(list))
	}
	return [3]float64(list), nil
}
