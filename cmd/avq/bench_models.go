package main

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/llama"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/vit"
)

// vitSource lists the tensors of a CLIP vision tower (names as in a CLIP
// checkpoint's "vision_model." scope) up to block layers.
func vitSource(cfg vit.Config, layers int) *randomSource {
	d, in, p := cfg.HiddenSize, cfg.IntermediateSize, cfg.PatchSize
	s := &randomSource{dtype: tensor.F16, shapes: map[string][]int{}, std: 0.02}
	s.add("embeddings.patch_embedding.weight", d, cfg.NumChannels, p, p)
	s.add("embeddings.class_embedding", d)
	s.add("embeddings.position_embedding.weight", cfg.Tokens(), d)
	s.add("pre_layrnorm.weight", d)
	s.add("pre_layrnorm.bias", d)
	for i := range layers {
		l := fmt.Sprintf("encoder.layers.%d.", i)
		for _, ln := range []string{"layer_norm1", "layer_norm2"} {
			s.add(l+ln+".weight", d)
			s.add(l+ln+".bias", d)
		}
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			s.add(l+"self_attn."+proj+".weight", d, d)
			s.add(l+"self_attn."+proj+".bias", d)
		}
		s.add(l+"mlp.fc1.weight", in, d)
		s.add(l+"mlp.fc1.bias", in)
		s.add(l+"mlp.fc2.weight", d, in)
		s.add(l+"mlp.fc2.bias", d)
	}
	return s
}

// vitFLOPs counts the multiply-adds (×2) of a forward through blocks
// blocks: the patch embedding, and per block the four projections, the MLP
// and the two attention products.
func vitFLOPs(cfg vit.Config, blocks int) float64 {
	t, d, in := float64(cfg.Tokens()), float64(cfg.HiddenSize), float64(cfg.IntermediateSize)
	patch := 2 * (t - 1) * d * float64(cfg.NumChannels*cfg.PatchSize*cfg.PatchSize)
	block := 4*2*t*d*d + 2*2*t*d*in + 2*2*t*t*d
	return patch + float64(blocks)*block
}

func benchViT(c *cli, args []string) error {
	fs, o := c.benchFlags("vit", "[--shape vit-l-336] [--threads T] [--json]")
	shape := fs.String("shape", "vit-l-336", "tower shape: vit-l-336 (CLIP ViT-L/14-336, LLaVA-1.5's)")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *shape != "vit-l-336" {
		return fmt.Errorf("--shape %q: only vit-l-336 is known", *shape)
	}
	threads, err := o.start(c)
	if err != nil {
		return err
	}
	cfg := vit.ViTL14_336()
	b := cpu.New(threads)
	defer b.Close()
	w := nn.NewWeights(vitSource(cfg, cfg.NumHiddenLayers), b, nil)
	m, err := vit.Load(w, cfg, vit.Pixels, vit.HiddenState(cfg.NumHiddenLayers))
	if err != nil {
		return err
	}
	pixels := tensor.New(tensor.F32, cfg.NumChannels, cfg.ImageSize, cfg.ImageSize)
	fillRandom(pixels, 7, 1)
	s := m.NewStream(b)
	var rows []row
	// LLaVA-1.5 uses hidden state −2: 23 blocks; the whole tower is 24.
	for _, blocks := range []int{cfg.NumHiddenLayers - 1, cfg.NumHiddenLayers} {
		t := o.measure(func() { m.Run(b, s, pixels.F32(), vit.Pixels, vit.HiddenState(blocks)) })
		fl := vitFLOPs(cfg, blocks)
		rows = append(rows, row{
			{"bench", "vit"}, {"shape", *shape}, {"blocks", blocks}, {"threads", threads},
			{"impl", asm.Selected()}, {"reps", t.reps}, {"median_s", t.median.Seconds()},
			{"min_s", t.min.Seconds()}, {"ms_per_block", millis(t.median) / float64(blocks)},
			{"gflop", fl / 1e9}, {"gflops", fl / t.median.Seconds() / 1e9},
		})
	}
	return report(c.stdout, o.json, rows)
}

// llamaSource lists a LLaMA decoder's tensors (checkpoint root scope).
func llamaSource(cfg llama.Config) *randomSource {
	d, in, hd := cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim
	qd, kvd := cfg.NumAttentionHeads*hd, cfg.NumKeyValueHeads*hd
	s := &randomSource{dtype: tensor.F16, shapes: map[string][]int{}, std: 0.02}
	s.add("model.embed_tokens.weight", cfg.VocabSize, d)
	for i := range cfg.NumHiddenLayers {
		l := fmt.Sprintf("model.layers.%d.", i)
		s.add(l+"input_layernorm.weight", d)
		s.add(l+"post_attention_layernorm.weight", d)
		s.add(l+"self_attn.q_proj.weight", qd, d)
		s.add(l+"self_attn.k_proj.weight", kvd, d)
		s.add(l+"self_attn.v_proj.weight", kvd, d)
		s.add(l+"self_attn.o_proj.weight", d, qd)
		s.add(l+"mlp.gate_proj.weight", in, d)
		s.add(l+"mlp.up_proj.weight", in, d)
		s.add(l+"mlp.down_proj.weight", d, in)
	}
	s.add("model.norm.weight", d)
	s.add("lm_head.weight", cfg.VocabSize, d)
	return s
}

// layerWeightBytes is one decoder layer's fp16 weight bytes.
func layerWeightBytes(cfg llama.Config) float64 {
	d, qd, kvd := cfg.HiddenSize, cfg.NumAttentionHeads*cfg.HeadDim, cfg.NumKeyValueHeads*cfg.HeadDim
	return float64(2 * (2*d*qd + 2*d*kvd + 3*d*cfg.IntermediateSize))
}

// stepBytes is the fp16 weight bytes a decoding step reads: every layer and
// the LM head (the embedding row is negligible).
func stepBytes(cfg llama.Config, layers int) float64 {
	return float64(layers)*layerWeightBytes(cfg) + float64(2*cfg.VocabSize*cfg.HiddenSize)
}

// readProbe times one streaming read of x, split in contiguous parts over
// threads goroutines (a dot product of each part with itself: one load
// stream per thread, as a STREAM read kernel).
func readProbe(x []float32, threads int) time.Duration {
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range threads {
		part := x[i*len(x)/threads : (i+1)*len(x)/threads]
		wg.Add(1)
		go func() {
			defer wg.Done()
			asm.Dot(part, part)
		}()
	}
	wg.Wait()
	return time.Since(t0)
}

func benchDecode(c *cli, args []string) error {
	fs, o := c.benchFlags("decode", "[--shape llama-7b] [--layers N] [--prompt P] [--tokens T] [--threads T] [--json]")
	shape := fs.String("shape", "llama-7b", "decoder shape: llama-7b (Vicuna-7B, LLaVA-1.5's)")
	layers := fs.Int("layers", 4, "decoder layers to build (32 in the real model; the result is extrapolated)")
	prompt := fs.Int("prompt", 600, "positions prefilled before decoding (LLaVA-1.5: 576 image tokens + text)")
	tokens := fs.Int("tokens", 24, "tokens decoded and timed")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *shape != "llama-7b" {
		return fmt.Errorf("--shape %q: only llama-7b is known", *shape)
	}
	if *layers < 1 || *prompt < 1 || *tokens < 1 {
		return fmt.Errorf("--layers, --prompt and --tokens must be positive")
	}
	threads, err := o.start(c)
	if err != nil {
		return err
	}
	cfg := llama.Vicuna7B()
	full := cfg.NumHiddenLayers
	cfg.NumHiddenLayers = *layers
	if *prompt+*tokens+1 > cfg.MaxPositionEmbeddings {
		return fmt.Errorf("--prompt + --tokens exceeds the %d positions of the model", cfg.MaxPositionEmbeddings)
	}
	b := cpu.New(threads)
	defer b.Close()
	m, err := llama.Load(nn.NewWeights(llamaSource(cfg), b, nil), cfg)
	if err != nil {
		return err
	}
	st, err := m.NewState(b, *prompt+*tokens+1)
	if err != nil {
		return err
	}
	emb := tensor.New(tensor.F32, *prompt, cfg.HiddenSize)
	fillRandom(emb, 9, 1)
	t0 := time.Now()
	if _, err := st.Prefill(emb); err != nil {
		return err
	}
	prefill := time.Since(t0)

	// Decode tokens one by one, each timed, the first a warm-up. Before each,
	// a plain streaming read of as many bytes as the step's weights (the
	// read bound) is timed too: this machine's memory bandwidth changes with
	// its neighbours' load, so bound and step are sampled alternately.
	probe := tensor.New(tensor.F32, int(stepBytes(cfg, *layers)/4))
	fillRandom(probe, 10, 1)
	var ts, ps []time.Duration
	for i := range *tokens + 1 {
		p := readProbe(probe.F32(), threads)
		t0 := time.Now()
		if _, err := st.Decode(int32(i % cfg.VocabSize)); err != nil {
			return err
		}
		if i > 0 {
			ts, ps = append(ts, time.Since(t0)), append(ps, p)
		}
	}
	slices.Sort(ts)
	slices.Sort(ps)
	token, probeT := ts[len(ts)/2], ps[len(ps)/2]

	// The LM head alone (one 32064×4096 fp16 GEMV, 263 MB: it streams from
	// DRAM whatever ran before), to split the step into per-layer and head.
	last, logits := b.New(1, cfg.HiddenSize), b.New(1, cfg.VocabSize)
	head := m.LMHead.Weight
	th := o.measure(func() { b.MatMul(logits, last, head, nil) })

	layerBytes := layerWeightBytes(cfg)
	perLayer := (token - th.median).Seconds() / float64(*layers)
	full32 := float64(full)*perLayer + th.median.Seconds()
	step := stepBytes(cfg, *layers)
	readGBps := float64(len(probe.F32())*4) / probeT.Seconds() / 1e9
	return report(c.stdout, o.json, []row{{
		{"bench", "decode"}, {"shape", *shape}, {"layers", *layers}, {"threads", threads},
		{"impl", asm.Selected()}, {"prompt", *prompt}, {"tokens", len(ts)},
		{"prefill_tok_s", float64(*prompt) / prefill.Seconds()},
		{"ms_per_token", millis(token)}, {"min_ms", millis(ts[0])},
		{"lm_head_ms", millis(th.median)}, {"ms_per_layer", perLayer * 1e3},
		{"weight_gbps", step / token.Seconds() / 1e9},
		{"layer_gbps", layerBytes / perLayer / 1e9},
		{"read_bound_gbps", readGBps}, {"of_bound", step / token.Seconds() / 1e9 / readGBps},
		{"ms_per_token_32", full32 * 1e3}, {"tok_s_32", 1 / full32},
		{"extrapolated", *layers != full},
	}})
}
