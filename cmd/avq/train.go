package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/train"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

func cmdTrain(c *cli, args []string) error {
	fs := c.flags("train", "--model DIR --images DIR [--init FILE | --codebook K --block B --site S] [--objective task --data FILE --lora-out DIR] [--steps N | --epochs E] --out FILE")
	model := fs.String("model", "", "checkpoint `folder`")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	images := fs.String("images", "", "`folder` of training images")
	holdOut := fs.Int("held-out", -1, "images (conversations with the task objective) kept out of training to measure on (-1: one in five)")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	initPath := fs.String("init", "", "module `file` to start from (e.g. avq calibrate's); without it, k-means initialises one")
	k := fs.Int("codebook", 4096, "codebook size K for the k-means initialisation")
	block := fs.Int("block", 0, "block of the split, from 0 (k-means initialisation)")
	siteName := fs.String("site", "ln1", "site of the split: ln1, attn, ln2 or ffn (k-means initialisation)")
	iters := fs.Int("iters", 20, "most Lloyd iterations of the k-means initialisation")
	sample := fs.Int("sample", 0, "points k-means++ seeding draws from (0: all)")
	seed := fs.Uint64("seed", 0, "random seed (the same seed writes the same bytes)")
	objective := fs.String("objective", "distill", "training objective: distill (the unquantised model's features) or task (cross-entropy on --data's answers, with a LoRA)")
	data := fs.String("data", "", "task objective: LLaVA conversation JSON `file`, images relative to --images")
	loraRank := fs.Int("lora-rank", 8, "task objective: LoRA rank")
	loraAlpha := fs.Float64("lora-alpha", 16, "task objective: LoRA alpha (scale alpha/rank)")
	loraTargets := fs.String("lora-targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "task objective: the language model's Linears the LoRA updates")
	loraIn := fs.String("lora", "", "task objective: PEFT adapter `folder` to continue (its rank and alpha)")
	loraOut := fs.String("lora-out", "", "task objective: `folder` to write the trained PEFT adapter to")
	target := fs.String("target", "features", "what the distillation matches: features (layer -2, CLS dropped) or projector")
	steps := fs.Int("steps", 200, "optimiser steps")
	epochs := fs.Int("epochs", 0, "passes over the training images (answers with the task objective), instead of --steps")
	batch := fs.Int("batch", 4, "images per step (answers with the task objective)")
	lr := fs.Float64("lr", 1e-3, "peak learning rate (AdamW)")
	warmup := fs.Int("warmup", -1, "warm-up steps before the cosine decay (-1: a twentieth of the steps)")
	wd := fs.Float64("weight-decay", 0.01, "AdamW weight decay on the DLP weights")
	clip := fs.Float64("clip", 1, "gradient-norm clipping limit (0: none)")
	beta := fs.Float64("beta", 0.25, "commitment weight β")
	decay := fs.Float64("ema-decay", 0.99, "codebook EMA decay")
	update := fs.String("codebook-update", "ema", "codebook update: ema, or grad (AdamW on ‖sg(U) − e‖²)")
	evalEvery := fs.Int("eval-every", 50, "steps between held-out evaluations (0: at the start and the end only)")
	ckpt := fs.String("checkpoint", "", "checkpoint `file` written every --checkpoint-every steps and at the end")
	ckptEvery := fs.Int("checkpoint-every", 100, "steps between checkpoints")
	resume := fs.String("resume", "", "checkpoint `file` to continue a run from (same flags, module and images)")
	answerTokens := fs.Int("answer-tokens", 0, "with N > 0, also count the held-out images whose greedy answer to --prompt (N tokens at most) is the unquantised model's; loads the language model")
	prompt := fs.String("prompt", "Describe the image.", "question of the answer agreement")
	template := fs.String("template", llava.DefaultTemplate, "prompt template of the task objective's conversations and the answer agreement: vicuna_v1, llava_v1, hf or raw")
	out := fs.String("out", "", "module `file` to write (alignedvq.safetensors)")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "images", "out"); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *objective != "distill" && *objective != "task":
		return fmt.Errorf("--objective %q: want distill or task", *objective)
	case *objective == "task" && (*data == "" || *loraOut == ""):
		return fmt.Errorf("--objective task needs --data and --lora-out")
	case *objective == "task" && (set["target"] || *answerTokens > 0):
		return fmt.Errorf("--target and --answer-tokens apply to the distillation objective only")
	case *objective == "distill" && (set["data"] || set["lora-rank"] || set["lora-alpha"] || set["lora-targets"] || set["lora"] || set["lora-out"]):
		return fmt.Errorf("--data and the --lora flags apply to --objective task only")
	case *loraIn != "" && (set["lora-rank"] || set["lora-alpha"]):
		return fmt.Errorf("--lora %s gives the rank and alpha: --lora-rank and --lora-alpha apply only without it", *loraIn)
	case *target != "features" && *target != "projector":
		return fmt.Errorf("--target %q: want features or projector", *target)
	case *update != "ema" && *update != "grad":
		return fmt.Errorf("--codebook-update %q: want ema or grad", *update)
	case set["steps"] && set["epochs"]:
		return fmt.Errorf("--steps and --epochs both given: choose one")
	case *epochs < 0:
		return fmt.Errorf("--epochs %d: want at least 1", *epochs)
	case *initPath != "" && (set["codebook"] || set["block"] || set["site"] || set["iters"] || set["sample"]):
		return fmt.Errorf("--init %s gives the split and the codebook: --codebook, --block, --site, --iters and --sample apply only without it", *initPath)
	case *answerTokens < 0:
		return fmt.Errorf("--answer-tokens %d: want ≥ 0", *answerTokens)
	case *evalEvery < 0 || *ckptEvery < 1:
		return fmt.Errorf("--eval-every %d, --checkpoint-every %d: want ≥ 0 and ≥ 1", *evalEvery, *ckptEvery)
	}
	site, err := vit.ParseSite(*siteName)
	if err != nil {
		return err
	}
	imgOpt, err := imageOptions(*aspect, false)
	if err != nil {
		return err
	}
	task := *objective == "task"
	var files []string
	var convs []train.Conversation
	if task {
		if convs, err = train.ReadConversations(*data); err != nil {
			return err
		}
		for _, cv := range convs {
			files = append(files, cv.ImagePath(*images))
		}
	} else if files, err = imageFiles(*images); err != nil {
		return err
	}
	fit, held, err := heldOut(files, *holdOut, *images)
	if err != nil {
		return err
	}

	ck, err := llava.Open(*model, llava.OpenOptions{VisionTower: *tower})
	if err != nil {
		return err
	}
	defer ck.Close()
	parts := ck.VisionParts()
	if *target == "projector" || *answerTokens > 0 {
		if ck.Text == nil {
			return fmt.Errorf("--target projector and --answer-tokens: %s has no projector and language model", *model)
		}
		parts.Projector = true
	}
	if *answerTokens > 0 {
		if len(held) == 0 {
			return fmt.Errorf("--answer-tokens needs held-out images (--held-out)")
		}
		parts = ck.AllParts()
	}
	if task {
		if ck.Text == nil {
			return fmt.Errorf("--objective task: %s has no language model", *model)
		}
		parts = ck.AllParts()
	}
	tmpl, err := llava.LookupTemplate(*template)
	if err != nil {
		return err
	}
	b := c.backend()
	m, err := llava.Load(ck, b, llava.LoadOptions{Parts: parts})
	if err != nil {
		return err
	}
	pixels := func(paths []string) ([][]float32, error) {
		px := make([][]float32, len(paths))
		for i, f := range paths {
			if px[i], err = ck.Pixels(f, imgOpt); err != nil {
				return nil, err
			}
		}
		return px, nil
	}
	fitPx, err := pixels(fit)
	if err != nil {
		return err
	}
	heldPx, err := pixels(held)
	if err != nil {
		return err
	}
	var init *vq.ModuleData
	if *initPath != "" {
		mod, err := vq.Load(*initPath, b)
		if err != nil {
			return err
		}
		if _, err := ck.EdgeParts(mod); err != nil { // the module fits the model, its split precedes the features
			return err
		}
		init = mod.Data(b)
	} else {
		sp := vit.Split{Block: *block, Site: site}
		if err := sp.Validate(ck.Vision); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "k-means initialisation: K %d at block %d %v on %d images\n", *k, *block, site, len(fit))
		cal, err := m.Calibrate(fitPx, llava.CalibrateOptions{Split: sp,
			KMeans: vq.KMeansOptions{K: *k, Iters: *iters, Sample: *sample, Seed: *seed}})
		if err != nil {
			return err
		}
		init = cal.Module
	}
	samples := len(fit) // what an epoch passes over: images, or with the task objective answers
	if task {
		samples = 0
		for _, cv := range convs[:len(fit)] {
			samples += len(cv.Turns) / 2
		}
	}
	n := *steps
	if *epochs > 0 {
		n = (*epochs*samples + *batch - 1) / *batch
	}
	w := *warmup
	if w < 0 {
		w = n / 20
	}
	opt := train.Options{Projector: *target == "projector", Steps: n, Batch: *batch, LR: *lr, Warmup: w, WeightDecay: *wd,
		Clip: *clip, Beta: *beta, EMADecay: *decay, CodebookGrad: *update == "grad", Seed: *seed}
	if task {
		t := &train.Task{Rank: *loraRank, Alpha: *loraAlpha, Targets: strings.Split(*loraTargets, ","), Template: tmpl,
			Train: convs[:len(fit)], HeldOut: convs[len(fit):]}
		if *loraIn != "" {
			if t.Init, t.Rank, t.Alpha, err = train.ReadAdapter(*loraIn); err != nil {
				return err
			}
		}
		opt.Task = t
	}
	tr, err := train.New(m, init, fitPx, heldPx, opt)
	if err != nil {
		return err
	}
	if *resume != "" {
		if err := tr.Resume(*resume); err != nil {
			return err
		}
	}
	stdout := c.stdout
	what := "distillation to the " + *target
	if task {
		what = fmt.Sprintf("cross-entropy on %d answers, LoRA rank %d on %s", samples, opt.Task.Rank, *loraTargets)
	}
	fmt.Fprintf(stdout, "training block %d %s, K %d, D %d on %d images (%d held out): %s, %d steps of %d, codebook by %s\n",
		init.Block, init.Site, init.K, init.D, len(fit), len(held), what, n, *batch, *update)
	var agree *agreement
	if *answerTokens > 0 {
		if agree, err = newAgreement(m, tmpl.Prompt(*prompt, true), *answerTokens, heldPx); err != nil {
			return err
		}
	}
	evaluate := func(what string) (train.Eval, error) {
		e, err := tr.Evaluate()
		if err != nil || tr.HeldOut() == 0 {
			return e, err
		}
		if task {
			fmt.Fprintf(stdout, "held-out answers' cross-entropy %s (step %d): %.6g\n", what, e.Step, e.TaskLoss)
			return e, nil
		}
		fmt.Fprintf(stdout, "held-out distillation %s (step %d): MSE %.6g, cosine %.5f", what, e.Step, e.MSE, e.Cosine)
		if agree != nil {
			same, prefix, err := agree.count(b, tr.Current())
			if err != nil {
				return e, err
			}
			fmt.Fprintf(stdout, "; greedy answers identical to the unquantised model's: %d of %d (the first %.2f tokens on average)",
				same, len(heldPx), prefix)
		}
		fmt.Fprintln(stdout)
		return e, nil
	}
	first, err := evaluate("at the start")
	if err != nil {
		return err
	}
	term := "distillation"
	if task {
		term = "cross-entropy"
	}
	bar := newTrainProgress(c.stderr, isTerminal(c.stderr), tr.Steps(), term)
	for tr.Steps() < n {
		s, err := tr.Step()
		if err != nil {
			bar.finish()
			return err
		}
		bar.update(s)
		if *ckpt != "" && (s.Step%*ckptEvery == 0 || s.Step == n) {
			if err := tr.SaveCheckpoint(*ckpt); err != nil {
				bar.finish()
				return err
			}
		}
		if *evalEvery > 0 && s.Step%*evalEvery == 0 && s.Step < n && tr.HeldOut() > 0 {
			bar.finish()
			if _, err := evaluate("during training"); err != nil {
				return err
			}
		}
	}
	bar.finish()
	if _, err := evaluate("at the end"); err != nil {
		return err
	}
	md, err := tr.Module(fitPx)
	if err != nil {
		return err
	}
	last := first
	if vq.SiteIsNorm(md.Site) {
		if last, err = evaluate("with the residual map refitted"); err != nil {
			return err
		}
	} else if last, err = tr.Evaluate(); err != nil {
		return err
	}
	if err := vq.WriteModule(*out, md); err != nil {
		return err
	}
	if task {
		if err := tr.SaveAdapter(*loraOut); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: the PEFT adapter (avq run --lora)\n", *loraOut)
	}
	fmt.Fprintf(stdout, "wrote %s: DLP gates tanh(γ_in) %.4f, tanh(γ_out) %.4f; %d codebook entries re-seeded", *out,
		math.Tanh(float64(md.DLPIn.Gamma)), math.Tanh(float64(md.DLPOut.Gamma)), tr.Reseeded())
	switch {
	case tr.HeldOut() > 0 && task:
		fmt.Fprintf(stdout, "; held-out answers' cross-entropy %.6g → %.6g", first.TaskLoss, last.TaskLoss)
	case tr.HeldOut() > 0:
		fmt.Fprintf(stdout, "; held-out distillation MSE %.6g → %.6g", first.MSE, last.MSE)
	}
	fmt.Fprintln(stdout)
	return nil
}

// agreement compares the greedy answers of the model with a module in place
// (through real frames, as deployed) with the unquantised model's.
type agreement struct {
	m         *llava.Model
	prompt    llava.Prompt
	maxTokens int
	pixels    [][]float32
	want      [][]int32 // the unquantised model's answer ids per image
}

func newAgreement(m *llava.Model, prompt llava.Prompt, maxTokens int, pixels [][]float32) (*agreement, error) {
	a := &agreement{m: m, prompt: prompt, maxTokens: maxTokens, pixels: pixels}
	for _, px := range pixels {
		f, err := m.SelectFeatures(px)
		if err != nil {
			return nil, err
		}
		ids, err := a.answer(m.Project(f))
		if err != nil {
			return nil, err
		}
		a.want = append(a.want, ids)
	}
	return a, nil
}

func (a *agreement) answer(image backend.Tensor) ([]int32, error) {
	res, err := a.m.Generate(context.Background(), llava.Request{Prompt: a.prompt, Image: image, MaxTokens: a.maxTokens})
	if err != nil {
		return nil, err
	}
	return res.IDs, nil
}

// count is how many images get the unquantised model's answer with md, and
// the mean length of the prefix the two answers share.
func (a *agreement) count(b backend.Backend, md *vq.ModuleData) (same int, prefix float64, err error) {
	mod, err := vq.NewModule(md, b)
	if err != nil {
		return 0, 0, err
	}
	if err := a.m.AttachVQ(mod); err != nil {
		return 0, 0, err
	}
	for i, px := range a.pixels {
		e, err := a.m.EncodeFrame(px, false)
		if err != nil {
			return 0, 0, err
		}
		r, err := a.m.DecodeFrame(e.Frame)
		if err != nil {
			return 0, 0, err
		}
		ids, err := a.answer(r.Projected)
		if err != nil {
			return 0, 0, err
		}
		if slices.Equal(ids, a.want[i]) {
			same++
		}
		n := 0
		for n < min(len(ids), len(a.want[i])) && ids[n] == a.want[i][n] {
			n++
		}
		prefix += float64(n)
	}
	return same, prefix / float64(len(a.pixels)), nil
}

// heldOut splits sorted image files into those to fit on and the last
// holdOut (−1: one in five) kept out to measure on.
func heldOut(files []string, holdOut int, dir string) (fit, held []string, err error) {
	n := holdOut
	if n < 0 {
		n = len(files) / 5
	}
	if n >= len(files) {
		return nil, nil, fmt.Errorf("--held-out %d leaves no images to fit on (%d in %s)", n, len(files), dir)
	}
	return files[:len(files)-n], files[len(files)-n:], nil
}

// trainProgress shows steps done, the loss, the step rate and the time
// left: one redrawn line on a terminal, else a line every tenth of the run.
type trainProgress struct {
	w         io.Writer
	tty       bool
	start     time.Time
	startStep int
	open      bool
	lastTenth int
	term      string // the objective's name
}

func newTrainProgress(w io.Writer, tty bool, done int, term string) *trainProgress {
	return &trainProgress{w: w, tty: tty, start: time.Now(), startStep: done, lastTenth: -1, term: term}
}

func (p *trainProgress) update(s train.Step) {
	el := time.Since(p.start).Seconds()
	rate := float64(s.Step-p.startStep) / max(el, 1e-9)
	eta := time.Duration(float64(s.Steps-s.Step)/max(rate, 1e-9)) * time.Second
	line := fmt.Sprintf("step %d/%d  loss %.5g (%s %.5g, commitment %.4g)  lr %.3g  %.2f steps/s  ETA %v",
		s.Step, s.Steps, s.Loss, p.term, s.Distill, s.Commit, s.LR, rate, eta.Round(time.Second))
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.open = true
		return
	}
	if tenth := s.Step * 10 / s.Steps; tenth != p.lastTenth || s.Step == s.Steps {
		p.lastTenth = tenth
		fmt.Fprintln(p.w, line)
	}
}

func (p *trainProgress) finish() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}
