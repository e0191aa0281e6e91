package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/vq"
)

// relNorm is ‖got − want‖ and ‖want‖.
func relNorm(got []float64, want []float32) (diff, norm float64) {
	for i, w := range want {
		d := got[i] - float64(w)
		diff += d * d
		norm += float64(w) * float64(w)
	}
	return math.Sqrt(diff), math.Sqrt(norm)
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// fixedStep is one step's forward and backward from the fixed state of
// testdata/train on the first n fixture images; edit, when not nil, may
// change the state first.
func fixedStep(t *testing.T, b *cpu.CPU, n int, opt Options, edit func(*vq.ModuleData)) (*Trainer, *grads, []*qtape) {
	t.Helper()
	m, px := tiny(t, b)
	state := moduleData(t, b, testutil.Testdata("train", "state.safetensors"))
	if edit != nil {
		edit(state)
	}
	tr, err := New(m, state, px[:n], nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	g, qs, err := tr.lossAndGrads(tr.train)
	if err != nil {
		t.Fatal(err)
	}
	return tr, g, qs
}

// TestGradientsMatchAutograd: one step from the fixed state of
// testdata/train (make_grads.py, float64 torch autograd) on two images.
// Every parameter's gradient within ‖Δ‖ ≤ 1e-4·‖g‖ + 1e-7, the loss within
// 1e-5 relative, the codes identical (the state has no near tie), for both
// targets; the codebook's gradient is that of --codebook-update grad.
func TestGradientsMatchAutograd(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	ref := testutil.Ref(t, "train", "grads.safetensors")
	refIdx := testutil.Tensor(t, ref, "indices").I32()
	for _, target := range []string{"features", "projector"} {
		t.Run(target, func(t *testing.T) {
			opt := Options{Projector: target == "projector", Steps: 1, Batch: 2, LR: 1e-3, Beta: 0.25, CodebookGrad: true}
			tr, g, qs := fixedStep(t, b, 2, opt, nil)
			for i, q := range qs {
				for tok, j := range q.idx {
					if want := refIdx[i*len(q.idx)+tok]; j != want {
						t.Fatalf("image %d token %d: code %d, autograd's %d", i, tok, j, want)
					}
				}
			}
			for _, l := range []struct {
				name string
				got  float64
			}{{"loss_grad", tr.loss(g)}, {"loss_ema", g.distill + opt.Beta*g.comm}, {"distill", g.distill}, {"commit", g.comm}} {
				want := float64(testutil.F32(t, ref, target+"."+l.name)[0])
				if math.Abs(l.got-want) > 1e-5*math.Abs(want) {
					t.Errorf("%s = %.9g, autograd %.9g", l.name, l.got, want)
				}
			}
			for i, gv := range tr.flatGrads(g) {
				name := tr.params[i].name
				want := testutil.F32(t, ref, target+".grad."+name)
				diff, norm := relNorm(gv, want)
				t.Logf("%s: ‖Δ‖ %.3g, ‖g‖ %.4g", name, diff, norm)
				if !(diff <= 1e-4*norm+1e-7) {
					t.Errorf("%s: ‖g − g_torch‖ = %.3g > 1e-4·‖g_torch‖ + 1e-7 (‖g_torch‖ = %.4g)", name, diff, norm)
				}
			}
		})
	}
}

// TestStraightThroughAndEMA: the quantizer's forward value is the code
// itself, bit for bit, and one EMA update over the step's tokens gives
// autograd's float64 codebook and counts to fp32 rounding.
func TestStraightThroughAndEMA(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	ref := testutil.Ref(t, "train", "grads.safetensors")
	tr, _, qs := fixedStep(t, b, 2, Options{Steps: 1, Batch: 2, LR: 1e-3, Beta: 0.25, EMADecay: 0.99}, nil)
	state := tr.md
	d := state.D
	var us [][]float32
	var idx [][]int32
	for _, q := range qs {
		zq := make([]float32, len(q.uHost))
		b.Read(zq, q.zq)
		for tok, j := range q.idx {
			for c := range d {
				if zq[tok*d+c] != state.Codebook[int(j)*d+c] {
					t.Fatalf("token %d: Ẑ_q[%d] = %v, not its code's %v", tok, c, zq[tok*d+c], state.Codebook[int(j)*d+c])
				}
			}
		}
		us, idx = append(us, q.uHost), append(idx, q.idx)
	}
	e := newEMA(state.Codebook, state.K, d, 2*len(qs[0].idx), 0.99)
	cb := make([]float32, len(state.Codebook))
	e.update(us, idx, rand.New(rand.NewPCG(0, 0)), cb)
	if e.dead != 0 {
		t.Fatalf("%d entries re-seeded after one step from the initial counts", e.dead)
	}
	for _, c := range []struct {
		name string
		got  []float32
	}{{"ema.codebook", cb}, {"ema.n", e.n}} {
		want := testutil.F32(t, ref, c.name)
		diff, norm := relNorm(f64s(c.got), want)
		if !(diff <= 1e-6*norm) {
			t.Errorf("%s: ‖Δ‖ = %.3g, ‖ref‖ = %.4g", c.name, diff, norm)
		}
	}
}

// TestFiniteDifferences checks the gradient of the distillation term with
// respect to DLP_out's parameters — the ones the forward value depends on
// smoothly (DLP_in and the codebook reach it only through the argmin and
// the straight-through estimator) — against central differences through the
// whole student, at the coordinates of largest gradient. The forward runs in
// fp32: the loss carries a rounding noise of about 1e-7 of its value, so with
// h = 1e-2 a difference is good to a few 1e-6; the bound is 1e-3·|g| + 1e-5.
// It runs from every kind of split site (the fixed state moved there), so
// each of the student's starts — the affine residual at ln1 and ln2, the
// stream itself at attn and ffn — is checked.
func TestFiniteDifferences(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	for _, sp := range []struct {
		block int
		site  string
	}{{0, "ln1"}, {1, "attn"}, {1, "ln2"}, {0, "ffn"}} {
		t.Run(fmt.Sprintf("block%d_%s", sp.block, sp.site), func(t *testing.T) {
			checkFiniteDifferences(t, b, func(md *vq.ModuleData) {
				md.Block, md.Site = sp.block, sp.site
				if !vq.SiteIsNorm(sp.site) {
					md.Scale, md.Shift = nil, nil
				}
			})
		})
	}
}

func checkFiniteDifferences(t *testing.T, b *cpu.CPU, edit func(*vq.ModuleData)) {
	tr, g, _ := fixedStep(t, b, 1, Options{Steps: 1, Batch: 1, LR: 1e-3, Beta: 0.25, EMADecay: 0.99}, edit)
	gs := tr.flatGrads(g)
	argmax := func(v []float64) int {
		best := 0
		for i, x := range v {
			if math.Abs(x) > math.Abs(v[best]) {
				best = i
			}
		}
		return best
	}
	out := tr.md.DLPOut
	gamma := []float32{out.Gamma}
	for _, c := range []struct {
		name  string
		value []float32
		i     int
		grad  float64
	}{
		{"dlp_out.gamma", gamma, 0, gs[5][0]},
		{"dlp_out.weight", out.Weight, argmax(gs[3]), gs[3][argmax(gs[3])]},
		{"dlp_out.bias", out.Bias, argmax(gs[4]), gs[4][argmax(gs[4])]},
	} {
		const h = 1e-2
		v0 := c.value[c.i]
		distill := func(v float32) float64 {
			c.value[c.i] = v
			out.Gamma = gamma[0]
			tr.mod.SetDLP(b, tr.md.DLPIn, out)
			g, _, err := tr.lossAndGrads(tr.train)
			if err != nil {
				t.Fatal(err)
			}
			return g.distill
		}
		fd := (distill(v0+h) - distill(v0-h)) / (2 * h)
		distill(v0)
		t.Logf("%s[%d]: gradient %.7g, central difference %.7g", c.name, c.i, c.grad, fd)
		if math.Abs(fd-c.grad) > 1e-3*math.Abs(c.grad)+1e-5 {
			t.Errorf("%s[%d]: gradient %.7g, central difference %.7g", c.name, c.i, c.grad, fd)
		}
	}
}

// TestDeadEntriesReseeded: an entry no token picks decays below 1% of the
// mean count and is re-seeded from a token of the batch, its count set to
// the mean; the others keep the EMA formula.
func TestDeadEntriesReseeded(t *testing.T) {
	const k, d = 3, 2
	e := newEMA([]float32{0, 0, 10, 10, -10, -10}, k, d, 4, 0.5)
	u := [][]float32{{1, 1, 2, 2, 9, 9, 11, 11}}
	idx := [][]int32{{0, 0, 1, 1}} // entry 2 is never picked
	cb := make([]float32, k*d)
	rng := rand.New(rand.NewPCG(1, 2))
	steps := 0
	for e.dead == 0 {
		e.update(u, idx, rng, cb)
		if steps++; steps > 20 {
			t.Fatal("entry 2 was never re-seeded")
		}
	}
	// n_2 halves each step from 4/3 while the mean stays 4/3: below 1% after 7 steps.
	if steps != 7 || e.dead != 1 {
		t.Fatalf("re-seeded %d entries after %d steps, want 1 after 7", e.dead, steps)
	}
	// the mean before the re-seeding: (n_0 + n_1 + n_2,old)/3, n_2,old = (4/3)/2⁷
	if want := (float64(e.n[0]) + float64(e.n[1]) + 4.0/3/128) / 3; math.Abs(float64(e.n[2])-want) > 1e-6 {
		t.Errorf("re-seeded count %v, want the mean count %v", e.n[2], want)
	}
	found := false
	for tok := range 4 {
		if math.Abs(float64(cb[4]-u[0][tok*d])) < 1e-3 && math.Abs(float64(cb[5]-u[0][tok*d+1])) < 1e-3 {
			found = true
		}
	}
	if !found {
		t.Errorf("re-seeded entry %v is none of the batch's tokens", cb[4:6])
	}
}
