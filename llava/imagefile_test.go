package llava

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/llava/preprocess"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/vq"
)

// imageFiles maps each fixture image key to its file (testdata/ref/images.json).
func imageFiles(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("ref", "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Images []struct{ Key, File string }
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Images) != 6 {
		t.Fatalf("images.json lists %d images, want 6", len(f.Images))
	}
	m := map[string]string{}
	for _, im := range f.Images {
		m[im.Key] = testutil.Testdata("images", im.File)
	}
	return m
}

// TestFromImageFiles runs the whole path a user's image takes — file, our
// decoder (the JPEG one included), preprocessing, vision tower, projector,
// generation — and expects transformers' greedy ids for every image case,
// where the other parity tests start from the reference's pixel values.
func TestFromImageFiles(t *testing.T) {
	files := imageFiles(t)
	b := cpu.New(0)
	defer b.Close()
	ck, err := Open(testutil.Testdata("tiny-llava"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, err := Load(ck, b, LoadOptions{Parts: ck.AllParts()})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range readCases(t, "ref", "tiny-llava", "cases.json") {
		if c.Image == nil {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			aspect, err := preprocess.ParseAspect(map[string]string{"pad": "pad", "hf": "crop"}[*c.PixelMode])
			if err != nil {
				t.Fatalf("pixel_mode %q: %v", *c.PixelMode, err)
			}
			pixels, err := ck.Pixels(files[*c.Image], ImageOptions{Aspect: &aspect})
			if err != nil {
				t.Fatal(err)
			}
			f, err := m.SelectFeatures(pixels)
			if err != nil {
				t.Fatal(err)
			}
			prompt := mustTemplate(t, strings.Fields(c.Template)[0]).Prompt(c.Question, true)
			if prompt.Text != c.Prompt {
				t.Fatalf("prompt\n got %q\nwant %q", prompt.Text, c.Prompt)
			}
			res, err := m.Generate(context.Background(), Request{Prompt: prompt, Image: m.Project(f), MaxTokens: len(c.GeneratedIDs)})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.IDs) != fmt.Sprint(c.GeneratedIDs) {
				t.Fatalf("greedy ids from %s\n got %v\nwant %v", files[*c.Image], res.IDs, c.GeneratedIDs)
			}
		})
	}
	if n < 20 {
		t.Fatalf("%d image cases, want at least 20", n)
	}
}

// TestEdgeHeadFromImageFiles encodes each image file with the edge head and
// expects the reference's AlignedVQ indices except at near-ties (scores
// within 1e-5·|best|), and its frame bytes where the indices all agree.
func TestEdgeHeadFromImageFiles(t *testing.T) {
	files := imageFiles(t)
	b := cpu.New(0)
	defer b.Close()
	for _, module := range []string{"block0_ln1", "block1_ln2"} {
		t.Run(module, func(t *testing.T) {
			ck, err := Open(testutil.Testdata("tiny-llava"), OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			mod, err := vq.Load(testutil.Testdata("vq", module, "alignedvq.safetensors"), b)
			if err != nil {
				t.Fatal(err)
			}
			edge := loadSplit(t, ck, b, mod, ck.EdgeParts)
			ref := testutil.Ref(t, "ref", "vq", module, "vq.safetensors")
			pad := preprocess.Pad
			for key, path := range files {
				pixels, err := ck.Pixels(path, ImageOptions{Aspect: &pad})
				if err != nil {
					t.Fatal(err)
				}
				e, err := edge.EncodeFrame(pixels, false)
				if err != nil {
					t.Fatal(err)
				}
				checkIndices(t, key, e, ref)
			}
		})
	}
}

// loadSplit loads the parts of ck that parts selects for mod (the edge head's
// or the cloud tail's) with mod attached.
func loadSplit(t *testing.T, ck *Checkpoint, b backend.Backend, mod *vq.Module, parts func(*vq.Module) (Parts, error)) *Model {
	t.Helper()
	p, err := parts(mod)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(ck, b, LoadOptions{Parts: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachVQ(mod); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkIndices holds an edge result to the reference module's indices for
// image key: equal except at near-ties (scores within 1e-5·|best|, the
// spec's rule), and the frame byte-identical where all agree.
func checkIndices(t *testing.T, key string, e *EdgeResult, ref *safetensors.File) {
	t.Helper()
	want := testutil.Tensor(t, ref, key+".indices").I32()
	best, margin := testutil.F32(t, ref, key+".score_best"), testutil.F32(t, ref, key+".margin")
	if len(e.Quantized.Indices) != len(want) {
		t.Fatalf("%s: %d indices, reference %d", key, len(e.Quantized.Indices), len(want))
	}
	differ := 0
	for i, idx := range e.Quantized.Indices {
		if idx != want[i] {
			differ++
			if margin[i] > 1e-5*float32(math.Abs(float64(best[i]))) {
				t.Errorf("%s token %d: index %d, want %d, and it is no near-tie (margin %g)", key, i, idx, want[i], margin[i])
			}
		}
	}
	if differ == 0 && string(e.Frame) != string(testutil.Tensor(t, ref, key+".frame").Bytes()) {
		t.Errorf("%s: same indices, different frame bytes", key)
	}
}
