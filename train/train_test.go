package train

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/vit"
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
	opt := Options{Steps: 12, Batch: 2, LR: 3e-3, Warmup: 1, WeightDecay: 0.01, Clip: 1, Beta: 0.25, EMADecay: 0.99, Seed: 1}
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
	// The student is the deployed computation: the module as trained (before
	// the residual refit), through a real frame and the cloud tail, gives
	// the features Evaluate measured, bit for bit.
	mod, err := vq.NewModule(tr.md, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachVQ(mod); err != nil {
		t.Fatal(err)
	}
	fs, err := m.FeaturesVQ(px[5], nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var se float64
	for i, v := range fs.Selected.F32() {
		d := float64(v) - float64(tr.held[0].target[i])
		se += d * d
	}
	if mse := se / float64(len(tr.held[0].target)); mse != e1.MSE {
		t.Errorf("held-out MSE through the split %.17g, in training %.17g", mse, e1.MSE)
	}
}

// TestResumeAndThreadsGiveTheSameBytes: a run interrupted after 2 of 4
// steps and resumed from its checkpoint, on another thread count, writes the
// same module bytes as the run on one thread that never stopped; the EMA
// codebook and the gradient codebook alike.
func TestResumeAndThreadsGiveTheSameBytes(t *testing.T) {
	for _, grad := range []bool{false, true} {
		opt := Options{Steps: 4, Batch: 2, LR: 3e-3, Warmup: 1, WeightDecay: 0.01, Clip: 1, Beta: 0.25, EMADecay: 0.9,
			CodebookGrad: grad, Seed: 7}
		dir := t.TempDir()
		ckpt := filepath.Join(dir, "run.ckpt")
		run := func(threads int, resume bool, out string) {
			b := cpu.New(threads)
			defer b.Close()
			m, px := tiny(t, b)
			init := moduleData(t, b, testutil.Testdata("vq", "block0_ln1", "alignedvq.safetensors"))
			tr, err := New(m, init, px[:3], nil, opt)
			if err != nil {
				t.Fatal(err)
			}
			interrupted(t, tr, ckpt, 2, resume)
			md, err := tr.Module(px[:3])
			if err != nil {
				t.Fatal(err)
			}
			if err := vq.WriteModule(out, md); err != nil {
				t.Fatal(err)
			}
		}
		a, b := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
		run(1, false, a)
		run(3, true, b)
		ba, _ := os.ReadFile(a)
		bb, _ := os.ReadFile(b)
		if len(ba) == 0 || !bytes.Equal(ba, bb) {
			t.Errorf("codebook by gradient %v: the resumed 3-thread run wrote other bytes than the 1-thread run", grad)
		}
	}
}

// TestF16Checkpoint: the student's backward reads F16 weights as the
// forward does (widened while packing); a step on the F16 fixture gives
// gradients close to the F32 fixture's, whose weights it rounds.
func TestF16Checkpoint(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	init := moduleData(t, b, testutil.Testdata("train", "state.safetensors"))
	var gs [][][]float64
	for _, model := range []string{"tiny-llava", "tiny-llava-f16"} {
		ck, err := llava.Open(testutil.Testdata(model), llava.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer ck.Close()
		m, err := llava.Load(ck, b, llava.LoadOptions{Parts: ck.VisionParts()})
		if err != nil {
			t.Fatal(err)
		}
		px := testutil.F32(t, testutil.Ref(t, "ref", "images.safetensors"), "square_336.pixel_values.pad")
		tr, err := New(m, init, [][]float32{px}, nil, Options{Steps: 1, Batch: 1, LR: 1e-3, Beta: 0.25, EMADecay: 0.99})
		if err != nil {
			t.Fatal(err)
		}
		g, _, err := tr.lossAndGrads(tr.train)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, tr.flatGrads(g))
	}
	for i := range gs[0] {
		var dot, n0, n1 float64
		for j := range gs[0][i] {
			dot += gs[0][i][j] * gs[1][i][j]
			n0 += gs[0][i][j] * gs[0][i][j]
			n1 += gs[1][i][j] * gs[1][i][j]
		}
		if cos := dot / math.Sqrt(n0*n1); !(cos > 0.99) {
			t.Errorf("parameter %d: F16 and F32 gradients have cosine %.5f", i, cos)
		}
	}
}

// interrupted runs tr to its last step: resumed from ckpt, or saving ckpt
// after step at.
func interrupted(t *testing.T, tr *Trainer, ckpt string, at int, resume bool) {
	t.Helper()
	if resume {
		if err := tr.Resume(ckpt); err != nil {
			t.Fatal(err)
		}
	}
	for tr.Steps() < tr.opt.Steps {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
		if tr.Steps() == at && !resume {
			if err := tr.SaveCheckpoint(ckpt); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBenchStep: the benchmark's step runs the distillation pass of one
// image on a tower without a checkpoint around it, and refuses a tower that
// does not reach the target.
func TestBenchStep(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	m, px := tiny(t, b)
	init := moduleData(t, b, testutil.Testdata("vq", "block0_ln1", "alignedvq.safetensors"))
	z, _ := m.SiteFeatures(px[0], vit.Split{Block: 0, Site: vit.SiteLN1})
	fs, err := m.Features(px[0], false)
	if err != nil {
		t.Fatal(err)
	}
	step, err := BenchStep(b, m.Vision, vit.HiddenState(3), init, z, fs.Selected.F32())
	if err != nil {
		t.Fatal(err)
	}
	if err := step(); err != nil {
		t.Fatal(err)
	}
	if _, err := BenchStep(b, m.Vision, vit.HiddenState(4), init, z, fs.Selected.F32()); err == nil {
		t.Error("a target past the loaded tower was accepted")
	}
}
