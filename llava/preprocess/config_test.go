package preprocess

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigBothForms(t *testing.T) {
	for _, path := range []string{
		filepath.Join(fixtureDir, "tiny-llava", "preprocessor_config.json"),              // CLIPImageProcessor
		filepath.Join(fixtureDir, "original", "clip-vision", "preprocessor_config.json"), // CLIPFeatureExtractor
	} {
		c, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Size != 336 || c.CropSize != 336 || c.Mean != clipMean || c.Std != clipStd ||
			!c.DoRescale || !c.DoNormalize || c.RescaleFactor != 1.0/255 || c.DoPad != nil {
			t.Errorf("%s: parsed %+v", path, c)
		}
	}
}

func TestParseConfigDefaultsAndDoPad(t *testing.T) {
	c, err := ParseConfig([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := DefaultConfig(); c.Size != d.Size || c.CropSize != d.CropSize || c.Mean != d.Mean || c.DoPad != nil {
		t.Errorf("empty config parsed as %+v, want the defaults %+v", c, d)
	}
	c, err = ParseConfig([]byte(`{"do_pad": true, "size": 300, "crop_size": {"height": 224, "width": 224},
		"image_mean": 0.5, "image_std": [1, 2, 3], "do_normalize": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DoPad == nil || !*c.DoPad || c.Size != 300 || c.CropSize != 224 ||
		c.Mean != [3]float64{0.5, 0.5, 0.5} || c.Std != [3]float64{1, 2, 3} || c.DoNormalize {
		t.Errorf("parsed %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`not json`, "preprocessor config"},
		{`[]`, "preprocessor config"},
		{`{"resample": 2}`, "resample"},
		{`{"size": {"height": 336, "width": 336}}`, "size"},
		{`{"size": {"shortest_edge": "x"}}`, "size"},
		{`{"crop_size": {"height": 336, "width": 300}}`, "crop_size"},
		{`{"crop_size": 400, "size": 336}`, "crop_size"},
		{`{"size": 0}`, "size"},
		{`{"size": 100000}`, "size"},
		{`{"image_mean": [0.5, 0.5]}`, "image_mean"},
		{`{"image_std": [1, 0, 1]}`, "image_std"},
		{`{"image_mean": null}`, "image_mean"},
		{`{"do_center_crop": false}`, "do_center_crop"},
		{`{"do_resize": false}`, "do_resize"},
		{`{"do_pad": "yes"}`, "do_pad"},
	} {
		_, err := ParseConfig([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "preprocess: ") {
			t.Errorf("%s: error %v, want one naming %q", c.json, err, c.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestParseAspect(t *testing.T) {
	for s, want := range map[string]Aspect{"pad": Pad, "crop": Crop} {
		a, err := ParseAspect(s)
		if err != nil || a != want || a.String() != s {
			t.Errorf("ParseAspect(%q) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseAspect("square"); err == nil {
		t.Error("ParseAspect accepted square")
	}
}
