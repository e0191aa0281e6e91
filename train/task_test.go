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

// taskTrainer is a task-objective trainer on the tiny model from the fixed
// state of testdata/train and its adapter, on the first image with conv.
func taskTrainer(t *testing.T, b *cpu.CPU, conv Conversation, opt Options) *Trainer {
	t.Helper()
	ck, err := llava.Open(testutil.Testdata("tiny-llava"), llava.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	m, err := llava.Load(ck, b, llava.LoadOptions{Parts: ck.AllParts()})
	if err != nil {
		t.Fatal(err)
	}
	px := testutil.F32(t, testutil.Ref(t, "ref", "images.safetensors"), "square_336.pixel_values.pad")
	init, r, alpha, err := ReadAdapter(testutil.Testdata("train", "task_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := llava.LookupTemplate(llava.DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	opt.Task = &Task{Rank: r, Alpha: alpha, Targets: loraTargets, Init: init, Template: tmpl, Train: []Conversation{conv}}
	state := moduleData(t, b, testutil.Testdata("train", "state.safetensors"))
	tr, err := New(m, state, [][]float32{px}, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func oneConversation(q, a string) Conversation {
	var c Conversation
	c.Image = "square_336.png"
	c.Turns = append(c.Turns, struct {
		From  string `json:"from"`
		Value string `json:"value"`
	}{"human", "<image>\n" + q}, struct {
		From  string `json:"from"`
		Value string `json:"value"`
	}{"gpt", a})
	return c
}

// TestTaskGradientsMatchAutograd: one answer's cross-entropy through the
// decoder with a LoRA on every Linear, from the fixed state and adapter of
// testdata/train, against float64 torch autograd (make_grads.py): the loss
// terms within 1e-5 relative, every DLP and LoRA gradient within
// ‖Δ‖ ≤ 1e-4·‖g‖ + 1e-7.
func TestTaskGradientsMatchAutograd(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	tr := taskTrainer(t, b, oneConversation("What is it?", "A square."), Options{Steps: 1, Batch: 1, LR: 1e-3, Beta: 0.25, EMADecay: 0.99})
	ref := testutil.Ref(t, "train", "task_grads.safetensors")
	s := taskSample{zin: tr.train[0].zin, ids: testutil.Tensor(t, ref, "ids").I32(), prompt: int(testutil.Tensor(t, ref, "prompt").I32()[0])}
	g, _, err := tr.taskLossAndGrads([]taskSample{s})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		name string
		got  float64
	}{{"ce", g.distill}, {"commit", g.comm}, {"loss", tr.loss(g)}} {
		want := float64(testutil.F32(t, ref, l.name)[0])
		if math.Abs(l.got-want) > 1e-5*math.Abs(want) {
			t.Errorf("%s = %.9g, autograd %.9g", l.name, l.got, want)
		}
	}
	for i, gv := range tr.flatGrads(g) {
		name := tr.params[i].name
		want := testutil.F32(t, ref, "grad."+name)
		diff, norm := relNorm(gv, want)
		if i < 6 || i%14 == 6 {
			t.Logf("%s: ‖Δ‖ %.3g, ‖g‖ %.4g", name, diff, norm)
		}
		if !(diff <= 1e-4*norm+1e-7) {
			t.Errorf("%s: ‖g − g_torch‖ = %.3g > 1e-4·‖g_torch‖ + 1e-7 (‖g_torch‖ = %.4g)", name, diff, norm)
		}
	}
}

// TestTaskResumeGivesTheSameBytes: a task run interrupted after 1 of 3
// steps and resumed on another thread count writes the module and the
// adapter of the uninterrupted run, byte for byte; the held-out answers'
// cross-entropy falls.
func TestTaskResumeGivesTheSameBytes(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "run.ckpt")
	conv := oneConversation("What shape is this?", "A square.")
	opt := Options{Steps: 3, Batch: 1, LR: 3e-3, Warmup: 1, WeightDecay: 0.01, Clip: 1, Beta: 0.25, EMADecay: 0.9, Seed: 5}
	run := func(threads int, resume bool, name string) (module, adapter []byte, before, after float64) {
		b := cpu.New(threads)
		defer b.Close()
		tr := taskTrainer(t, b, conv, opt)
		tr.heldT = tr.tasks // measure on the training answer: a held-out set of one is the same here
		e0, err := tr.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		interrupted(t, tr, ckpt, 1, resume)
		e1, err := tr.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		px := testutil.F32(t, testutil.Ref(t, "ref", "images.safetensors"), "square_336.pixel_values.pad")
		md, err := tr.Module([][]float32{px})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name)
		if err := vq.WriteModule(out+".safetensors", md); err != nil {
			t.Fatal(err)
		}
		if err := tr.SaveAdapter(out); err != nil {
			t.Fatal(err)
		}
		module, _ = os.ReadFile(out + ".safetensors")
		adapter, _ = os.ReadFile(filepath.Join(out, "adapter_model.safetensors"))
		return module, adapter, e0.TaskLoss, e1.TaskLoss
	}
	ma, aa, before, after := run(1, false, "a")
	mb, ab, _, _ := run(3, true, "b")
	if len(ma) == 0 || !bytes.Equal(ma, mb) || len(aa) == 0 || !bytes.Equal(aa, ab) {
		t.Error("the resumed 3-thread run wrote another module or adapter than the 1-thread run")
	}
	if !(after < before) {
		t.Errorf("the answer's cross-entropy went %.6g → %.6g", before, after)
	}
}

// TestTaskFiniteDifferences checks the LoRA gradients against central
// differences of the answer's cross-entropy through the whole model (the
// decoder, fp32): the lora_A and lora_B coordinates of largest gradient of
// the first updated Linear (layer 0's q_proj) and the last (layer 1's
// down_proj). The bound is that of
// TestFiniteDifferences, 1e-3·|g| + 1e-5, with h = 1e-2.
func TestTaskFiniteDifferences(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	tr := taskTrainer(t, b, oneConversation("What is it?", "A square."), Options{Steps: 1, Batch: 1, LR: 1e-3, Beta: 0.25, EMADecay: 0.99})
	ref := testutil.Ref(t, "train", "task_grads.safetensors")
	s := taskSample{zin: tr.train[0].zin, ids: testutil.Tensor(t, ref, "ids").I32(), prompt: int(testutil.Tensor(t, ref, "prompt").I32()[0])}
	g, _, err := tr.taskLossAndGrads([]taskSample{s})
	if err != nil {
		t.Fatal(err)
	}
	gs := tr.flatGrads(g)
	ls := tr.dec.loras
	for _, li := range []int{0, len(ls) - 1} {
		l := ls[li]
		for k, p := range []*param{l.pa, l.pb} {
			pi := 6 + 2*li + k // after the six DLP tensors
			gv := gs[pi]
			at := 0
			for i := range gv {
				if math.Abs(gv[i]) > math.Abs(gv[at]) {
					at = i
				}
			}
			const h = 1e-2
			v0 := p.value[at]
			ce := func(v float32) float64 {
				p.value[at] = v
				tr.sync()
				g, _, err := tr.taskLossAndGrads([]taskSample{s})
				if err != nil {
					t.Fatal(err)
				}
				return g.distill
			}
			fd := (ce(v0+h) - ce(v0-h)) / (2 * h)
			ce(v0)
			t.Logf("%s[%d]: gradient %.7g, central difference %.7g", p.name, at, gv[at], fd)
			if math.Abs(fd-gv[at]) > 1e-3*math.Abs(gv[at])+1e-5 {
				t.Errorf("%s[%d]: gradient %.7g, central difference %.7g", p.name, at, gv[at], fd)
			}
		}
	}
}

// TestTaskOnGroupedQueryBF16: the task objective on the fixture with
// grouped-query attention (4 query heads on 2 kv heads) and BF16 weights:
// the causal GQA backward and the BF16 weight reads run, two steps lower the
// answer's cross-entropy, and the adapter written loads as a LoRA.
func TestTaskOnGroupedQueryBF16(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	dir := testutil.Testdata("gqa", "model")
	ck, err := llava.Open(dir, llava.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, err := llava.Load(ck, b, llava.LoadOptions{Parts: ck.AllParts()})
	if err != nil {
		t.Fatal(err)
	}
	px := testutil.F32(t, testutil.Ref(t, "ref", "images.safetensors"), "square_336.pixel_values.pad")
	cal, err := m.Calibrate([][]float32{px}, llava.CalibrateOptions{Split: vit.Split{Block: 0, Site: vit.SiteLN1}, KMeans: vq.KMeansOptions{K: 8, Iters: 2, Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := llava.LookupTemplate(llava.DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	conv := oneConversation("What shape is this?", "A square.")
	opt := Options{Steps: 2, Batch: 1, LR: 1e-2, Beta: 0.25, EMADecay: 0.99, Clip: 1,
		Task: &Task{Rank: 2, Alpha: 4, Targets: loraTargets, Template: tmpl, Train: []Conversation{conv}, HeldOut: []Conversation{conv}}}
	tr, err := New(m, cal.Module, [][]float32{px}, [][]float32{px}, opt)
	if err != nil {
		t.Fatal(err)
	}
	e0, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	for tr.Steps() < opt.Steps {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
	}
	e1, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if !(e1.TaskLoss < e0.TaskLoss) {
		t.Errorf("cross-entropy %.6g → %.6g", e0.TaskLoss, e1.TaskLoss)
	}
	out := t.TempDir()
	if err := tr.SaveAdapter(out); err != nil {
		t.Fatal(err)
	}
	if _, err := llava.Load(ck, b, llava.LoadOptions{Parts: ck.AllParts(), LoRA: out}); err != nil {
		t.Fatalf("the adapter written does not load: %v", err)
	}
}
