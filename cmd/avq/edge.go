package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/serve"
	"github.com/avq/avq/vq"
)

func cmdEdge(c *cli, args []string) error {
	fs := c.flags("edge", "--model DIR --vq FILE --image FILE (--out FRAME | --cloud URL --prompt TEXT) [flags]")
	model := fs.String("model", "", "checkpoint `folder`; only the embeddings and the blocks up to the split are read")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	vqPath := fs.String("vq", "", "AlignedVQ module `file` (alignedvq.safetensors)")
	image := fs.String("image", "", "image `file`")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	exif := fs.Bool("exif", false, "apply the EXIF orientation (the reference does not)")
	stats := fs.Bool("token-stats", false, "send each token's LayerNorm mean and deviation (exact residual, 4 bytes a token)")
	out := fs.String("out", "", "frame `file` to write")
	var cf cloudFlags
	cf.register(fs)
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model", "vq", "image"); err != nil {
		return err
	}
	if *out == "" && cf.url == "" {
		return fmt.Errorf("give --out, --cloud or both")
	}
	if err := cf.check(fs); err != nil {
		return err
	}
	imgOpt, err := imageOptions(*aspect, *exif)
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := loadEdge(c, *model, *tower, *vqPath)
	if err != nil {
		return err
	}
	defer m.Checkpoint.Close()
	load := time.Since(t0)
	t1 := time.Now()
	pixels, err := m.Checkpoint.Pixels(*image, imgOpt)
	if err != nil {
		return err
	}
	e, err := m.EncodeFrame(pixels, *stats)
	if err != nil {
		return err
	}
	compute := time.Since(t1)
	if *out != "" {
		if err := os.WriteFile(*out, e.Frame, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: %d bytes (%d tokens × %d bits, split at block %d %s)\n",
			*out, len(e.Frame), len(e.Quantized.Indices), m.VQ.Bits, m.VQ.Block, m.VQ.Site)
	}
	if cf.url == "" {
		fmt.Fprintf(c.stderr, "load %.0f ms, edge compute %.0f ms\n", ms(load), ms(compute))
		return nil
	}
	return cf.ask(c, m, e.Frame, load, compute)
}

// loadEdge loads what an edge device runs: the tower up to the module's split.
func loadEdge(c *cli, model, tower, vqPath string) (*llava.Model, error) {
	ck, err := llava.Open(model, llava.OpenOptions{VisionTower: tower})
	if err != nil {
		return nil, err
	}
	m, err := loadWithVQ(c, ck, vqPath, func(mod *vq.Module) (llava.Parts, error) { return ck.EdgeParts(mod) }, "", false)
	if err != nil {
		ck.Close()
		return nil, err
	}
	return m, nil
}

// loadWithVQ loads a module, the parts of ck that parts says, and attaches it.
func loadWithVQ(c *cli, ck *llava.Checkpoint, vqPath string, parts func(*vq.Module) (llava.Parts, error), lora string, merge bool) (*llava.Model, error) {
	b := c.backend()
	mod, err := vq.Load(vqPath, b)
	if err != nil {
		return nil, err
	}
	p, err := parts(mod)
	if err != nil {
		return nil, err
	}
	m, err := llava.Load(ck, b, llava.LoadOptions{Parts: p, LoRA: lora, LoRAMerge: merge})
	if err != nil {
		return nil, err
	}
	return m, m.AttachVQ(mod)
}

// cloudFlags are the edge's client flags: where the cloud is, the question
// and how to sample, and the emulated link.
type cloudFlags struct {
	url       string
	prompt    string
	apiKey    string
	bandwidth string
	rtt       time.Duration
	json      bool
	retries   int
	gen       genFlags
}

func (cf *cloudFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.url, "cloud", "", "server `URL` (avq serve): send the frame there and stream the answer")
	fs.StringVar(&cf.prompt, "prompt", "", "with --cloud, the question, taken literally")
	fs.StringVar(&cf.apiKey, "api-key", "", "with --cloud, the server's bearer token (default: $AVQ_API_KEY)")
	fs.StringVar(&cf.bandwidth, "bandwidth", "", "with --cloud, shape the link to this `rate` each way: 250kbit, 2.5mbit, 1gbit (bits per second)")
	fs.DurationVar(&cf.rtt, "rtt", 0, "with --cloud, add this round-trip `time` to the link")
	fs.BoolVar(&cf.json, "json", false, "with --cloud, print one JSON object instead of streaming the answer")
	fs.IntVar(&cf.retries, "retries", 3, "with --cloud, send the request again at most this many times after a failed connection, "+
		"an answer cut mid-stream or a 429/502/503 (with backoff, honouring Retry-After)")
	cf.gen.register(fs)
}

// check refuses client flags without --cloud and a --cloud without a prompt.
func (cf *cloudFlags) check(fs *flag.FlagSet) error {
	if cf.url == "" {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "prompt", "api-key", "bandwidth", "rtt", "json", "retries", "template", "max-tokens", "temperature", "top-k", "top-p", "seed", "stop":
				set = append(set, "--"+f.Name)
			}
		})
		if len(set) > 0 {
			return fmt.Errorf("%s need --cloud", strings.Join(set, ", "))
		}
		return nil
	}
	if cf.prompt == "" {
		return fmt.Errorf("--cloud needs --prompt")
	}
	if cf.retries < 0 {
		return fmt.Errorf("--retries %d: want at least 0", cf.retries)
	}
	if cf.apiKey == "" {
		cf.apiKey = os.Getenv("AVQ_API_KEY")
	}
	// The template goes with the request only when asked for; otherwise
	// the server's applies.
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "template" })
	if !explicit {
		cf.gen.template = ""
	}
	return nil
}

// link is the emulated network path the flags ask for.
func (cf *cloudFlags) link() (serve.Link, error) {
	l := serve.Link{RTT: cf.rtt}
	if cf.rtt < 0 {
		return l, fmt.Errorf("--rtt must not be negative")
	}
	if cf.bandwidth != "" {
		var err error
		if l.Rate, err = serve.ParseRate(cf.bandwidth); err != nil {
			return l, err
		}
	}
	return l, nil
}

// edgeOutput is the --json object of avq edge --cloud.
type edgeOutput struct {
	PromptIDs     []int32     `json:"prompt_ids"`
	IDs           []int32     `json:"ids"`
	Text          string      `json:"text"`
	StopReason    string      `json:"stop_reason"`
	FrameBytes    int         `json:"frame_bytes"`
	BodyBytes     int         `json:"body_bytes"`
	BytesSent     int64       `json:"bytes_sent"`
	BytesReceived int64       `json:"bytes_received"`
	Retries       int         `json:"retries"` // sends after the first
	Timings       edgeTimings `json:"timings"`
}

type edgeTimings struct {
	LoadMS       float64       `json:"load_ms"`
	EdgeMS       float64       `json:"edge_ms"`        // preprocessing, the head and the codebook search
	TransferMS   float64       `json:"transfer_ms"`    // the exchange less the server's time
	FirstTokenMS float64       `json:"first_token_ms"` // from the image to the first text: edge, upload, cloud, first token
	TotalMS      float64       `json:"total_ms"`       // from the image to the end of the answer
	Server       serve.Timings `json:"server"`
}

// ask sends a frame to the cloud and streams the answer.
func (cf *cloudFlags) ask(c *cli, m *llava.Model, frame []byte, load, edge time.Duration) error {
	sampling, err := cf.gen.sampling()
	if err != nil {
		return err
	}
	link, err := cf.link()
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	d := &serve.Dialer{Link: link}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DialContext: d.DialContext, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := serve.Client{URL: cf.url, APIKey: cf.apiKey, HTTP: &http.Client{Transport: tr}, Retry: serve.Retry{Attempts: 1 + cf.retries}}
	req := serve.Request{Frame: frame, Prompt: cf.prompt, Template: cf.gen.template, MaxTokens: cf.gen.maxTokens,
		Sampling: sampling, Stop: cf.gen.stop}
	var onText func(string) error
	if !cf.json {
		onText = func(s string) error { _, err := fmt.Fprint(c.stdout, s); return err }
	}
	ans, err := client.Answer(ctx, req, onText)
	if err != nil {
		return err
	}
	if want := hex.EncodeToString(m.VQ.Fingerprint[:]); ans.Fingerprint != want {
		return fmt.Errorf("the server's codebook fingerprint %q is not this module's %s", ans.Fingerprint, want)
	}
	sent, received := d.Bytes()
	out := edgeOutput{PromptIDs: ans.PromptIDs, IDs: ans.IDs, Text: ans.Text, StopReason: ans.StopReason,
		FrameBytes: len(frame), BodyBytes: ans.BodyBytes, BytesSent: sent, BytesReceived: received, Retries: ans.Retries,
		Timings: edgeTimings{LoadMS: ms(load), EdgeMS: ms(edge), TransferMS: max(0, ms(ans.Total)-ans.Server.TotalMS()),
			TotalMS: ms(edge + ans.Total), Server: ans.Server}}
	if ans.FirstText > 0 {
		out.Timings.FirstTokenMS = ms(edge + ans.FirstText)
	}
	if cf.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	fmt.Fprintln(c.stdout)
	t := out.Timings
	fmt.Fprintf(c.stderr, "load %.0f ms; edge compute %.0f ms; frame %d bytes, %d sent and %d received on the wire; "+
		"transfer %.0f ms; first token %.0f ms after the image, answer %.0f ms; cloud: %s; stop: %s\n",
		t.LoadMS, t.EdgeMS, out.FrameBytes, sent, received, t.TransferMS, t.FirstTokenMS, t.TotalMS,
		describeServer(ans.Server), ans.StopReason)
	return nil
}

// describeServer formats a server's timings.
func describeServer(t serve.Timings) string {
	s := fmt.Sprintf("queue %.0f ms", t.QueueMS)
	if t.DecodeFrameMS > 0 {
		s += fmt.Sprintf(", decode frame %.2f ms, vision tail %.0f ms", t.DecodeFrameMS, t.VisionMS)
	} else {
		s += fmt.Sprintf(", decode image %.0f ms, vision %.0f ms", t.DecodeImageMS, t.VisionMS)
	}
	return s + fmt.Sprintf(", prefill %.0f ms, decode %.0f ms", t.PrefillMS, t.DecodeMS)
}
