package train

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/tokenizer"
)

// The task objective: LLaVA's instruction data, cross-entropy on the
// answer tokens only, with the module in place and a LoRA adapter on the
// language model.

// Conversation is one entry of LLaVA's conversation JSON:
// {"image": "x.jpg", "conversations": [{"from": "human", "value": "<image>\n…"}, {"from": "gpt", "value": "…"}, …]}.
type Conversation struct {
	Image string `json:"image"`
	Turns []struct {
		From  string `json:"from"`
		Value string `json:"value"`
	} `json:"conversations"`
}

// ReadConversations reads and checks a conversation file: every entry has
// an image, turns alternating human and gpt from a human one, and exactly
// one "<image>", in a human turn.
func ReadConversations(path string) ([]Conversation, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: --data: %w", err)
	}
	var cs []Conversation
	if err := json.Unmarshal(raw, &cs); err != nil {
		return nil, fmt.Errorf("train: --data %s: %w", path, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("train: --data %s: no conversations", path)
	}
	for i, c := range cs {
		bad := func(why string) error { return fmt.Errorf("train: --data %s: entry %d: %s", path, i, why) }
		if c.Image == "" {
			return nil, bad(`no "image"`)
		}
		if len(c.Turns) < 2 || len(c.Turns)%2 != 0 {
			return nil, bad(fmt.Sprintf("%d turns, want human/gpt pairs", len(c.Turns)))
		}
		images := 0
		for j, t := range c.Turns {
			want := "human"
			if j%2 == 1 {
				want = "gpt"
			}
			if t.From != want {
				return nil, bad(fmt.Sprintf("turn %d is from %q, want %q", j, t.From, want))
			}
			n := strings.Count(t.Value, llava.ImagePlaceholder)
			if n > 0 && want == "gpt" {
				return nil, bad(fmt.Sprintf("turn %d (gpt) holds %s", j, llava.ImagePlaceholder))
			}
			images += n
		}
		if images != 1 {
			return nil, bad(fmt.Sprintf("%d %s placeholders, want 1", images, llava.ImagePlaceholder))
		}
	}
	return cs, nil
}

// ImagePath is the conversation's image in folder dir.
func (c Conversation) ImagePath(dir string) string { return filepath.Join(dir, c.Image) }

// taskSample is one answer to learn: the prompt with its history (one image
// id), the answer's ids and where they sit in the expanded sequence.
type taskSample struct {
	zin    []float32
	ids    []int32 // prompt ids, then the answer's (EOS last)
	prompt int     // len of the prompt part of ids
}

// Task configures the task objective.
type Task struct {
	Rank     int
	Alpha    float64
	Targets  []string                // short names of the decoder's Linears: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
	Init     map[string][2][]float32 `json:"-"` // an adapter to continue (module → A, B), from ReadAdapter
	Template *llava.Template         `json:"-"`
	Train    []Conversation          `json:"-"` // one per training image, in the order of the pixels given to New
	HeldOut  []Conversation          `json:"-"` // one per held-out image
}

// loraTargets are the Linears a LoRA may update.
var loraTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// taskSamples makes one sample per gpt turn of c: the conversation up to
// that turn rendered by the template (earlier answers as history), the
// answer tokenized as text, then EOS.
func taskSamples(m *llava.Model, tmpl *llava.Template, c Conversation, zin []float32) []taskSample {
	var out []taskSample
	var turns []llava.Turn
	for j := 0; j < len(c.Turns); j += 2 {
		turns = append(turns, llava.Turn{Role: "user", Text: c.Turns[j].Value})
		ids := m.PromptIDs(tmpl.Render(tmpl.System, turns))
		ans := append(m.Tokenizer.EncodeControlled(c.Turns[j+1].Value, []tokenizer.Span{}, false), m.Tokenizer.EOS())
		out = append(out, taskSample{zin: zin, ids: append(ids, ans...), prompt: len(ids)})
		turns = append(turns, llava.Turn{Role: "assistant", Text: c.Turns[j+1].Value})
	}
	return out
}

// accumulateTask runs one sample of a batch of n: the quantizer, the student
// to the projector output, the decoder on the spliced embeddings and the
// cross-entropy of the answer; it adds the loss terms to g, and with
// backward the gradients.
func (t *Trainer) accumulateTask(s taskSample, g *grads, n int, backward bool) (*qtape, error) {
	b, st := t.b, t.st
	nb := float64(n)
	scale := 1 / (nb * float64(st.t))
	q, err := quantize(b, t.mod, s.zin)
	if err != nil {
		return nil, err
	}
	tp := st.forward(q.zout) // [N, H]
	img := t.model.Checkpoint.ImageToken
	at := -1
	for i, id := range s.ids[:s.prompt] {
		if id == img {
			at = i
		}
	}
	if at < 0 {
		return nil, fmt.Errorf("train: a prompt lost its image token")
	}
	nimg := tp.out.Shape()[0]
	d := t.dec.hidden
	embeds := b.New(len(s.ids)-1+nimg, d)
	if err := t.model.LLM.Embed(b, b.Rows(embeds, 0, at), s.ids[:at]); err != nil {
		return nil, err
	}
	b.Copy(embeds, at, tp.out)
	rest := s.ids[at+1:]
	if err := t.model.LLM.Embed(b, b.Rows(embeds, at+nimg, at+nimg+len(rest)), rest); err != nil {
		return nil, err
	}
	dt := t.dec.forward(embeds)
	// answer token i sits at expanded position p0+i and is predicted from p0+i−1
	p0 := s.prompt - 1 + nimg
	var pos []int
	for i := range len(s.ids) - s.prompt {
		pos = append(pos, p0+i-1)
	}
	ce, dlast := t.dec.crossEntropy(dt.last, pos, s.ids[s.prompt:])
	g.distill += ce / nb
	g.comm += q.commit * scale
	if !backward {
		return q, nil
	}
	scaleTensor(b, dlast, float32(1/nb))
	demb := t.dec.backward(dt, dlast)
	dimg := b.New(nimg, d)
	b.Copy(dimg, 0, b.Rows(demb, at, at+nimg))
	q.backward(b, t.mod, g, st.backward(tp, dimg), t.opt.Beta, scale)
	return q, nil
}

// scaleTensor multiplies x by s in place.
func scaleTensor(b backend.Backend, x backend.Tensor, s float32) {
	c := b.New(x.Shape()...)
	b.AddScaled(c, x, s-1)
	b.AddScaled(x, c, 1)
}

// AdapterConfig is the PEFT adapter_config.json avq train writes.
type adapterConfig struct {
	PeftType      string   `json:"peft_type"`
	TaskType      string   `json:"task_type"`
	R             int      `json:"r"`
	LoraAlpha     float64  `json:"lora_alpha"`
	TargetModules []string `json:"target_modules"`
	LoraDropout   float64  `json:"lora_dropout"`
	Bias          string   `json:"bias"`
	FanInFanOut   bool     `json:"fan_in_fan_out"`
	UseRSLoRA     bool     `json:"use_rslora"`
	UseDoRA       bool     `json:"use_dora"`
	InferenceMode bool     `json:"inference_mode"`
	BaseModel     string   `json:"base_model_name_or_path"`
}

// SaveAdapter writes the trained LoRA as a PEFT adapter in dir
// (adapter_config.json and adapter_model.safetensors, names
// "base_model.model.<module>.lora_A.weight"), which avq run --lora loads.
func (t *Trainer) SaveAdapter(dir string) error {
	if t.dec == nil {
		return fmt.Errorf("train: no adapter: the objective is distillation")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: --lora-out: %w", err)
	}
	cfg := adapterConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", R: t.opt.Task.Rank, LoraAlpha: t.opt.Task.Alpha,
		TargetModules: t.opt.Task.Targets, Bias: "none", InferenceMode: true, BaseModel: t.model.Checkpoint.Dir}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: --lora-out: %w", err)
	}
	var entries []safetensors.Entry
	for _, l := range t.dec.loras {
		entries = append(entries,
			safetensors.Entry{Name: "base_model.model." + l.module + ".lora_A.weight", T: tensor.FromF32(append([]float32(nil), l.pa.value...), l.rank, l.base.In)},
			safetensors.Entry{Name: "base_model.model." + l.module + ".lora_B.weight", T: tensor.FromF32(append([]float32(nil), l.pb.value...), l.base.Out, l.rank)})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), entries, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("train: --lora-out: %w", err)
	}
	return nil
}

// ReadAdapter reads a PEFT adapter's LoRA values for continuing it: module
// → (A, B), with its rank and alpha. Only a plain LoRA (one rank and alpha,
// no rsLoRA or DoRA) can be continued.
func ReadAdapter(dir string) (map[string][2][]float32, int, float64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("train: --lora: %w", err)
	}
	var cfg struct {
		adapterConfig
		RankPattern  map[string]any `json:"rank_pattern"`
		AlphaPattern map[string]any `json:"alpha_pattern"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, 0, 0, fmt.Errorf("train: --lora %s: adapter_config.json: %w", dir, err)
	}
	if cfg.PeftType != "LORA" || cfg.R < 1 || cfg.UseRSLoRA || cfg.UseDoRA || len(cfg.RankPattern) > 0 || len(cfg.AlphaPattern) > 0 {
		return nil, 0, 0, fmt.Errorf("train: --lora %s: only a plain PEFT LoRA (one rank and alpha, no rsLoRA, DoRA or patterns) can be continued", dir)
	}
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("train: --lora: %w", err)
	}
	defer f.Close()
	out := map[string][2][]float32{}
	for _, name := range f.Names() {
		module, ok := strings.CutSuffix(strings.TrimPrefix(name, "base_model.model."), ".lora_A.weight")
		if !ok {
			continue
		}
		a, err := f.Tensor(name)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("train: --lora: %w", err)
		}
		bt, err := f.Tensor("base_model.model." + module + ".lora_B.weight")
		if err != nil {
			return nil, 0, 0, fmt.Errorf("train: --lora: %w", err)
		}
		out[module] = [2][]float32{a.ToF32(), bt.ToF32()}
	}
	return out, cfg.R, cfg.LoraAlpha, nil
}

// newTask sets up the task objective: the decoder with its LoRA, and one
// sample per answer of each image's conversation.
func (t *Trainer) newTask(images, heldOut [][]float32) error {
	m, task := t.model, t.opt.Task
	switch {
	case m.LLM == nil || m.Projector == nil || m.Tokenizer == nil:
		return fmt.Errorf("train: the task objective needs the projector and the language model loaded")
	case task.Template == nil || len(task.Train) != len(images) || len(task.HeldOut) != len(heldOut):
		return fmt.Errorf("train: the task objective needs a template and one conversation per image")
	case task.Rank < 1 || !(task.Alpha > 0):
		return fmt.Errorf("train: --lora-rank %d, --lora-alpha %v: want ≥ 1 and > 0", task.Rank, task.Alpha)
	}
	t.st.projector = m.Projector // the image enters the decoder projected
	targets := map[string]bool{}
	for _, name := range task.Targets {
		if !slices.Contains(loraTargets, name) {
			return fmt.Errorf("train: --lora-targets: %q matches no Linear of the language model (%s)", name, strings.Join(loraTargets, ", "))
		}
		targets[name] = true
	}
	if len(targets) == 0 {
		return fmt.Errorf("train: --lora-targets: none given")
	}
	rng := rand.New(rand.NewPCG(t.opt.Seed, 0x6c6f7261)) // "lora"
	draw := func(n int, bound float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*rng.Float64() - 1) * bound)
		}
		return v
	}
	var err error
	if t.dec, err = newDecoder(t.b, m.LLM, "language_model.model.", task.Rank, task.Alpha, targets, task.Init, draw); err != nil {
		return err
	}
	used := map[string]bool{}
	for _, l := range t.dec.loras {
		used[l.module] = true
	}
	for module := range task.Init {
		if !used[module] {
			return fmt.Errorf("train: --lora: the adapter updates %s, which --lora-targets does not train", module)
		}
	}
	for _, set := range []struct {
		px    [][]float32
		convs []Conversation
		out   *[]taskSample
	}{{images, task.Train, &t.tasks}, {heldOut, task.HeldOut, &t.heldT}} {
		for i, px := range set.px {
			z, _ := m.SiteFeatures(px, t.split)
			if set.out == &t.tasks {
				t.train = append(t.train, sample{zin: z})
			}
			*set.out = append(*set.out, taskSamples(m, task.Template, set.convs[i], z)...)
		}
	}
	t.initParams()
	return nil
}

// taskLossAndGrads is lossAndGrads for the task objective.
func (t *Trainer) taskLossAndGrads(samples []taskSample) (*grads, []*qtape, error) {
	g := newGrads(t.b, t.md.K, t.md.D, t.opt.CodebookGrad)
	for _, l := range t.dec.loras {
		l.ga, l.gb = t.b.New(l.rank, l.base.In), t.b.New(l.base.Out, l.rank)
	}
	var qs []*qtape
	for _, s := range samples {
		q, err := t.accumulateTask(s, g, len(samples), true)
		if err != nil {
			return nil, nil, err
		}
		qs = append(qs, q)
	}
	return g, qs, nil
}

// taskLoss is one held-out answer's cross-entropy (forward only).
func (t *Trainer) taskLoss(s taskSample) (float64, error) {
	g := newGrads(t.b, t.md.K, t.md.D, false)
	if _, err := t.accumulateTask(s, g, 1, false); err != nil {
		return 0, err
	}
	return g.distill, nil
}

// readF64 reads a tensor to the host in float64.
func readF64(b backend.Backend, x backend.Tensor) []float64 {
	h := make([]float32, x.Shape().Numel())
	b.Read(h, x)
	out := make([]float64, len(h))
	for i, v := range h {
		out[i] = float64(v)
	}
	return out
}
