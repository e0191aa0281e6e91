package preprocess

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

const fixtureDir = "../../testdata"

// refTensor is one tensor of testdata/ref/images.safetensors.
type refTensor struct {
	dtype string
	shape []int
	data  []byte
}

var (
	refOnce sync.Once
	refMap  map[string]refTensor
	refErr  error
)

// loadRef reads images.safetensors with a minimal parser (the format is a
// length, a JSON header and raw bytes), keeping these tests free of other
// packages of the repo.
func loadRef(t testing.TB) map[string]refTensor {
	t.Helper()
	refOnce.Do(func() {
		b, err := os.ReadFile(filepath.Join(fixtureDir, "ref", "images.safetensors"))
		if err != nil {
			refErr = err
			return
		}
		n := binary.LittleEndian.Uint64(b)
		var hdr map[string]json.RawMessage
		if refErr = json.Unmarshal(b[8:8+n], &hdr); refErr != nil {
			return
		}
		refMap = map[string]refTensor{}
		for name, raw := range hdr {
			if name == "__metadata__" {
				continue
			}
			var e struct {
				DType   string   `json:"dtype"`
				Shape   []int    `json:"shape"`
				Offsets [2]int64 `json:"data_offsets"`
			}
			if refErr = json.Unmarshal(raw, &e); refErr != nil {
				return
			}
			base := 8 + int64(n)
			refMap[name] = refTensor{e.DType, e.Shape, b[base+e.Offsets[0] : base+e.Offsets[1]]}
		}
	})
	if refErr != nil {
		t.Fatalf("loading reference tensors: %v", refErr)
	}
	return refMap
}

func refU8(t testing.TB, name string) refTensor {
	t.Helper()
	r, ok := loadRef(t)[name]
	if !ok || r.dtype != "U8" {
		t.Fatalf("reference %s missing or not U8", name)
	}
	return r
}

func refF32(t testing.TB, name string) []float32 {
	t.Helper()
	r, ok := loadRef(t)[name]
	if !ok || r.dtype != "F32" {
		t.Fatalf("reference %s missing or not F32", name)
	}
	out := make([]float32, len(r.data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.data[4*i:]))
	}
	return out
}

// llavaConfig is the checkpoint's own preprocessor config (llava-hf form).
func llavaConfig(t testing.TB) Config {
	t.Helper()
	c, err := LoadConfig(filepath.Join(fixtureDir, "tiny-llava", "preprocessor_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var pngFixtures = []string{"square_336", "tall_200x500", "tiny_32x24", "rgba_300x220", "gray_260x180"}

func TestDecodedRGBMatchesPillowPNG(t *testing.T) {
	for _, key := range pngFixtures {
		img, err := DecodeFile(filepath.Join(fixtureDir, "images", key+".png"), DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ref := refU8(t, key+".decoded_rgb")
		if img.H != ref.shape[0] || img.W != ref.shape[1] || ref.shape[2] != 3 {
			t.Fatalf("%s: decoded %dx%d, reference shape %v", key, img.W, img.H, ref.shape)
		}
		for i := range img.Pix {
			if img.Pix[i] != ref.data[i] {
				t.Fatalf("%s: byte %d (pixel %d, channel %d) = %d, Pillow has %d", key, i, i/3, i%3, img.Pix[i], ref.data[i])
			}
		}
	}
}

// exactValues holds got to the reference bit for bit: the pipeline
// (decode, pad, Pillow's fixed-point resize, crop, fp32 normalisation)
// reproduces CLIPImageProcessor exactly, so any difference is a regression.
func exactValues(t *testing.T, name string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference has %d", name, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: value %d (channel %d, row %d, column %d) = %.9g, CLIPImageProcessor has %.9g",
				name, i, i/(336*336), i/336%336, i%336, got[i], want[i])
		}
	}
}

func TestPixelValuesMatchCLIPImageProcessor(t *testing.T) {
	c := llavaConfig(t)
	for _, key := range pngFixtures {
		img, err := DecodeFile(filepath.Join(fixtureDir, "images", key+".png"), DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		exactValues(t, key+".hf", c.PixelValues(img, Crop), refF32(t, key+".pixel_values.hf"))
		exactValues(t, key+".pad", c.PixelValues(img, Pad), refF32(t, key+".pixel_values.pad"))
	}
}

// The JPEG fixture's decode is libjpeg's to the last value, and the whole
// pipeline from the file gives CLIPImageProcessor's pixel values exactly.
func TestJPEGPipelineMatchesCLIPImageProcessor(t *testing.T) {
	img, err := DecodeFile(filepath.Join(fixtureDir, "images", "wide_640x360.jpg"), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := refU8(t, "wide_640x360.decoded_rgb")
	if img.H != ref.shape[0] || img.W != ref.shape[1] {
		t.Fatalf("decoded %dx%d, reference shape %v", img.W, img.H, ref.shape)
	}
	for i := range img.Pix {
		if img.Pix[i] != ref.data[i] {
			p := i / 3
			t.Fatalf("decoded RGB differs from Pillow's at pixel (%d, %d) channel %d: %d, want %d",
				p%img.W, p/img.W, i%3, img.Pix[i], ref.data[i])
		}
	}
	c := llavaConfig(t)
	exactValues(t, "wide_640x360.hf", c.PixelValues(img, Crop), refF32(t, "wide_640x360.pixel_values.hf"))
	exactValues(t, "wide_640x360.pad", c.PixelValues(img, Pad), refF32(t, "wide_640x360.pixel_values.pad"))
}
