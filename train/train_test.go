package train

import (
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/vq"
)

var fixtureImages = []string{"square_336", "wide_640x360", "tall_200x500", "tiny_32x24", "rgba_300x220", "gray_260x180"}

// tiny loads the tiny model's vision side (and projector) on b, and the pad
// pixel values of the fixture images.
func tiny(t testing.TB, b *cpu.CPU) (*llava.Model, [][]float32) {
	t.Helper()
	ck, err := llava.Open(testutil.Testdata("tiny-llava"), llava.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	parts := ck.VisionParts()
	parts.Projector = true
	m, err := llava.Load(ck, b, llava.LoadOptions{Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	pix := testutil.Ref(t, "ref", "images.safetensors")
	var px [][]float32
	for _, img := range fixtureImages {
		px = append(px, testutil.F32(t, pix, img+".pixel_values.pad"))
	}
	return m, px
}

func moduleData(t testing.TB, b *cpu.CPU, path string) *vq.ModuleData {
	t.Helper()
	mod, err := vq.Load(path, b)
	if err != nil {
		t.Fatal(err)
	}
	return mod.Data(b)
}

func TestShortRunLowersHeldOutLoss(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	m, px := tiny(t, b)
	init := moduleData(t, b, testutil.Testdata("vq", "block0_ln1", "alignedvq.safetensors"))
	opt := Options{Steps: 30, Batch: 2, LR: 3e-3, Warmup: 3, WeightDecay: 0.01, Clip: 1, Beta: 0.25, EMADecay: 0.99, Seed: 1}
	tr, err := New(m, init, px[:5], px[5:], opt)
	if err != nil {
		t.Fatal(err)
	}
	e0, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	for tr.Steps() < opt.Steps {
		s, err := tr.Step()
		if err != nil {
			t.Fatal(err)
		}
		if s.Step == opt.Steps {
			t.Logf("last step: %+v", s)
		}
	}
	e1, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held-out distillation: k-means only %+v, trained %+v", e0, e1)
	if !(e1.MSE < e0.MSE) {
		t.Errorf("training raised the held-out distillation error: %.6g → %.6g", e0.MSE, e1.MSE)
	}
}
