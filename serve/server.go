package serve

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/vit"
)

// Options configure a Server. Start from DefaultOptions.
type Options struct {
	Name     string          // the model's name in responses and /v1/models
	Template *llava.Template // renders prompts unless a request names another

	Parallel int // requests running on the model at once, ≥ 1
	MaxQueue int // requests admitted beyond those, ≥ 0; more are refused with 503

	Timeout           time.Duration // per request, from arrival to the last byte; 0: none
	ReadTimeout       time.Duration // to receive a request body
	ReadHeaderTimeout time.Duration // to receive a request's headers
	IdleTimeout       time.Duration // a kept-alive connection with no request is closed after it
	ShutdownTimeout   time.Duration // Serve's drain: running requests get this long to finish
	// DrainDelay is how long a draining server keeps its listener open,
	// answering /health with 503 (and requests as before), so that a
	// balancer's health check sees it leave before connections are refused.
	DrainDelay time.Duration

	MaxUploads        int   // request bodies received at once, in all
	MaxUploadsPerConn int   // request bodies received at once on one connection (HTTP/2 streams)
	MinUploadRate     int64 // bytes a second a body must keep up after the first 2 s; 0: no minimum

	MaxBody        int64 // request body bytes
	MaxPrompt      int   // prompt text bytes (the question, or all messages together)
	MaxImagePixels int   // a larger image is refused before it is decoded

	APIKey  string // when set, every endpoint but /health, /livez and /metrics needs "Authorization: Bearer <key>"
	Pprof   bool   // serve /debug/pprof/
	TLSCert string // certificate and key files: serve HTTPS (HTTP/1.1 and HTTP/2)
	TLSKey  string

	Log *log.Logger // refused requests, request errors and the server's own; nil: discarded
}

// DefaultOptions are the defaults of avq serve.
func DefaultOptions() Options {
	return Options{
		Name:              "avq",
		Template:          llava.Templates[llava.DefaultTemplate],
		Parallel:          1,
		MaxQueue:          16,
		Timeout:           10 * time.Minute,
		ReadTimeout:       30 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   30 * time.Second,
		DrainDelay:        5 * time.Second,
		MaxUploads:        64,
		MaxUploadsPerConn: 4,
		MinUploadRate:     8 << 10,
		MaxBody:           32 << 20,
		MaxPrompt:         64 << 10,
		MaxImagePixels:    40_000_000,
	}
}

func (o *Options) check() error {
	switch {
	case o.Template == nil:
		return errors.New("serve: no prompt template")
	case o.Parallel < 1:
		return fmt.Errorf("serve: parallel %d: want at least 1", o.Parallel)
	case o.MaxQueue < 0:
		return fmt.Errorf("serve: max queue %d: want at least 0", o.MaxQueue)
	case o.MaxBody < 1 || o.MaxPrompt < 1 || o.MaxImagePixels < 1:
		return errors.New("serve: max body, max prompt and max image pixels must be positive")
	case o.ReadTimeout <= 0 || o.ReadHeaderTimeout <= 0 || o.IdleTimeout <= 0 || o.ShutdownTimeout <= 0:
		return errors.New("serve: the read, header, idle and shutdown timeouts must be positive")
	case o.Timeout < 0 || o.DrainDelay < 0:
		return errors.New("serve: the request timeout and the drain delay must not be negative")
	case o.MaxUploads < 1 || o.MaxUploadsPerConn < 1 || o.MinUploadRate < 0:
		return errors.New("serve: max uploads and max uploads per connection must be positive, the minimum upload rate not negative")
	case (o.TLSCert == "") != (o.TLSKey == ""):
		return errors.New("serve: TLS needs both a certificate and a key")
	}
	return nil
}

// Server is the cloud role: it answers AlignedVQ frames, image files and
// OpenAI chat completions with one loaded model. See the package comment.
type Server struct {
	opt     Options
	log     *log.Logger
	metrics *metrics
	queue   *queue
	started time.Time

	model     atomic.Pointer[llava.Model] // nil while loading
	loadErr   atomic.Pointer[error]
	draining  atomic.Bool    // /health answers 503
	stopping  atomic.Bool    // the listener is closed; model endpoints answer 503
	uploading atomic.Int64   // request bodies being received
	handlers  sync.WaitGroup // requests being handled
	abort     chan struct{}  // closed by Abort
	abortOnce sync.Once

	// textHook, set by tests, runs after each piece of text is streamed.
	textHook func(ctx context.Context)
}

// New returns a server with no model yet: Load it.
func New(opt Options) (*Server, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	lg := opt.Log
	if lg == nil {
		lg = log.New(io.Discard, "", 0)
	}
	return &Server{opt: opt, log: lg, metrics: newMetrics(), queue: newQueue(opt.Parallel, opt.MaxQueue), started: time.Now(),
		abort: make(chan struct{})}, nil
}

// Load runs load in the background; until it returns, /health answers 503
// and the model endpoints refuse with 503. The model's vision tower must
// start at the pixels (it serves whole images, and frames resume it at the
// split); an attached VQ module enables /v1/split; without a language model
// only max_tokens=0 requests are served. The channel receives load's error
// (nil on success) once.
func (s *Server) Load(load func() (*llava.Model, error)) <-chan error {
	done := make(chan error, 1)
	go func() {
		t0 := time.Now()
		m, err := load()
		if err == nil && (m.Vision == nil || m.Vision.From != vit.Pixels) {
			err = errors.New("serve: the model's vision tower must be loaded from the pixels")
		}
		if err == nil && m.LLM != nil && m.Projector == nil {
			err = errors.New("serve: a language model needs the projector")
		}
		if err != nil {
			s.loadErr.Store(&err)
			s.log.Printf("loading the model failed: %v", err)
		} else {
			s.metrics.loaded(time.Since(t0))
			s.model.Store(m)
			s.log.Printf("model loaded in %.1f s", time.Since(t0).Seconds())
		}
		done <- err
	}()
	return done
}

// ready returns the model, or the error to answer with while there is none
// or the server drains.
func (s *Server) ready() (*llava.Model, *APIError) {
	switch m := s.model.Load(); {
	case s.stopping.Load():
		return nil, errUnavailable("shutting_down", "the server is shutting down", 0)
	case m != nil:
		return m, nil
	case s.loadErr.Load() != nil:
		return nil, errUnavailable("load_failed", "the model failed to load", 0)
	default:
		return nil, errUnavailable("loading", "the model is loading", 5)
	}
}

// Handler serves every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	open, closed := false, true // whether an endpoint needs the API key
	mux.Handle("/health", s.route("health", http.MethodGet, open, s.handleHealth))
	mux.Handle("/livez", s.route("livez", http.MethodGet, open, s.handleLivez))
	mux.Handle("/metrics", s.route("metrics", http.MethodGet, open, s.handleMetrics))
	mux.Handle("/v1/split", s.route("split", http.MethodPost, closed, s.handleEnvelope(kindFrame)))
	mux.Handle("/v1/image", s.route("image", http.MethodPost, closed, s.handleEnvelope(kindImage)))
	mux.Handle("/v1/chat/completions", s.route("chat", http.MethodPost, closed, s.handleChat))
	mux.Handle("/v1/models", s.route("models", http.MethodGet, closed, s.handleModels))
	if s.opt.Pprof {
		mux.Handle("/debug/pprof/", s.route("pprof", "", closed, pprof.Index))
		mux.Handle("/debug/pprof/cmdline", s.route("pprof", "", closed, pprof.Cmdline))
		mux.Handle("/debug/pprof/profile", s.route("pprof", "", closed, pprof.Profile))
		mux.Handle("/debug/pprof/symbol", s.route("pprof", "", closed, pprof.Symbol))
		mux.Handle("/debug/pprof/trace", s.route("pprof", "", closed, pprof.Trace))
	}
	mux.Handle("/", s.route("other", "", closed, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &APIError{Status: http.StatusNotFound, Type: typeNotFound, Code: "not_found",
			Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)})
	}))
	return mux
}

// route wraps a handler with what every endpoint shares: the count of
// handlers in flight, the status code for the metrics, one log line per
// refusal, the method, the API key and the module's fingerprint header.
// Deadlines are per endpoint: a request that may carry a body must send it
// within ReadTimeout (readBody paces it, admit sets the model request's
// own), even when it is refused before the body is read, as the server
// then reads what is left of it; a GET or HEAD gets no read deadline (a
// 35 s profile is not cut at 30 s).
func (s *Server) route(endpoint, method string, auth bool, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		rec := &recorder{ResponseWriter: w}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opt.ReadTimeout))
		}
		defer func() {
			code := rec.code
			if code == 0 {
				code = 499 // nothing was written: the client went away first
			}
			s.metrics.request(endpoint, code)
			if e := rec.refusal; e != nil {
				verb := "refused"
				if e.Status >= 500 && e.Status != http.StatusServiceUnavailable {
					verb = "failed" // the server's fault or its deadline, not the request's
				}
				s.log.Printf("%s %s %s from %s: %d %s: %s", verb, r.Method, r.URL.Path, r.RemoteAddr, e.Status, e.Code, e.Message)
			}
			if rec.discard != nil {
				s.discardBody(rec, rec.discard)
			}
		}()
		if m := s.model.Load(); m != nil && m.VQ != nil {
			rec.Header().Set(FingerprintHeader, hex.EncodeToString(m.VQ.Fingerprint[:]))
		}
		if method != "" && r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			rec.Header().Set("Allow", method)
			writeError(rec, &APIError{Status: http.StatusMethodNotAllowed, Type: typeInvalid, Code: "method_not_allowed",
				Message: fmt.Sprintf("%s takes %s, not %s", r.URL.Path, method, r.Method)})
			return
		}
		if auth && s.opt.APIKey != "" && !s.authorized(r) {
			writeError(rec, &APIError{Status: http.StatusUnauthorized, Type: typeAuth, Code: "invalid_api_key",
				Message: "missing or wrong API key: send Authorization: Bearer <key>"})
			return
		}
		h(rec, r)
	})
}

// authorized checks the bearer token; the scheme's name is
// case-insensitive (RFC 7235 §2.1).
func (s *Server) authorized(r *http.Request) bool {
	scheme, key, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(key)), []byte(s.opt.APIKey)) == 1
}

// recorder remembers the status code a handler sent, the refusal it sent
// (writeError) and a refused body to discard afterwards (tooLarge).
type recorder struct {
	http.ResponseWriter
	code    int
	refusal *APIError
	discard io.Reader
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush serves handlers that look for http.Flusher (pprof's).
func (r *recorder) Flush() { http.NewResponseController(r.ResponseWriter).Flush() }

// health is the /health answer.
type health struct {
	Status        string  `json:"status"` // loading, ok, draining, error
	Error         string  `json:"error,omitempty"`
	Model         string  `json:"model"`
	LanguageModel bool    `json:"language_model"`
	VQ            *vqInfo `json:"vq,omitempty"`
	Parallel      int     `json:"parallel"`
	MaxQueue      int     `json:"max_queue"`
	QueueDepth    int64   `json:"queue_depth"`
	Running       int64   `json:"running"`
	UptimeS       float64 `json:"uptime_s"`
}

// vqInfo describes the module a frame must be made with.
type vqInfo struct {
	Fingerprint string `json:"fingerprint"` // hex, as in the frame's bytes 16..24
	K           int    `json:"k"`
	Bits        int    `json:"bits"`
	Tokens      int    `json:"tokens"`
	Block       int    `json:"block"`
	Site        string `json:"site"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := health{Model: s.opt.Name, Parallel: s.opt.Parallel, MaxQueue: s.opt.MaxQueue,
		QueueDepth: s.queue.depth(), Running: s.queue.running.Load(), UptimeS: time.Since(s.started).Seconds()}
	m := s.model.Load()
	code := http.StatusServiceUnavailable
	switch errp := s.loadErr.Load(); {
	case s.draining.Load():
		h.Status = "draining"
		w.Header().Set("Retry-After", "5")
	case m != nil:
		h.Status, code = "ok", http.StatusOK
	case errp != nil:
		h.Status, h.Error = "error", (*errp).Error()
	default:
		h.Status = "loading"
		w.Header().Set("Retry-After", "5")
	}
	if m != nil {
		h.LanguageModel = m.LLM != nil
		if v := m.VQ; v != nil {
			h.VQ = &vqInfo{Fingerprint: hex.EncodeToString(v.Fingerprint[:]), K: v.K, Bits: v.Bits,
				Tokens: m.Checkpoint.Vision.Tokens(), Block: v.Block, Site: v.Site}
		}
	}
	writeJSON(w, code, h)
}

// handleLivez says the process serves HTTP: 200 while loading and while
// draining too, so that a liveness probe restarts only a server that no
// longer answers (readiness is /health).
func (s *Server) handleLivez(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "ok\n")
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w, gauges{queueDepth: s.queue.depth(), running: s.queue.running.Load(), uploading: s.uploading.Load(),
		ready: s.model.Load() != nil && !s.draining.Load()})
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	writeJSON(w, http.StatusOK, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{{s.opt.Name, "model", s.started.Unix(), "avq"}}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errInternal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// ErrAborted is Serve's error when Abort cut its drain short.
var ErrAborted = errors.New("serve: the drain was cut short")

// Abort cuts a drain short: Serve closes every connection and returns
// ErrAborted at once, without waiting for the handlers still running. The
// caller is expected to exit the process (the handlers may still use the
// model). Abort before the drain starts takes effect when it starts.
func (s *Server) Abort() { s.abortOnce.Do(func() { close(s.abort) }) }

// Serve answers on ln until ctx ends, then drains: /health turns 503 while
// the listener stays open for DrainDelay (requests are still served, so
// that a balancer's health check sees the server leave), then it stops
// accepting, running requests get ShutdownTimeout to finish, and whatever
// is left then is cut off. It speaks HTTP/1.1 and HTTP/2, in cleartext
// (h2c, prior knowledge) or over TLS when the options name a certificate.
// Serve returns once every handler has returned; the error is nil after a
// clean drain, ErrAborted after Abort.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opt.ReadHeaderTimeout,
		IdleTimeout:       s.opt.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		Protocols:         protocols,
		ConnContext:       connContext,
		ErrorLog:          s.log,
	}
	served := make(chan error, 1)
	go func() {
		if s.opt.TLSCert != "" {
			served <- hs.ServeTLS(ln, s.opt.TLSCert, s.opt.TLSKey)
		} else {
			served <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		s.handlers.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Printf("draining: /health answers 503 for %v, then %d running and %d queued get %v to finish",
		s.opt.DrainDelay, s.queue.running.Load(), s.queue.depth(), s.opt.ShutdownTimeout)
	aborted := func() error {
		hs.Close()
		s.log.Printf("drain cut short: %d requests running", s.queue.running.Load())
		return ErrAborted
	}
	select {
	case <-time.After(s.opt.DrainDelay):
	case <-s.abort:
		return aborted()
	}
	s.stopping.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.opt.ShutdownTimeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- hs.Shutdown(sctx) }()
	var err error
	select {
	case err = <-shut:
	case <-s.abort:
		return aborted()
	}
	if err != nil {
		err = fmt.Errorf("serve: drain cut short after %v: %w", s.opt.ShutdownTimeout, err)
		hs.Close()
	}
	<-served
	s.handlers.Wait()
	return err
}
