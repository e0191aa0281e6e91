package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// Options configure a training run (docs/alignedvq.md, "Training").
type Options struct {
	Projector    bool    // distil the projector output instead of the selected features
	Steps        int     // optimiser steps
	Batch        int     // images per step
	LR           float64 // peak learning rate of AdamW
	Warmup       int     // steps of linear warm-up
	WeightDecay  float64 // AdamW's decoupled decay, on the DLP weights
	Clip         float64 // global gradient-norm limit; ≤ 0: none
	Beta         float64 // commitment weight β
	EMADecay     float64 // codebook EMA decay γ
	CodebookGrad bool    // train the codebook by AdamW on ‖sg(U) − e‖² instead of the EMA
	Seed         uint64
	Task         *Task // the task objective instead of distillation; nil for distillation
}

// Check refuses settings no run can use, naming the flag.
func (o Options) Check() error {
	switch {
	case o.Steps < 1:
		return fmt.Errorf("train: --steps %d: want at least 1", o.Steps)
	case o.Batch < 1:
		return fmt.Errorf("train: --batch %d: want at least 1", o.Batch)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return fmt.Errorf("train: --lr %v: want a positive number", o.LR)
	case o.Warmup < 0 || o.Warmup > o.Steps:
		return fmt.Errorf("train: --warmup %d: want 0 … --steps (%d)", o.Warmup, o.Steps)
	case !(o.WeightDecay >= 0) || o.WeightDecay*o.LR >= 1:
		return fmt.Errorf("train: --weight-decay %v: want ≥ 0 and below 1/lr", o.WeightDecay)
	case !(o.Beta >= 0) || math.IsInf(o.Beta, 0):
		return fmt.Errorf("train: --beta %v: want a finite number ≥ 0", o.Beta)
	case !o.CodebookGrad && !(o.EMADecay > 0 && o.EMADecay < 1):
		return fmt.Errorf("train: --ema-decay %v: want a number in (0, 1)", o.EMADecay)
	}
	return nil
}

// sample is one image as training sees it: the site features the quantizer
// reads and the unquantised model's output the student is distilled to
// (computed once, before the first step).
type sample struct {
	zin    []float32 // [T, D]
	target []float32 // [T', D] selected features, or [T', H] projected
}

// Trainer holds a run's state: the module being trained (loaded on the
// backend, its cached norms and fingerprint kept current), the optimiser's
// and the EMA's state, and the cached samples.
type Trainer struct {
	opt   Options
	b     backend.Grad
	model *llava.Model
	split vit.Split
	st    *student
	mod   *vq.Module
	md    *vq.ModuleData // the module's values on the host, updated in place
	init  *vq.ModuleData // the module the run started from
	id    string         // the run's identity in checkpoints
	train []sample
	held  []sample
	dec   *decoder     // the task objective's language model
	tasks []taskSample // the task objective's training answers
	heldT []taskSample

	params   []*param // dlp_in.weight, .bias, .gamma, dlp_out.…, [codebook]
	ema      *ema     // nil with CodebookGrad
	step     int      // steps done
	reseeded int      // EMA entries re-seeded so far
}

// Step reports one optimiser step.
type Step struct {
	Step, Steps int
	Loss        float64 // L_obj + β·L_c (+ L_e)
	Distill     float64 // L_obj: the distillation MSE
	Commit      float64 // L_c: mean_t ‖U_t − e_{i_t}‖²
	LR          float64
	GradNorm    float64 // before clipping
	Dead        int     // EMA entries re-seeded at this step
}

// New prepares a run: it caches the site features and the teacher's output
// for every image (pixel values as the checkpoint preprocesses them),
// completes the module with an identity DLP when it has none (γ = 0, the
// Linears drawn as PyTorch's nn.Linear default from the seed), and loads it.
// The model must have the tower from the pixels to the feature layer, and
// the projector for the projector target.
func New(m *llava.Model, init *vq.ModuleData, images, heldOut [][]float32, opt Options) (*Trainer, error) {
	if err := opt.Check(); err != nil {
		return nil, err
	}
	b, ok := m.B.(backend.Grad)
	if !ok {
		return nil, fmt.Errorf("train: backend %s has no backward ops", m.B.Name())
	}
	if len(images) == 0 {
		return nil, errors.New("train: no training images")
	}
	ck := m.Checkpoint
	l, err := ck.Vision.ResolveLayer(ck.FeatureLayer)
	if err != nil {
		return nil, err
	}
	end := vit.HiddenState(l)
	if m.Vision == nil || m.Vision.From != vit.Pixels || m.Vision.To.Before(end) {
		return nil, errors.New("train: the model needs the vision tower from the pixels to the feature layer")
	}
	if opt.Projector && m.Projector == nil {
		return nil, errors.New("train: the projector target needs the projector loaded")
	}
	md := cloneModule(init)
	if md.DLPIn == nil {
		rng := rand.New(rand.NewPCG(opt.Seed, 0x646c70)) // "dlp"
		md.DLPIn, md.DLPOut = linearInit(rng, md.D), linearInit(rng, md.D)
	}
	mod, err := vq.NewModule(md, m.B)
	if err != nil {
		return nil, err
	}
	if err := mod.CheckModel(ck.Vision.HiddenSize, ck.Vision.NumHiddenLayers); err != nil {
		return nil, err
	}
	sp, err := llava.SplitPoint(mod)
	if err != nil {
		return nil, err
	}
	if !sp.Before(end) {
		return nil, fmt.Errorf("train: split %v is not before the feature layer %d", sp, ck.FeatureLayer)
	}
	t := &Trainer{opt: opt, b: b, model: m, split: sp, mod: mod, md: md, init: cloneModule(md)}
	t.st = &student{b: b, vision: m.Vision, from: sp, to: end, norm: sp.Site.IsNorm(), scale: mod.Scale, shift: mod.Shift,
		dropCLS: ck.DropCLS, t: ck.Vision.Tokens(), d: md.D}
	if opt.Projector {
		t.st.projector = m.Projector
	}
	if opt.Task != nil {
		return t, t.newTask(images, heldOut)
	}
	for _, set := range []struct {
		px  [][]float32
		out *[]sample
	}{{images, &t.train}, {heldOut, &t.held}} {
		for _, px := range set.px {
			s, err := t.sample(px)
			if err != nil {
				return nil, err
			}
			*set.out = append(*set.out, s)
		}
	}
	t.initParams()
	return t, nil
}

// initParams lists the trainable tensors (the LoRA's last) and sets up the
// EMA and the run's identity.
func (t *Trainer) initParams() {
	md, opt := t.md, t.opt
	t.params = []*param{
		newParam("dlp_in.weight", md.DLPIn.Weight, true), newParam("dlp_in.bias", md.DLPIn.Bias, false),
		newParam("dlp_in.gamma", []float32{md.DLPIn.Gamma}, false),
		newParam("dlp_out.weight", md.DLPOut.Weight, true), newParam("dlp_out.bias", md.DLPOut.Bias, false),
		newParam("dlp_out.gamma", []float32{md.DLPOut.Gamma}, false),
	}
	if opt.CodebookGrad {
		t.params = append(t.params, newParam("codebook", md.Codebook, false))
	} else {
		t.ema = newEMA(md.Codebook, md.K, md.D, opt.Batch*t.st.t, opt.EMADecay)
	}
	if t.dec != nil {
		for _, l := range t.dec.loras {
			t.params = append(t.params, l.pa, l.pb)
		}
	}
	t.id = t.runID()
}

// sample computes one image's site features and teacher output.
func (t *Trainer) sample(px []float32) (sample, error) {
	z, _ := t.model.SiteFeatures(px, t.split)
	fs, err := t.model.Features(px, false)
	if err != nil {
		return sample{}, err
	}
	s := sample{zin: z, target: fs.Selected.F32()}
	if t.opt.Projector {
		s.target = fs.Projected.F32()
	}
	return s, nil
}

// linearInit draws a Linear's weight [D, D] and bias [D] from U(−1/√D, 1/√D),
// PyTorch's nn.Linear default, with the gate γ = 0.
func linearInit(rng *rand.Rand, d int) *vq.DLPData {
	bound := 1 / math.Sqrt(float64(d))
	draw := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*rng.Float64() - 1) * bound)
		}
		return v
	}
	return &vq.DLPData{Weight: draw(d * d), Bias: draw(d)}
}

func cloneModule(md *vq.ModuleData) *vq.ModuleData {
	c := *md
	c.Codebook = append([]float32(nil), md.Codebook...)
	c.Scale = append([]float32(nil), md.Scale...)
	c.Shift = append([]float32(nil), md.Shift...)
	if md.Scale == nil {
		c.Scale, c.Shift = nil, nil
	}
	for _, p := range []**vq.DLPData{&c.DLPIn, &c.DLPOut} {
		if *p != nil {
			d := **p
			d.Weight = append([]float32(nil), d.Weight...)
			d.Bias = append([]float32(nil), d.Bias...)
			*p = &d
		}
	}
	return &c
}

// Steps is the number of steps done so far.
func (t *Trainer) Steps() int { return t.step }

// batch is the images of step s (from 0): the training images in an order
// shuffled per epoch from the seed, cut into batches end to end.
func (t *Trainer) batch(s int) []int {
	n, out := len(t.train), make([]int, 0, t.opt.Batch)
	if t.dec != nil {
		n = len(t.tasks)
	}
	for i := s * t.opt.Batch; i < (s+1)*t.opt.Batch; i++ {
		epoch := i / n
		perm := rand.New(rand.NewPCG(t.opt.Seed, uint64(epoch)<<1|1)).Perm(n)
		out = append(out, perm[i%n])
	}
	return out
}

// lossAndGrads runs the forward and backward passes over samples and
// returns the summed gradients and the quantizer passes.
func (t *Trainer) lossAndGrads(samples []sample) (*grads, []*qtape, error) {
	g := newGrads(t.b, t.md.K, t.md.D, t.opt.CodebookGrad)
	var qs []*qtape
	for _, s := range samples {
		q, err := t.st.accumulate(t.mod, s, g, t.opt.Beta, len(samples))
		if err != nil {
			return nil, nil, err
		}
		qs = append(qs, q)
	}
	return g, qs, nil
}

// accumulate runs one image of a batch of n through the quantizer and the
// student, forward and backward, and adds its loss terms and gradients to g.
func (st *student) accumulate(mod *vq.Module, s sample, g *grads, beta float64, n int) (*qtape, error) {
	b := st.b
	nb := float64(n)
	scale := 1 / (nb * float64(st.t))
	q, err := quantize(b, mod, s.zin)
	if err != nil {
		return nil, err
	}
	tp := st.forward(q.zout)
	y := make([]float32, len(s.target))
	b.Read(y, tp.out)
	// L_obj = mean over images of mean((y − target)²): dy = 2(y − target)/(numel·B)
	var se float64
	for i, v := range y {
		e := float64(v) - float64(s.target[i])
		se += e * e
		y[i] = float32(2 * e / (float64(len(y)) * nb))
	}
	g.distill += se / float64(len(y)) / nb
	g.comm += q.commit * scale
	dy := b.New(tp.out.Shape()...)
	b.Write(dy, y)
	q.backward(b, mod, g, st.backward(tp, dy), beta, scale)
	return q, nil
}

// loss is the objective with these loss terms.
func (t *Trainer) loss(g *grads) float64 {
	l := g.distill + t.opt.Beta*g.comm
	if t.opt.CodebookGrad {
		l += g.comm // L_e has L_c's value
	}
	return l
}

// Step runs one optimiser step.
func (t *Trainer) Step() (Step, error) {
	if t.step >= t.opt.Steps {
		return Step{}, errors.New("train: the run is complete")
	}
	var g *grads
	var qs []*qtape
	var err error
	if t.dec != nil {
		var samples []taskSample
		for _, i := range t.batch(t.step) {
			samples = append(samples, t.tasks[i])
		}
		g, qs, err = t.taskLossAndGrads(samples)
	} else {
		var samples []sample
		for _, i := range t.batch(t.step) {
			samples = append(samples, t.train[i])
		}
		g, qs, err = t.lossAndGrads(samples)
	}
	if err != nil {
		return Step{}, err
	}
	t.step++
	info := Step{Step: t.step, Steps: t.opt.Steps, Loss: t.loss(g), Distill: g.distill, Commit: g.comm,
		LR: learningRate(t.opt.LR, t.step, t.opt.Warmup, t.opt.Steps)}
	if math.IsNaN(info.Loss) || math.IsInf(info.Loss, 0) {
		return info, fmt.Errorf("train: step %d: the loss is %v", t.step, info.Loss)
	}
	gs := t.flatGrads(g)
	info.GradNorm = clipNorm(gs, t.opt.Clip)
	for i, p := range t.params {
		p.step(gs[i], info.LR, t.opt.WeightDecay, t.step)
	}
	if t.ema != nil {
		us, idx := make([][]float32, len(qs)), make([][]int32, len(qs))
		for i, q := range qs {
			us[i], idx[i] = q.uHost, q.idx
		}
		t.ema.update(us, idx, rand.New(rand.NewPCG(t.opt.Seed, uint64(t.step)<<1)), t.md.Codebook)
		info.Dead = t.ema.dead
		t.reseeded += t.ema.dead
	}
	t.sync()
	return info, nil
}

// sync writes the host values of the parameters to the module on the
// backend (its gates, norms and fingerprint recomputed).
func (t *Trainer) sync() {
	t.md.DLPIn.Gamma, t.md.DLPOut.Gamma = t.params[2].value[0], t.params[5].value[0]
	t.mod.SetDLP(t.b, t.md.DLPIn, t.md.DLPOut)
	t.mod.SetCodebook(t.b, t.md.Codebook)
	if t.dec != nil {
		for _, l := range t.dec.loras {
			t.b.Write(l.a, l.pa.value)
			t.b.Write(l.b, l.pb.value)
		}
	}
}

// Current is a copy of the module as it stands.
func (t *Trainer) Current() *vq.ModuleData { return cloneModule(t.md) }

// Reseeded is the number of EMA entries re-seeded so far.
func (t *Trainer) Reseeded() int { return t.reseeded }

// flatGrads lists the gradients in t.params's order, in float64.
func (t *Trainer) flatGrads(g *grads) [][]float64 {
	d := t.md.D
	read := func(x backend.Tensor) []float64 {
		h := make([]float32, d*d)
		t.b.Read(h, x)
		out := make([]float64, len(h))
		for i, v := range h {
			out[i] = float64(v)
		}
		return out
	}
	gs := [][]float64{read(g.wIn), g.bIn, {g.gIn}, read(g.wOut), g.bOut, {g.gOut}}
	if g.codebook != nil {
		gs = append(gs, g.codebook)
	}
	if t.dec != nil {
		for _, l := range t.dec.loras {
			gs = append(gs, readF64(t.b, l.ga), readF64(t.b, l.gb))
		}
	}
	return gs
}

// Eval is the held-out distillation error of the module as it stands.
type Eval struct {
	Step     int
	MSE      float64 // mean over images of the mean squared error to the teacher (distillation)
	Cosine   float64 // mean over images of the cosine to the teacher (distillation)
	TaskLoss float64 // mean over held-out answers of their cross-entropy (the task objective)
}

// Evaluate measures the module on the held-out images (no update): the
// distillation error, or with the task objective the answers'
// cross-entropy.
func (t *Trainer) Evaluate() (Eval, error) {
	e := Eval{Step: t.step}
	if t.dec != nil {
		for _, s := range t.heldT {
			ce, err := t.taskLoss(s)
			if err != nil {
				return e, err
			}
			e.TaskLoss += ce / float64(len(t.heldT))
		}
		return e, nil
	}
	for _, s := range t.held {
		q, err := quantize(t.b, t.mod, s.zin)
		if err != nil {
			return e, err
		}
		tp := t.st.forward(q.zout)
		y := make([]float32, len(s.target))
		t.b.Read(y, tp.out)
		var se float64
		for i, v := range y {
			d := float64(v) - float64(s.target[i])
			se += d * d
		}
		e.MSE += se / float64(len(y))
		e.Cosine += llava.Cosine(y, s.target)
	}
	if n := float64(len(t.held)); n > 0 {
		e.MSE /= n
		e.Cosine /= n
	}
	return e, nil
}

// HeldOut is the number of held-out images (answers with the task objective).
func (t *Trainer) HeldOut() int { return len(t.held) + len(t.heldT) }

// Module returns the trained module, its residual map (ln sites) refitted
// by least squares on the training images with the trained codes and
// DLP_out, as calibration fits it, and puts the refitted map in place, so
// that Evaluate measures the module as written; images are the training
// images' pixel values again (the residual stream at the split is
// recomputed, not kept).
func (t *Trainer) Module(images [][]float32) (*vq.ModuleData, error) {
	if t.split.Site.IsNorm() {
		d := t.md.D
		var xs, zs []float32
		for _, px := range images {
			z, x := t.model.SiteFeatures(px, t.split)
			zt := t.b.New(len(z)/d, d)
			t.b.Write(zt, z)
			q, err := t.mod.Quantize(t.b, zt)
			if err != nil {
				return nil, err
			}
			zout, err := t.mod.Dequantize(t.b, q.Indices)
			if err != nil {
				return nil, err
			}
			h := make([]float32, len(z))
			t.b.Read(h, zout)
			xs, zs = append(xs, x...), append(zs, h...)
		}
		t.md.Scale, t.md.Shift, _ = vq.FitResidual(xs, zs, len(zs)/d, d)
		t.b.Write(t.mod.Scale, t.md.Scale)
		t.b.Write(t.mod.Shift, t.md.Shift)
	}
	return cloneModule(t.md), nil
}
