package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/vq"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// genFlags are the generation flags run and the edge client share.
type genFlags struct {
	template    string
	maxTokens   int
	temperature float64
	topK        int
	topP        float64
	seed        uint64
	stop        stringList
}

func (g *genFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.template, "template", llava.DefaultTemplate, "prompt template: vicuna_v1, llava_v1, hf or raw")
	fs.IntVar(&g.maxTokens, "max-tokens", llava.DefaultMaxTokens, "new tokens at most")
	fs.Float64Var(&g.temperature, "temperature", 0, "sampling temperature (0: greedy)")
	fs.IntVar(&g.topK, "top-k", 0, "sample from the k most likely tokens (0: all)")
	fs.Float64Var(&g.topP, "top-p", 1, "sample from the smallest set of tokens with this much probability")
	fs.Uint64Var(&g.seed, "seed", 0, "random seed for sampling")
	fs.Var(&g.stop, "stop", "stop before this string (repeatable)")
}

// refuseFlags returns an error naming the first of names that was given on
// the command line: flags the command takes that would mean nothing in the
// use at hand, which is refused rather than silently ignored.
func refuseFlags(fs *flag.FlagSet, why string, names ...string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range names {
		if set[n] {
			return fmt.Errorf("--%s %s", n, why)
		}
	}
	return nil
}

// checkFrameFlags refuses the flags an AlignedVQ use would ignore:
// --token-stats without --vq, and the image options with a frame made
// already (framePath set).
func checkFrameFlags(fs *flag.FlagSet, vqPath, framePath string) error {
	if vqPath == "" {
		if err := refuseFlags(fs, "needs --vq: token statistics travel in AlignedVQ frames", "token-stats"); err != nil {
			return err
		}
	}
	if framePath != "" {
		return refuseFlags(fs, "does not apply to --frame: the frame was made from the image already", "aspect", "exif", "token-stats")
	}
	return nil
}

func (g *genFlags) sampling() (llama.Sampling, error) {
	switch {
	case g.temperature < 0:
		return llama.Sampling{}, fmt.Errorf("--temperature must not be negative")
	case g.topK < 0:
		return llama.Sampling{}, fmt.Errorf("--top-k must not be negative")
	case g.topP <= 0 || g.topP > 1:
		return llama.Sampling{}, fmt.Errorf("--top-p must be in (0, 1]")
	case g.maxTokens <= 0:
		return llama.Sampling{}, fmt.Errorf("--max-tokens must be positive")
	}
	return llama.Sampling{Temperature: g.temperature, TopK: g.topK, TopP: g.topP, Seed: g.seed}, nil
}

// runOutput is the --json object of avq run.
type runOutput struct {
	PromptIDs  []int32    `json:"prompt_ids"`
	IDs        []int32    `json:"ids"`
	Text       string     `json:"text"`
	StopReason string     `json:"stop_reason"`
	FrameBytes *int       `json:"frame_bytes,omitempty"`
	Timings    runTimings `json:"timings"`
}

type runTimings struct {
	LoadMS           float64 `json:"load_ms"`
	EncodeMS         float64 `json:"encode_ms"`
	PrefillMS        float64 `json:"prefill_ms"`
	DecodeMS         float64 `json:"decode_ms"`
	DecodeTokensPerS float64 `json:"decode_tokens_per_s"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func cmdRun(c *cli, args []string) error {
	fs := c.flags("run", "--model DIR [--image FILE] --prompt TEXT [flags]")
	model := fs.String("model", "", "checkpoint `folder` (llava-hf or original LLaVA)")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	image := fs.String("image", "", "image `file`; without it the prompt is a text-only chat")
	prompt := fs.String("prompt", "", "the question, taken literally")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	exif := fs.Bool("exif", false, "apply the EXIF orientation (the reference does not)")
	lora := fs.String("lora", "", "LoRA adapter `folder` (PEFT, or original LLaVA's form)")
	merge := fs.Bool("lora-merge", false, "merge the adapter into the weights at load")
	asJSON := fs.Bool("json", false, "print one JSON object instead of streaming the answer")
	vqPath := fs.String("vq", "", "AlignedVQ module `file`: run the edge head and the cloud tail through a real frame")
	framePath := fs.String("frame", "", "with --vq, run only the cloud tail on this frame `file`")
	stats := fs.Bool("token-stats", false, "with --vq, put token statistics in the frame")
	var g genFlags
	g.register(fs)
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "prompt"); err != nil {
		return err
	}
	if *framePath != "" && (*vqPath == "" || *image != "") {
		return fmt.Errorf("--frame needs --vq and replaces --image")
	}
	if err := checkFrameFlags(fs, *vqPath, *framePath); err != nil {
		return err
	}
	if *merge && *lora == "" {
		return fmt.Errorf("--lora-merge needs --lora: there is no adapter to merge")
	}
	if *image == "" && *framePath == "" {
		if err := refuseFlags(fs, "needs --image: a text-only chat has no image", "aspect", "exif"); err != nil {
			return err
		}
	}
	sampling, err := g.sampling()
	if err != nil {
		return err
	}
	tmpl, err := llava.LookupTemplate(g.template)
	if err != nil {
		return err
	}
	imgOpt, err := imageOptions(*aspect, *exif)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	t0 := time.Now()
	ck, err := llava.Open(*model, llava.OpenOptions{VisionTower: *tower, LoRA: *lora})
	if err != nil {
		return err
	}
	defer ck.Close()
	var m *llava.Model
	switch {
	case *vqPath == "":
		parts := ck.AllParts()
		parts.Vision = *image != ""
		m, err = llava.Load(ck, c.backend(), llava.LoadOptions{Parts: parts, LoRA: *lora, LoRAMerge: *merge})
	case *framePath != "": // the cloud tail alone
		m, err = loadWithVQ(c, ck, *vqPath, ck.CloudParts, *lora, *merge)
	default: // edge head and cloud tail in one process
		m, err = loadWithVQ(c, ck, *vqPath, func(*vq.Module) (llava.Parts, error) { return ck.AllParts(), nil }, *lora, *merge)
	}
	if err != nil {
		return err
	}
	var out runOutput
	out.Timings.LoadMS = ms(time.Since(t0))

	withImage := *image != "" || *framePath != ""
	req := llava.Request{Prompt: tmpl.Prompt(*prompt, withImage), MaxTokens: g.maxTokens, Sampling: sampling, Stop: g.stop}
	switch {
	case *vqPath != "":
		t1 := time.Now()
		var frame []byte
		if *framePath != "" {
			if frame, err = os.ReadFile(*framePath); err != nil {
				return err
			}
		} else {
			if *image == "" {
				return fmt.Errorf("--vq needs --image or --frame")
			}
			pixels, err := ck.Pixels(*image, imgOpt)
			if err != nil {
				return err
			}
			e, err := m.EncodeFrame(pixels, *stats)
			if err != nil {
				return err
			}
			frame = e.Frame
		}
		res, err := m.DecodeFrame(frame)
		if err != nil {
			if *framePath != "" {
				return fmt.Errorf("%s: %w", *framePath, err)
			}
			return err
		}
		req.Image = res.Projected
		n := len(frame)
		out.FrameBytes = &n
		out.Timings.EncodeMS = ms(time.Since(t1))
		if !*asJSON {
			fmt.Fprintf(c.stderr, "frame: %d bytes on the wire\n", n)
		}
	case *image != "":
		t1 := time.Now()
		pixels, err := ck.Pixels(*image, imgOpt)
		if err != nil {
			return err
		}
		f, err := m.SelectFeatures(pixels)
		if err != nil {
			return err
		}
		req.Image = m.Project(f)
		out.Timings.EncodeMS = ms(time.Since(t1))
	}
	return generate(ctx, c, m, req, &out, *asJSON)
}

// generate runs the request, streaming to stdout or printing the JSON object,
// with timings on stderr.
func generate(ctx context.Context, c *cli, m *llava.Model, req llava.Request, out *runOutput, asJSON bool) error {
	if !asJSON {
		req.OnText = func(s string) error { _, err := fmt.Fprint(c.stdout, s); return err }
	}
	res, err := m.Generate(ctx, req)
	if err != nil {
		return err
	}
	out.PromptIDs, out.IDs, out.Text, out.StopReason = res.PromptIDs, res.IDs, res.Text, res.StopReason
	out.Timings.PrefillMS = ms(res.PrefillTime)
	out.Timings.DecodeMS = ms(res.DecodeTime)
	if res.DecodeSteps > 0 && res.DecodeTime > 0 {
		out.Timings.DecodeTokensPerS = float64(res.DecodeSteps) / res.DecodeTime.Seconds()
	}
	if out.IDs == nil {
		out.IDs = []int32{}
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	fmt.Fprintln(c.stdout)
	t := out.Timings
	fmt.Fprintf(c.stderr, "load %.0f ms, encode %.0f ms, prefill %.0f ms (%d positions), decode %.0f ms (%d tokens, %.1f tokens/s), stop: %s\n",
		t.LoadMS, t.EncodeMS, t.PrefillMS, res.PromptTokens, t.DecodeMS, len(res.IDs), t.DecodeTokensPerS, res.StopReason)
	return nil
}
