package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/llava/preprocess"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/serve"
	"github.com/avq/avq/tensor"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// avq bench split measures the paper's Figure 6: the latency of one image
// through the AlignedVQ split against the cloud-only uploads of the image as
// JPEG at quality 90 and 10, over links of several bandwidths. Everything is
// real: a server on loopback, the edge head and the JPEG encoder timed
// here, each upload through a link shaped by serve.Link, the cloud's vision
// timed by the server. The language model is not part of it: requests carry
// max_tokens=0, so the server runs the vision side and the projector and
// returns its timings.

// splitMethods are what is compared, in the order of the table.
var splitMethods = []struct {
	name    string
	quality int // JPEG quality; 0 for the split
}{{"avq-split", 0}, {"jpeg-90", 90}, {"jpeg-10", 10}}

// splitRow is one measurement: one method at one bandwidth.
type splitRow struct {
	mbit                         float64
	method                       string
	payload, sent                int64 // the frame or JPEG; all bytes on the wire upstream
	edge, transfer, cloud, total time.Duration
	speedup                      float64 // this row's total over the split's at the same bandwidth
}

func benchSplit(c *cli, args []string) error {
	fs := c.flags("bench split", "[--model DIR --vq FILE | --shape vit-l-336] [--bandwidths 0.25,0.5,1,2,4] [--rtt D] [--image FILE] [--reps N] [--csv FILE] [--svg FILE] [--json]")
	model := fs.String("model", "", "checkpoint `folder` (with --vq) instead of --shape")
	vqPath := fs.String("vq", "", "AlignedVQ module `file` for --model")
	shape := fs.String("shape", "", "random weights of a real shape: vit-l-336 (CLIP ViT-L/14-336 and a 4096-entry module at block 0 ln1); the default without --model")
	bandwidths := fs.String("bandwidths", "0.25,0.5,1,2,4", "link `rates` in Mbit/s, comma-separated")
	rtt := fs.Duration("rtt", 0, "round-trip `time` added to the link")
	imagePath := fs.String("image", "", "image `file` (default: a generated 640×480 test picture)")
	reps := fs.Int("reps", 3, "repetitions of each measurement; the fastest is reported (the least disturbed by other work on the machine)")
	csvPath := fs.String("csv", "", "also write the table as CSV to `file`")
	svgPath := fs.String("svg", "", "also draw the latencies as an SVG chart in `file`")
	asJSON := fs.Bool("json", false, "print one JSON object per row instead of a table")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	rates, err := parseBandwidths(*bandwidths)
	if err != nil {
		return err
	}
	switch {
	case *model != "" && *shape != "":
		return fmt.Errorf("give --model or --shape, not both")
	case *model != "" && *vqPath == "":
		return fmt.Errorf("--model needs --vq")
	case *model == "" && *shape == "":
		*shape = "vit-l-336"
	}
	if *reps < 1 {
		return fmt.Errorf("--reps must be at least 1")
	}
	if *model == "" {
		if *shape != "vit-l-336" {
			return fmt.Errorf("--shape %q: only vit-l-336 is known", *shape)
		}
		dir, err := os.MkdirTemp("", "avq-bench-split-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintf(c.stderr, "writing random ViT-L/14-336 weights to %s\n", dir)
		if *model, *vqPath, err = writeShapeCheckpoint(dir, vit.ViTL14_336(), 4096, 4096); err != nil {
			return err
		}
	}
	img, err := benchImage(*imagePath)
	if err != nil {
		return err
	}

	m, err := loadVisionSide(c, *model, *vqPath)
	if err != nil {
		return err
	}
	defer m.Checkpoint.Close()
	opt := serve.DefaultOptions()
	opt.Name, opt.MaxBody = "bench", 256<<20
	opt.DrainDelay = 0 // no balancer watches this in-process server
	srv, err := serve.New(opt)
	if err != nil {
		return err
	}
	if err := <-srv.Load(func() (*llava.Model, error) { return m, nil }); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	b := &splitBench{m: m, url: "http://" + ln.Addr().String(), img: img, rtt: *rtt}
	fmt.Fprintf(c.stderr, "image %d×%d; warming up\n", img.W, img.H)
	for _, meth := range splitMethods { // page the weights in, size the scratch
		if _, err := b.measure(0, meth.quality); err != nil {
			return err
		}
	}
	var rows []splitRow
	for _, mbit := range rates {
		// The methods take turns within each repetition, so that a spell of
		// other work on the machine does not fall on one method alone.
		runs := make([][]splitRow, len(splitMethods))
		for range *reps {
			for i, meth := range splitMethods {
				r, err := b.measure(mbit, meth.quality)
				if err != nil {
					return err
				}
				r.method = meth.name
				runs[i] = append(runs[i], r)
			}
		}
		var group []splitRow
		for i, meth := range splitMethods {
			var totals []string
			for _, r := range runs[i] {
				totals = append(totals, fmt.Sprintf("%.0f", millis(r.total)))
			}
			group = append(group, slices.MinFunc(runs[i], func(x, y splitRow) int { return int(x.total - y.total) }))
			fmt.Fprintf(c.stderr, "%g Mbit/s %s: %s ms\n", mbit, meth.name, strings.Join(totals, ", "))
		}
		for i := range group {
			group[i].speedup = float64(group[i].total) / float64(group[0].total)
		}
		rows = append(rows, group...)
	}
	if *csvPath != "" {
		if err := writeSplitCSV(*csvPath, rows); err != nil {
			return err
		}
	}
	if *svgPath != "" {
		if err := os.WriteFile(*svgPath, []byte(splitSVG(rows, rates)), 0o644); err != nil {
			return err
		}
	}
	return report(c.stdout, *asJSON, splitReportRows(rows))
}

func parseBandwidths(s string) ([]float64, error) {
	var rates []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0) || v > 1e5 {
			return nil, fmt.Errorf("--bandwidths: %q is not a rate in Mbit/s", f)
		}
		rates = append(rates, v)
	}
	return rates, nil
}

// loadVisionSide loads what the measurement runs: the tower from the
// pixels, the projector when the checkpoint has one, and the module. One
// model serves as the edge head here and as the server's tail.
func loadVisionSide(c *cli, model, vqPath string) (*llava.Model, error) {
	ck, err := llava.Open(model, llava.OpenOptions{})
	if err != nil {
		return nil, err
	}
	m, err := loadWithVQ(c, ck, vqPath, func(*vq.Module) (llava.Parts, error) {
		p := ck.VisionParts()
		p.Projector = ck.Text != nil
		return p, nil
	}, "", false)
	if err != nil {
		ck.Close()
		return nil, err
	}
	return m, nil
}

type splitBench struct {
	m   *llava.Model
	url string
	img *preprocess.Image
	rtt time.Duration
}

// measure sends the image once over a fresh connection through a link of
// mbit Mbit/s (0: unshaped): as a frame (quality 0) or as a JPEG.
func (b *splitBench) measure(mbit float64, quality int) (splitRow, error) {
	r := splitRow{mbit: mbit}
	var req serve.Request
	t0 := time.Now()
	if quality == 0 {
		e, err := b.m.EncodeFrame(b.m.Checkpoint.PixelsOf(b.img, llava.ImageOptions{}), false)
		if err != nil {
			return r, err
		}
		req.Frame = e.Frame
	} else {
		jpg, err := b.m.Checkpoint.BaselineJPEG(b.img, llava.ImageOptions{JPEGQuality: quality})
		if err != nil {
			return r, err
		}
		req.Image = jpg
	}
	r.edge = time.Since(t0)
	r.payload = int64(len(req.Frame) + len(req.Image))
	d := &serve.Dialer{Link: serve.Link{Rate: int64(mbit * 1e6), RTT: b.rtt}}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := serve.Client{URL: b.url, HTTP: &http.Client{Transport: tr}}
	ans, err := client.Answer(context.Background(), req, nil)
	if err != nil {
		return r, err
	}
	r.sent, _ = d.Bytes()
	r.cloud = time.Duration(ans.Server.TotalMS() * 1e6)
	r.transfer = max(0, ans.Total-r.cloud)
	r.total = r.edge + ans.Total
	return r, nil
}

func splitReportRows(rows []splitRow) []row {
	var out []row
	for _, r := range rows {
		out = append(out, row{
			{"mbit_s", r.mbit}, {"method", r.method}, {"payload_bytes", r.payload}, {"sent_bytes", r.sent},
			{"edge_ms", millis(r.edge)}, {"transfer_ms", millis(r.transfer)}, {"cloud_ms", millis(r.cloud)},
			{"total_ms", millis(r.total)}, {"split_speedup", r.speedup},
		})
	}
	return out
}

func writeSplitCSV(path string, rows []splitRow) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"mbit_s", "method", "payload_bytes", "sent_bytes", "edge_ms", "transfer_ms", "cloud_ms", "total_ms", "split_speedup"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, r := range rows {
		w.Write([]string{strconv.FormatFloat(r.mbit, 'g', -1, 64), r.method, strconv.FormatInt(r.payload, 10), strconv.FormatInt(r.sent, 10),
			f(millis(r.edge)), f(millis(r.transfer)), f(millis(r.cloud)), f(millis(r.total)), f(r.speedup)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// splitSVG draws grouped, stacked bars: for each bandwidth one bar per
// method, split into edge compute, transfer and cloud time.
func splitSVG(rows []splitRow, rates []float64) string {
	const (
		width, height           = 760, 420
		left, right, top, below = 70, 170, 40, 60
		plotW, plotH            = width - left - right, height - top - below
	)
	peak := 0.0
	for _, r := range rows {
		peak = max(peak, millis(r.total))
	}
	step := niceStep(peak / 5)
	ymax := math.Ceil(peak/step) * step
	y := func(ms float64) float64 { return top + plotH - ms/ymax*plotH }
	colors := map[string]string{"avq-split": "#1f77b4", "jpeg-90": "#d62728", "jpeg-10": "#ff7f0e"}
	parts := []struct {
		name    string
		opacity float64
	}{{"edge compute", 1}, {"transfer", 0.6}, {"cloud vision", 0.3}}

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&s, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&s, `<text x="%d" y="22" font-size="15">Time to the image features, AlignedVQ split vs cloud-only JPEG</text>`+"\n", left)
	for v := 0.0; v <= ymax+step/2; v += step {
		fmt.Fprintf(&s, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, left+plotW, y(v), y(v))
		fmt.Fprintf(&s, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, strconv.FormatFloat(v/1000, 'g', 4, 64))
	}
	fmt.Fprintf(&s, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">latency (s)</text>`+"\n", top+plotH/2)
	groupW := float64(plotW) / float64(len(rates))
	barW := groupW * 0.8 / float64(len(splitMethods))
	for gi, rate := range rates {
		gx := float64(left) + float64(gi)*groupW + groupW*0.1
		for mi, meth := range splitMethods {
			var r *splitRow
			for i := range rows {
				if rows[i].mbit == rate && rows[i].method == meth.name {
					r = &rows[i]
				}
			}
			if r == nil {
				continue
			}
			x, base := gx+float64(mi)*barW, 0.0
			for pi, ms := range []float64{millis(r.edge), millis(r.transfer), millis(r.cloud)} {
				fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%g"><title>%s %g Mbit/s %s: %.0f ms</title></rect>`+"\n",
					x, y(base+ms), barW-2, y(base)-y(base+ms), colors[meth.name], parts[pi].opacity, meth.name, rate, parts[pi].name, ms)
				base += ms
			}
		}
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", gx+groupW*0.4, top+plotH+18, rate)
	}
	fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="middle">uplink bandwidth (Mbit/s)</text>`+"\n", left+plotW/2, height-18)
	lx := left + plotW + 20
	for i, meth := range splitMethods {
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="14" height="14" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, top+i*22, colors[meth.name], lx+20, top+i*22+12, meth.name)
	}
	for i, p := range parts {
		yy := top + (len(splitMethods)+1+i)*22
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="14" height="14" fill="#555" fill-opacity="%g"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, yy, p.opacity, lx+20, yy+12, p.name)
	}
	s.WriteString("</svg>\n")
	return s.String()
}

// niceStep rounds a grid step up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if !(x > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// benchImage reads the image, or makes the default test picture: smooth
// colour gradients, a few flat shapes and mild noise, so that JPEG sizes are
// those of a picture rather than of a flat or a random field.
func benchImage(path string) (*preprocess.Image, error) {
	if path != "" {
		return preprocess.DecodeFile(path, preprocess.DecodeOptions{})
	}
	const w, h = 640, 480
	img := &preprocess.Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
	x := uint64(0x9e3779b97f4a7c15)
	for py := range h {
		for px := range w {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			noise := float64(int(x%17) - 8)
			fx, fy := float64(px)/w, float64(py)/h
			rgb := [3]float64{255 * fx, 255 * fy, 255 * (0.5 + 0.5*math.Sin(6*fx+4*fy))}
			switch {
			case (fx-0.3)*(fx-0.3)+(fy-0.35)*(fy-0.35) < 0.02:
				rgb = [3]float64{220, 30, 30}
			case fx > 0.55 && fx < 0.85 && fy > 0.2 && fy < 0.6:
				rgb = [3]float64{30, 60, 200}
			case fy > 0.7 && math.Abs(fx-0.5) < (fy-0.7)*1.2:
				rgb = [3]float64{20, 170, 60}
			}
			for ch := range 3 {
				img.Pix[(py*w+px)*3+ch] = uint8(min(255, max(0, rgb[ch]+noise)))
			}
		}
	}
	return img, nil
}

// writeShapeCheckpoint writes a llava-hf folder with random fp16 weights:
// the vision tower of cfg up to LLaVA's feature layer (hidden state −2; the
// last block never runs, so it is left out) and a projector to textHidden,
// with a text_config but no language model or tokenizer (the measurement
// never generates). Beside it goes a module of K random codes at block 0
// ln1, with a random DLP. It returns the folder and the module's path.
func writeShapeCheckpoint(dir string, cfg vit.Config, textHidden, k int) (string, string, error) {
	visionCfg, err := json.Marshal(cfg)
	if err != nil {
		return "", "", err
	}
	config := fmt.Sprintf(`{"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
 "image_token_index": 32000, "projector_hidden_act": "gelu", "vision_feature_layer": -2,
 "vision_feature_select_strategy": "default", "vision_config": %s,
 "text_config": {"model_type": "llama", "hidden_size": %d, "num_attention_heads": %d, "vocab_size": 32064}}`,
		visionCfg, textHidden, max(1, textHidden/128))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		return "", "", err
	}
	src := vitSource(cfg, cfg.NumHiddenLayers-1)
	pre := "vision_tower.vision_model."
	d := cfg.HiddenSize
	for name, shape := range map[string][]int{
		"multi_modal_projector.linear_1.weight": {textHidden, d}, "multi_modal_projector.linear_1.bias": {textHidden},
		"multi_modal_projector.linear_2.weight": {textHidden, textHidden}, "multi_modal_projector.linear_2.bias": {textHidden},
	} {
		src.add(name, shape...)
	}
	var entries []safetensors.Entry
	for _, name := range src.Names() { // 1-D F32 first keeps every tensor aligned
		shape := src.shapes[name]
		dt := src.dtype
		if len(shape) == 1 {
			dt = tensor.F32
		}
		full := name
		if !strings.HasPrefix(name, "multi_modal_projector.") {
			full = pre + name
		}
		entries = append(entries, safetensors.Entry{Name: full, DType: dt, Shape: shape,
			Lazy: func() (*tensor.Tensor, error) { return src.Tensor(name) }})
	}
	slices.SortStableFunc(entries, func(a, b safetensors.Entry) int { return len(a.Shape) - len(b.Shape) })
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), entries, map[string]string{"format": "pt"}); err != nil {
		return "", "", err
	}

	random := func(n int, seed uint64, std float32) []float32 {
		t := tensor.New(tensor.F32, n)
		fillRandom(t, seed, std)
		return t.F32()
	}
	ones := make([]float32, d)
	for i := range ones {
		ones[i] = 1
	}
	md := &vq.ModuleData{Block: 0, Site: "ln1", K: k, D: d, Codebook: random(k*d, 1, 1),
		DLPIn:  &vq.DLPData{Weight: random(d*d, 2, 0.02), Bias: make([]float32, d), Gamma: 0.1},
		DLPOut: &vq.DLPData{Weight: random(d*d, 3, 0.02), Bias: make([]float32, d), Gamma: 0.1},
		Scale:  ones, Shift: make([]float32, d)}
	vqPath := filepath.Join(dir, "alignedvq.safetensors")
	if err := vq.WriteModule(vqPath, md); err != nil {
		return "", "", err
	}
	return dir, vqPath, nil
}
