package vit

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/safetensors"
)

var images = []string{"square_336", "wide_640x360", "tall_200x500", "tiny_32x24", "rgba_300x220", "gray_260x180"}

// loadTiny loads the vision tower of a tiny-llava checkpoint.
func loadTiny(t *testing.T, b backend.Backend, model string, from, to Split) *Model {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata(model, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		VisionConfig json.RawMessage `json:"vision_config"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(top.VisionConfig)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := safetensors.OpenCheckpoint(testutil.Testdata(model))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	w := nn.NewWeights(ck, b, nil)
	m, err := Load(w.Sub("vision_tower", "vision_model"), cfg, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHiddenStatesMatchTransformers compares every hidden state of the F32
// tiny model with transformers' (pad-mode pixels), and the selected features
// of the F16 model with its own reference.
func TestHiddenStatesMatchTransformers(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	pix := testutil.Ref(t, "ref", "images.safetensors")
	ref := testutil.Ref(t, "ref", "tiny-llava", "vision.safetensors")
	m := loadTiny(t, b, "tiny-llava", Pixels, HiddenState(4))
	cfg := m.Config
	for _, img := range images {
		got := map[int][]float32{}
		s := m.NewStream(b)
		s.Trace = func(name string, layer int, x backend.Tensor) {
			if name == "hidden_state" {
				v := make([]float32, x.Shape().Numel())
				b.Read(v, x)
				got[layer] = v
			}
		}
		m.Run(b, s, testutil.F32(t, pix, img+".pixel_values.pad"), Pixels, HiddenState(cfg.NumHiddenLayers))
		if len(got) != cfg.NumHiddenLayers+1 {
			t.Fatalf("%s: the trace saw %d hidden states, want %d", img, len(got), cfg.NumHiddenLayers+1)
		}
		for l := 0; l <= cfg.NumHiddenLayers; l++ {
			name := fmt.Sprintf("%s.hidden_states.%d", img, l)
			st := testutil.Close(t, name, got[l], testutil.F32(t, ref, name), 1e-4, 0.99999)
			if img == "wide_640x360" {
				t.Logf("%s: %v", name, st)
			}
		}
	}

	f16 := loadTiny(t, b, "tiny-llava-f16", Pixels, HiddenState(3))
	ref16 := testutil.Ref(t, "ref", "tiny-llava-f16", "vision.safetensors")
	for _, img := range images {
		x, err := f16.Features(b, testutil.F32(t, pix, img+".pixel_values.pad"), -2)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float32, x.Shape().Numel())
		b.Read(v, x)
		d := f16.Config.HiddenSize
		testutil.Close(t, img+".selected (f16)", v[d:], testutil.F32(t, ref16, img+".selected"), 1e-4, 0.99999)
	}
}

// TestSplitResumeEqualsUnsplit runs to every split point, hands the stream
// to a second model that holds only the blocks after it, and checks the end
// result is unchanged: the edge/cloud cut itself must cost nothing.
func TestSplitResumeEqualsUnsplit(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	pix := testutil.F32(t, testutil.Ref(t, "ref", "images.safetensors"), "square_336.pixel_values.pad")
	end := HiddenState(3)
	full := loadTiny(t, b, "tiny-llava", Pixels, end)
	want, err := full.Features(b, pix, 3)
	if err != nil {
		t.Fatal(err)
	}
	wv := make([]float32, want.Shape().Numel())
	b.Read(wv, want)
	for blk := range 2 {
		for site := SiteLN1; site <= SiteFFN; site++ {
			sp := Split{blk, site}
			edge := loadTiny(t, b, "tiny-llava", Pixels, sp)
			cloud := loadTiny(t, b, "tiny-llava", sp, end)
			s := edge.NewStream(b)
			edge.Run(b, s, pix, Pixels, sp)
			cloud.Run(b, s, nil, sp, end)
			got := make([]float32, len(wv))
			b.Read(got, s.X)
			testutil.Exact(t, sp.String(), got, wv)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, bad := range []string{
		`{"hidden_size": 65, "num_attention_heads": 4}`,
		`{"image_size": 100, "patch_size": 14}`,
		`{"hidden_act": "relu6"}`,
		`{"num_channels": 4}`,
		`{"hidden_size": "big"}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("config %s was accepted", bad)
		}
	}
	c, err := ParseConfig([]byte(`{}`))
	if err != nil || c != DefaultConfig() {
		t.Fatalf("empty config: %+v, %v", c, err)
	}
}
