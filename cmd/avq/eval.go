package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/eval"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/serve"
	"github.com/avq/avq/vq"
)

func cmdEval(c *cli, args []string) error {
	fs := c.flags("eval", "--task vqav2|gqa|pope|textvqa --questions FILE [--annotations FILE] --images DIR --model DIR [--vq FILE] [--cloud URL] --out FILE [--submission FILE --submission-questions FILE]")
	taskName := fs.String("task", "", "benchmark: vqav2, gqa, pope or textvqa")
	questions := fs.String("questions", "", "question `file` (the benchmark's, or LLaVA's .jsonl)")
	annotations := fs.String("annotations", "", "ground-truth `file` or folder, when the questions do not carry it")
	images := fs.String("images", "", "`folder` the questions' image names are relative to")
	model := fs.String("model", "", "checkpoint `folder`; with --cloud only the edge head is loaded")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	vqPath := fs.String("vq", "", "AlignedVQ module `file`: answer through the split (in process, or with --cloud over the network)")
	lora := fs.String("lora", "", "LoRA adapter `folder` (local runs)")
	merge := fs.Bool("lora-merge", false, "merge the adapter into the weights at load")
	cloud := fs.String("cloud", "", "server `URL` (avq serve --vq): run the edge head here, the rest there")
	apiKey := fs.String("api-key", "", "with --cloud, the server's bearer token (default: $AVQ_API_KEY)")
	template := fs.String("template", llava.DefaultTemplate, "prompt template: vicuna_v1, llava_v1, hf or raw")
	maxTokens := fs.Int("max-tokens", llava.DefaultMaxTokens, "new tokens at most per answer")
	aspect := fs.String("aspect", "", "pad or crop (default: the checkpoint's)")
	jpegQuality := fs.Int("jpeg-quality", 0, "cloud-only JPEG baseline: send each image as the model image JPEG-encoded at this quality (1–100)")
	stats := fs.Bool("token-stats", false, "with --vq, put token statistics in the frames")
	out := fs.String("out", "", "predictions `file` (JSON lines); an existing one is resumed")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	submission := fs.String("submission", "", "with --task vqav2, also write the EvalAI results `file` (as LLaVA's convert_vqav2_for_submission.py)")
	submissionQuestions := fs.String("submission-questions", "", "with --submission, the full test2015 question `file` it lists (llava_vqav2_mscoco_test2015.jsonl); unanswered questions get \"\"")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "task", "questions", "images", "model", "out"); err != nil {
		return err
	}
	switch {
	case *cloud != "" && *vqPath == "":
		return fmt.Errorf("--cloud needs --vq: the edge head quantizes with the server's module")
	case *cloud != "" && (*lora != "" || *merge):
		return fmt.Errorf("--lora and --lora-merge go to the server (avq serve --lora), not to the edge")
	case *merge && *lora == "":
		return fmt.Errorf("--lora-merge needs --lora: there is no adapter to merge")
	case *maxTokens <= 0:
		return fmt.Errorf("--max-tokens must be positive")
	case *jpegQuality < 0 || *jpegQuality > 100:
		return fmt.Errorf("--jpeg-quality %d: 1–100 (0: send the image file)", *jpegQuality)
	case *jpegQuality != 0 && (*vqPath != "" || *cloud != ""):
		return fmt.Errorf("--jpeg-quality is the cloud-only baseline; it does not combine with --vq or --cloud")
	case (*submission == "") != (*submissionQuestions == ""):
		return fmt.Errorf("--submission and --submission-questions go together: EvalAI wants every test2015 question listed")
	}
	if err := checkFrameFlags(fs, *vqPath, ""); err != nil {
		return err
	}
	task, err := eval.ParseTask(*taskName)
	if err != nil {
		return err
	}
	if *submission != "" && task != eval.TaskVQAv2 {
		return fmt.Errorf("--submission is for --task vqav2 (the EvalAI results file), not %s", task)
	}
	tmpl, err := llava.LookupTemplate(*template)
	if err != nil {
		return err
	}
	imgOpt, err := imageOptions(*aspect, false)
	if err != nil {
		return err
	}
	imgOpt.JPEGQuality = *jpegQuality
	items, err := eval.LoadItems(task, *questions, *annotations)
	if err != nil {
		return err
	}
	var listed []eval.Item
	if *submission != "" {
		// Read and checked before any question is asked, not after hours of them.
		if listed, err = submissionList(*submissionQuestions, *questions, items); err != nil {
			return err
		}
	}

	a := &evalAnswerer{images: *images, imgOpt: imgOpt, tmpl: tmpl, maxTokens: *maxTokens, stats: *stats, sent: map[string]int{}}
	switch {
	case *cloud != "":
		a.m, err = loadEdge(c, *model, *tower, *vqPath)
		key := *apiKey
		if key == "" {
			key = os.Getenv("AVQ_API_KEY")
		}
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		a.client = &serve.Client{URL: *cloud, APIKey: key, HTTP: &http.Client{Transport: tr}}
	default:
		a.m, err = loadLocal(c, *model, *tower, *vqPath, *lora, *merge)
	}
	if err != nil {
		return err
	}
	defer a.m.Checkpoint.Close()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	progress := eval.NewProgress(c.stderr, isTerminal(c.stderr))
	report, err := eval.Run(ctx, task, items, a, *out, progress.Update)
	progress.Finish()
	if err != nil {
		return err
	}
	if report.Transfer, err = a.transfer(items); err != nil {
		return err
	}
	if *submission != "" {
		if err := writeSubmission(*submission, *out, listed); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(report)
	}
	_, err = fmt.Fprint(c.stdout, report.String())
	return err
}

// submissionList reads the question set a VQAv2 submission lists and checks
// that it holds every question being evaluated.
func submissionList(path, questionsPath string, items []eval.Item) ([]eval.Item, error) {
	listed, err := eval.LoadItems(eval.TaskVQAv2, path, "")
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(listed))
	for _, it := range listed {
		ids[it.QuestionID] = true
	}
	for _, it := range items {
		if !ids[it.QuestionID] {
			return nil, fmt.Errorf("--submission-questions %s lacks question_id %s of %s: it is not the set these questions come from", path, it.QuestionID, questionsPath)
		}
	}
	return listed, nil
}

// writeSubmission writes the EvalAI results file from the predictions file:
// every listed question, answered or "".
func writeSubmission(path, predsPath string, listed []eval.Item) error {
	preds, err := eval.ReadPredictions(predsPath)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--submission: %w", err)
	}
	if err := eval.WriteVQAv2Submission(f, listed, eval.PredictionMap(preds)); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--submission: %w", err)
	}
	return nil
}

// loadLocal loads everything a whole model answers with: the tower from the
// pixels (whole images need it; frames resume it at the split), the
// projector and the language model, with the module attached when given.
func loadLocal(c *cli, model, tower, vqPath, lora string, merge bool) (*llava.Model, error) {
	ck, err := llava.Open(model, llava.OpenOptions{VisionTower: tower, LoRA: lora})
	if err != nil {
		return nil, err
	}
	var m *llava.Model
	if vqPath == "" {
		m, err = llava.Load(ck, c.backend(), llava.LoadOptions{Parts: ck.AllParts(), LoRA: lora, LoRAMerge: merge})
	} else {
		m, err = loadWithVQ(c, ck, vqPath, func(*vq.Module) (llava.Parts, error) { return ck.AllParts(), nil }, lora, merge)
	}
	if err != nil {
		ck.Close()
		return nil, err
	}
	return m, nil
}

// evalAnswerer answers evaluation questions greedily, as LLaVA's evaluation
// does: with the whole local model, through the split in process (m.VQ
// set), or with the edge head here and the rest on a server (client set).
type evalAnswerer struct {
	m         *llava.Model
	client    *serve.Client
	images    string
	imgOpt    llava.ImageOptions
	tmpl      *llava.Template
	maxTokens int
	stats     bool

	mu   sync.Mutex
	sent map[string]int // bytes sent per image answered in this run
}

func (a *evalAnswerer) Answer(ctx context.Context, image, question string) (string, error) {
	s, err := a.m.Checkpoint.Send(filepath.Join(a.images, image), a.imgOpt)
	if err != nil {
		return "", err
	}
	pixels := s.Pixels
	defer func() {
		a.mu.Lock()
		a.sent[image] = s.Bytes
		a.mu.Unlock()
	}()
	var features backend.Tensor
	switch {
	case a.client != nil:
		e, err := a.m.EncodeFrame(pixels, a.stats)
		if err != nil {
			return "", err
		}
		s.Bytes = len(e.Frame)
		ans, err := a.client.Answer(ctx, serve.Request{Frame: e.Frame, Prompt: question, Template: a.tmpl.Name, MaxTokens: a.maxTokens}, nil)
		if err != nil {
			return "", err
		}
		return ans.Text, nil
	case a.m.VQ != nil:
		e, err := a.m.EncodeFrame(pixels, a.stats)
		if err != nil {
			return "", err
		}
		s.Bytes = len(e.Frame)
		res, err := a.m.DecodeFrame(e.Frame)
		if err != nil {
			return "", err
		}
		features = res.Projected
	default:
		f, err := a.m.SelectFeatures(pixels)
		if err != nil {
			return "", err
		}
		features = a.m.Project(f)
	}
	res, err := a.m.Generate(ctx, llava.Request{Prompt: a.tmpl.Prompt(question, true), Image: features, MaxTokens: a.maxTokens})
	if err != nil {
		return "", err
	}
	return res.Text, nil
}

// transfer summarises what was sent per image. Images answered in an earlier
// (resumed) run are measured again here, without asking the model.
func (a *evalAnswerer) transfer(items []eval.Item) (*eval.Transfer, error) {
	what := "image file"
	switch {
	case a.m.VQ != nil:
		what = "AlignedVQ frame"
	case a.imgOpt.JPEGQuality != 0:
		what = fmt.Sprintf("jpeg q%d", a.imgOpt.JPEGQuality)
	}
	total, seen := 0, map[string]bool{}
	for _, it := range items {
		if seen[it.Image] {
			continue
		}
		seen[it.Image] = true
		n, ok := a.sent[it.Image]
		if !ok {
			s, err := a.m.Checkpoint.Send(filepath.Join(a.images, it.Image), a.imgOpt)
			if err != nil {
				return nil, err
			}
			n = s.Bytes
			if a.m.VQ != nil {
				e, err := a.m.EncodeFrame(s.Pixels, a.stats)
				if err != nil {
					return nil, err
				}
				n = len(e.Frame)
			}
		}
		total += n
	}
	if len(seen) == 0 {
		return nil, nil
	}
	return &eval.Transfer{What: what, Images: len(seen), BytesPerImage: float64(total) / float64(len(seen))}, nil
}
