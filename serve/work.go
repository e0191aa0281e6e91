package serve

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/llava/preprocess"
	"github.com/avq/avq/vq"
)

// Timings are what the server spent on a request, by phase, in
// milliseconds. VisionMS is the tower after the split (frames) or the whole
// tower (images), with the projector.
type Timings struct {
	QueueMS       float64 `json:"queue_ms"`
	DecodeFrameMS float64 `json:"decode_frame_ms"`
	DecodeImageMS float64 `json:"decode_image_ms"`
	VisionMS      float64 `json:"vision_ms"`
	PrefillMS     float64 `json:"prefill_ms"`
	DecodeMS      float64 `json:"decode_ms"`
}

// TotalMS is the server's whole time on the request.
func (t Timings) TotalMS() float64 {
	return t.QueueMS + t.DecodeFrameMS + t.DecodeImageMS + t.VisionMS + t.PrefillMS + t.DecodeMS
}

func millis(d time.Duration) float64 { return float64(d) / 1e6 }

// task is one request's model work, parsed and checked.
type task struct {
	endpoint  string
	frame     []byte       // an AlignedVQ frame, or
	image     []byte       // an encoded image file, or neither (text only)
	prompt    llava.Prompt // rendered; unused when maxTokens is 0
	maxTokens int          // 0: the vision side only
	sampling  llama.Sampling
	stop      []string
}

// outcome is what the model did.
type outcome struct {
	result  *llava.Result // nil when nothing was generated
	timings Timings
}

// execute runs a task on the model: the vision side, then generation,
// streaming text to onText. Its error is ready to send.
func (s *Server) execute(ctx context.Context, m *llava.Model, t *task, onText func(string) error) (*outcome, *APIError) {
	out := &outcome{}
	tm := &out.timings
	if err := ctx.Err(); err != nil {
		return nil, s.stopped(ctx, t.endpoint)
	}
	var image backend.Tensor
	switch {
	case t.frame != nil:
		t0 := time.Now()
		f, err := m.VQ.DecodeFrame(t.frame, m.Checkpoint.Vision.Tokens())
		if err != nil {
			return nil, frameError(err)
		}
		tm.DecodeFrameMS = s.phase(phaseDecodeFrame, t0)
		t1 := time.Now()
		res, err := m.CloudTail(f)
		if err != nil {
			return nil, errInternal(err)
		}
		image = res.Projected
		tm.VisionMS = s.phase(phaseVisionTail, t1)
	case t.image != nil:
		t0 := time.Now()
		img, err := preprocess.Decode(t.image, preprocess.DecodeOptions{MaxPixels: s.opt.MaxImagePixels})
		if err != nil {
			return nil, errInvalid("invalid_image", "%v", err)
		}
		pixels := m.Checkpoint.PixelsOf(img, llava.ImageOptions{})
		tm.DecodeImageMS = s.phase(phaseDecodeImage, t0)
		t1 := time.Now()
		f, err := m.SelectFeatures(pixels)
		if err != nil {
			return nil, errInternal(err)
		}
		image = f
		if m.Projector != nil {
			image = m.Project(f)
		}
		tm.VisionMS = s.phase(phaseVision, t1)
	}
	if t.maxTokens == 0 {
		return out, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, s.stopped(ctx, t.endpoint)
	}
	ids, e := checkContext(m, t.prompt, image)
	if e != nil {
		return nil, e
	}
	if hook := s.textHook; hook != nil {
		inner := onText
		onText = func(text string) error {
			var err error
			if inner != nil {
				err = inner(text)
			}
			hook(ctx)
			return err
		}
	}
	res, err := m.Generate(ctx, llava.Request{Prompt: t.prompt, PromptIDs: ids, Image: image, MaxTokens: t.maxTokens,
		Sampling: t.sampling, Stop: t.stop, OnText: onText})
	switch {
	case err != nil && (ctx.Err() != nil || errors.Is(err, errClientGone)):
		return nil, s.stopped(ctx, t.endpoint)
	case errors.Is(err, llava.ErrNoImage):
		return nil, errInvalid("image_placeholder", "%v", err)
	case err != nil:
		return nil, errInternal(err)
	}
	out.result = res
	tm.PrefillMS, tm.DecodeMS = millis(res.PrefillTime), millis(res.DecodeTime)
	s.metrics.observe(phasePrefill, res.PrefillTime)
	if res.DecodeSteps > 0 {
		s.metrics.observe(phaseDecode, res.DecodeTime)
	}
	s.metrics.tokens(res.PromptTokens, len(res.IDs))
	return out, nil
}

func (s *Server) phase(name string, t0 time.Time) float64 {
	d := time.Since(t0)
	s.metrics.observe(name, d)
	return millis(d)
}

// checkContext refuses a prompt that leaves no room to generate, which
// Generate would report as an internal error, and returns its ids, so that
// Generate does not tokenize it again.
func checkContext(m *llava.Model, prompt llava.Prompt, image backend.Tensor) ([]int32, *APIError) {
	ids := m.PromptIDs(prompt)
	n := len(ids)
	if image != nil {
		n += image.Shape()[0] - 1
	}
	if ml := m.Checkpoint.MaxLength; ml > 0 && n > ml {
		n = ml // the original layout cuts the prompt there
	}
	if ctxLen := m.LLM.Config.MaxPositionEmbeddings; n >= ctxLen {
		return nil, errInvalid("context_length_exceeded", "the prompt takes %d positions; the model's context is %d", n, ctxLen)
	}
	return ids, nil
}

// stopped accounts for a task that stopped early, because the client went
// away or the deadline passed, and returns the error to send if the client
// is still there.
func (s *Server) stopped(ctx context.Context, endpoint string) *APIError {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		s.metrics.cancel(endpoint, "client_gone")
		return &APIError{Status: 499, Type: typeInvalid, Code: "client_gone", Message: "the client went away"}
	}
	s.metrics.cancel(endpoint, "timeout")
	return &APIError{Status: http.StatusGatewayTimeout, Type: typeServer, Code: "timeout",
		Message: "the request did not finish within " + s.opt.Timeout.String()}
}

// errClientGone wraps a failed write of the answer: the client is gone even
// if the request's context does not know it yet.
var errClientGone = errors.New("serve: the client went away")

// frameError sorts a refused frame: one made for another module or model
// is a conflict the client must fix by using the server's module (409);
// anything else is a malformed frame (400).
func frameError(err error) *APIError {
	if errors.Is(err, vq.ErrFingerprint) || errors.Is(err, vq.ErrCodebookSize) || errors.Is(err, vq.ErrTokenCount) {
		return &APIError{Status: http.StatusConflict, Type: typeInvalid, Code: "module_mismatch", Message: err.Error()}
	}
	return errInvalid("invalid_frame", "%v", err)
}

// admission is a request let through to the model.
type admission struct {
	ctx    context.Context // the request's, with its deadline
	body   []byte
	queued time.Duration // waiting for a slot
	cancel context.CancelFunc
	s      *Server
}

// release gives the slot and the queue place back.
func (a *admission) release() {
	a.s.queue.done()
	a.s.queue.leave()
	a.cancel()
}

// admit reads the body, then takes a place in the queue and waits for a
// slot: a request whose body has not arrived holds neither. A nil error
// must be followed by release once the model work is over.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, endpoint string) (*admission, *APIError) {
	arrived := time.Now()
	body, e := s.readBody(w, r, endpoint)
	if e != nil {
		return nil, e
	}
	if !s.queue.admit() {
		return nil, errUnavailable("queue_full", "the server is busy: every slot and queue place is taken", 1)
	}
	ctx, cancel := context.WithCancel(r.Context())
	if s.opt.Timeout > 0 {
		ctx, cancel = context.WithDeadline(r.Context(), arrived.Add(s.opt.Timeout))
		// A client that stops reading is cut off; after the deadline it has
		// ReadTimeout more to take the error that says so.
		http.NewResponseController(w).SetWriteDeadline(arrived.Add(s.opt.Timeout + s.opt.ReadTimeout))
	}
	t0 := time.Now()
	if err := s.queue.run(ctx); err != nil {
		e := s.stopped(ctx, endpoint)
		if e.Status == http.StatusGatewayTimeout {
			e = errUnavailable("queue_timeout", "the request timed out waiting for a slot", 1)
		}
		cancel()
		s.queue.leave()
		return nil, e
	}
	a := &admission{ctx: ctx, body: body, cancel: cancel, s: s, queued: time.Since(t0)}
	s.metrics.observe(phaseQueue, a.queued)
	return a, nil
}
