package llava

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/llama"
	"github.com/avq/avq/vit"
)

// SelectFeatures runs the tower on pixel values [3, S, S] to the feature
// layer and applies LLaVA's selection: [576, Dv] with the class token dropped.
func (m *Model) SelectFeatures(pixels []float32) (backend.Tensor, error) {
	if m.Vision == nil || m.Vision.From != vit.Pixels {
		return nil, fmt.Errorf("llava: the vision tower is not loaded from the pixels")
	}
	x, err := m.Vision.Features(m.B, pixels, m.Checkpoint.FeatureLayer)
	if err != nil {
		return nil, err
	}
	return m.selectTokens(x), nil
}

// selectTokens drops the class token when the checkpoint's strategy says so.
func (m *Model) selectTokens(x backend.Tensor) backend.Tensor {
	if m.Checkpoint.DropCLS {
		return m.B.Rows(x, 1, x.Shape()[0])
	}
	return x
}

// Project maps selected features [N, Dv] to the language model's space [N, H].
func (m *Model) Project(features backend.Tensor) backend.Tensor {
	n, h := features.Shape()[0], m.Checkpoint.Text.HiddenSize
	dst, tmp := m.B.New(n, h), m.B.New(n, h)
	m.Projector.Forward(m.B, dst, features, tmp)
	return dst
}

// Request is one generation: a rendered prompt, the projected image (or nil
// for a text-only prompt), and how to sample and when to stop.
type Request struct {
	Prompt Prompt
	// PromptIDs, when set, are Prompt already tokenized by PromptIDs (a
	// caller that checked the prompt's length need not tokenize it twice).
	PromptIDs []int32
	Image     backend.Tensor // [N, H] projected features, nil for none
	MaxTokens int            // new tokens at most; 0 means 128
	Sampling  llama.Sampling
	Stop      []string
	// OnText, when set, receives the answer as it is generated; an error from
	// it stops generation and is returned.
	OnText func(text string) error
}

// Result is what a generation produced.
type Result struct {
	PromptIDs    []int32 // the ids before image expansion (one image id where the features go)
	PromptTokens int     // positions the decoder saw for the prompt (image expanded)
	IDs          []int32 // the generated ids, EOS included when generation stopped on it
	Text         string  // the answer, special tokens skipped, cut before a stop string
	StopReason   string  // "eos", "stop" or "length"
	PrefillTime  time.Duration
	DecodeTime   time.Duration
	DecodeSteps  int // Decode calls (the first token comes from the prefill)
}

// DefaultMaxTokens is the answer length when a request does not say.
const DefaultMaxTokens = 128

// PromptIDs tokenizes a rendered prompt the way the checkpoint's layout does:
// llava-hf keeps "<image>" as its added token; the original layout tokenizes
// the text around it chunk by chunk and puts the sentinel −200 there. Added
// tokens count only where the template put them (see Prompt).
func (m *Model) PromptIDs(prompt Prompt) []int32 {
	if m.Checkpoint.Layout == LayoutOriginal {
		return m.Tokenizer.EncodeImageChunksControlled(prompt.Text, prompt.Controls, m.Checkpoint.ImageToken)
	}
	return m.Tokenizer.EncodeControlled(prompt.Text, prompt.Controls, true)
}

// Generate runs a request: prompt embeddings with the image spliced in,
// prefill, then one token at a time until EOS, a stop string, the token limit
// or the context's end. ctx cancels between tokens.
func (m *Model) Generate(ctx context.Context, req Request) (*Result, error) {
	if m.LLM == nil {
		return nil, fmt.Errorf("llava: the language model is not loaded")
	}
	b, cfg := m.B, m.LLM.Config
	res := &Result{PromptIDs: req.PromptIDs}
	if res.PromptIDs == nil {
		res.PromptIDs = m.PromptIDs(req.Prompt)
	}
	embeds, err := m.embedPrompt(res.PromptIDs, req.Image)
	if err != nil {
		return nil, err
	}
	n := embeds.Shape()[0]
	if ml := m.Checkpoint.MaxLength; ml > 0 && n > ml {
		// original LLaVA cuts the merged sequence to tokenizer_model_max_length.
		embeds, n = b.Rows(embeds, 0, ml), ml
	}
	res.PromptTokens = n
	if n >= cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("llava: the prompt takes %d positions; the model's context is %d", n, cfg.MaxPositionEmbeddings)
	}
	maxNew := req.MaxTokens
	if maxNew <= 0 {
		maxNew = DefaultMaxTokens
	}
	maxNew = min(maxNew, cfg.MaxPositionEmbeddings-n)
	st, err := m.LLM.NewState(b, n+maxNew)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	logits, err := st.Prefill(embeds)
	if err != nil {
		return nil, err
	}
	res.PrefillTime = time.Since(t0)
	if m.onPrefill != nil {
		m.onPrefill(logits)
	}

	sampler := llama.NewSampler(req.Sampling)
	out := newStopWriter(m.Tokenizer.NewStreamDecoder(true), req.Stop, req.OnText)
	res.StopReason = "length"
	t1 := time.Now()
	for len(res.IDs) < maxNew {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id := sampler.Next(logits)
		res.IDs = append(res.IDs, id)
		if cfg.IsEOS(id) {
			res.StopReason = "eos"
			break
		}
		hit, err := out.push(id)
		if err != nil {
			return nil, err
		}
		if hit {
			res.StopReason = "stop"
			break
		}
		if len(res.IDs) == maxNew {
			break
		}
		if logits, err = st.Decode(id); err != nil {
			return nil, err
		}
		res.DecodeSteps++
	}
	res.DecodeTime = time.Since(t1)
	if err := out.flush(); err != nil {
		return nil, err
	}
	res.Text = out.text.String()
	return res, nil
}

// embedPrompt embeds the prompt ids, splicing the image features in at the
// image id: [len(ids) − 1 + N, H].
func (m *Model) embedPrompt(ids []int32, image backend.Tensor) (backend.Tensor, error) {
	b, img := m.B, m.Checkpoint.ImageToken
	at := -1
	for i, id := range ids {
		if id == img {
			if at >= 0 {
				return nil, fmt.Errorf("%w: the prompt has more than one %s", ErrNoImage, ImagePlaceholder)
			}
			at = i
		}
	}
	switch {
	case at >= 0 && image == nil:
		return nil, fmt.Errorf("%w: the prompt has %s but no image was given", ErrNoImage, ImagePlaceholder)
	case at < 0 && image != nil:
		return nil, fmt.Errorf("%w: an image was given but the prompt has no %s", ErrNoImage, ImagePlaceholder)
	}
	d := m.LLM.Config.HiddenSize
	if at < 0 {
		e := b.New(len(ids), d)
		return e, m.LLM.Embed(b, e, ids)
	}
	nimg := image.Shape()[0]
	e := b.New(len(ids)-1+nimg, d)
	if at > 0 {
		if err := m.LLM.Embed(b, b.Rows(e, 0, at), ids[:at]); err != nil {
			return nil, err
		}
	}
	b.Copy(e, at, image)
	if rest := ids[at+1:]; len(rest) > 0 {
		if err := m.LLM.Embed(b, b.Rows(e, at+nimg, at+nimg+len(rest)), rest); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// stopWriter streams decoded text, holding back any tail that could be the
// start of a stop string, and cuts the text where one appears.
type stopWriter struct {
	dec interface {
		Push(int32) string
		Flush() string
	}
	stops   []string
	on      func(string) error
	text    strings.Builder // everything emitted
	pending string          // decoded but held back
	stopped bool
}

func newStopWriter(dec interface {
	Push(int32) string
	Flush() string
}, stops []string, on func(string) error) *stopWriter {
	var s []string
	for _, x := range stops {
		if x != "" {
			s = append(s, x)
		}
	}
	return &stopWriter{dec: dec, stops: s, on: on}
}

// push decodes one id; it reports whether a stop string has appeared.
func (w *stopWriter) push(id int32) (bool, error) {
	return w.add(w.dec.Push(id))
}

func (w *stopWriter) add(s string) (bool, error) {
	w.pending += s
	cut := -1
	for _, x := range w.stops {
		if i := strings.Index(w.pending, x); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		w.stopped = true
		err := w.emit(w.pending[:cut])
		w.pending = ""
		return true, err
	}
	hold := 0
	for _, x := range w.stops {
		for k := min(len(x)-1, len(w.pending)); k > hold; k-- {
			if strings.HasSuffix(w.pending, x[:k]) {
				hold = k
				break
			}
		}
	}
	err := w.emit(w.pending[:len(w.pending)-hold])
	w.pending = w.pending[len(w.pending)-hold:]
	return false, err
}

func (w *stopWriter) flush() error {
	if w.stopped {
		return nil
	}
	if _, err := w.add(w.dec.Flush()); err != nil {
		return err
	}
	err := w.emit(w.pending)
	w.pending = ""
	return err
}

func (w *stopWriter) emit(s string) error {
	if s == "" {
		return nil
	}
	w.text.WriteString(s)
	if w.on != nil {
		return w.on(s)
	}
	return nil
}
