package serve

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava"
)

// The split protocol (README, "The split protocol"):
//
//	POST /v1/split?max_tokens=24&temperature=0.7  Content-Type: application/x-avq-frame
//	POST /v1/image?...                             Content-Type: application/x-avq-image
//
//	body:  payload length P, uint32 little-endian | payload, P bytes | prompt, UTF-8, the rest
//
// The payload is an AlignedVQ frame (/v1/split) or an encoded image file
// (/v1/image, the cloud-only baseline). The answer streams back as JSON
// lines (application/x-ndjson): {"text": …} as text is generated, then one
// {"done": true, …} line with the ids, the stop reason and the server's
// timings, or an {"error": …} line if the request fails after streaming
// began.

// Content types and headers of the split protocol.
const (
	ContentTypeFrame  = "application/x-avq-frame"
	ContentTypeImage  = "application/x-avq-image"
	ContentTypeNDJSON = "application/x-ndjson"
	// FingerprintHeader carries the server's codebook fingerprint (hex) on
	// every response once a module is loaded.
	FingerprintHeader = "X-Avq-Codebook-Fingerprint"
)

// EnvelopeSize is the body's overhead beyond the payload and the prompt.
const EnvelopeSize = 4

// Limits on the sampling parameters a request may carry.
const (
	maxStops   = 16
	maxStopLen = 256
)

type payloadKind int

const (
	kindFrame payloadKind = iota
	kindImage
)

// params are a split-protocol request's query parameters.
type params struct {
	maxTokens int
	sampling  llama.Sampling
	stop      []string
	template  *llava.Template
}

// parseParams reads the query: max_tokens (default 128; 0: the vision side
// only), temperature (default 0: greedy), top_k (0: all), top_p (default
// 1), seed, stop (repeatable), template (default the server's). Unknown
// parameters are refused, so that a typo does not pass for a default.
func parseParams(q url.Values, def *llava.Template) (params, *APIError) {
	p := params{maxTokens: llava.DefaultMaxTokens, sampling: llama.Sampling{TopP: 1}, template: def}
	for k, vs := range q {
		if k == "stop" {
			if len(vs) > maxStops {
				return p, errInvalid("bad_parameter", "stop: at most %d strings", maxStops)
			}
			for _, v := range vs {
				if len(v) > maxStopLen {
					return p, errInvalid("bad_parameter", "stop: a string of %d bytes; at most %d", len(v), maxStopLen)
				}
			}
			p.stop = vs
			continue
		}
		if len(vs) != 1 {
			return p, errInvalid("bad_parameter", "%s: given %d times", k, len(vs))
		}
		v := vs[0]
		var err error
		switch k {
		case "max_tokens":
			p.maxTokens, err = strconv.Atoi(v)
			if err == nil && p.maxTokens < 0 {
				err = fmt.Errorf("must not be negative")
			}
		case "temperature":
			p.sampling.Temperature, err = parseFinite(v)
			if err == nil && p.sampling.Temperature < 0 {
				err = fmt.Errorf("must not be negative")
			}
		case "top_k":
			p.sampling.TopK, err = strconv.Atoi(v)
			if err == nil && p.sampling.TopK < 0 {
				err = fmt.Errorf("must not be negative")
			}
		case "top_p":
			p.sampling.TopP, err = parseFinite(v)
			if err == nil && !(p.sampling.TopP > 0 && p.sampling.TopP <= 1) {
				err = fmt.Errorf("must be in (0, 1]")
			}
		case "seed":
			p.sampling.Seed, err = strconv.ParseUint(v, 10, 64)
		case "template":
			p.template, err = llava.LookupTemplate(v)
		default:
			return p, errInvalid("unknown_parameter", "unknown query parameter %q (max_tokens, temperature, top_k, top_p, seed, stop, template)", k)
		}
		if err != nil {
			return p, errInvalid("bad_parameter", "%s=%q: %v", k, v, err)
		}
	}
	return p, nil
}

func parseFinite(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = fmt.Errorf("not a finite number")
	}
	return f, err
}

// parseEnvelope splits a body into its payload and its prompt.
func parseEnvelope(body []byte) (payload []byte, prompt string, err error) {
	if len(body) < EnvelopeSize {
		return nil, "", fmt.Errorf("the body is %d bytes; it must start with the payload length (4 bytes, little-endian)", len(body))
	}
	n := uint64(binary.LittleEndian.Uint32(body))
	switch rest := uint64(len(body) - EnvelopeSize); {
	case n == 0:
		return nil, "", fmt.Errorf("the payload length at offset 0 is 0: there is no payload")
	case n > rest:
		return nil, "", fmt.Errorf("the payload length at offset 0 is %d, but only %d bytes follow", n, rest)
	}
	payload, text := body[EnvelopeSize:EnvelopeSize+n], body[EnvelopeSize+n:]
	if !utf8.Valid(text) {
		return nil, "", fmt.Errorf("the prompt at offset %d is not valid UTF-8", EnvelopeSize+n)
	}
	return payload, string(text), nil
}

// AppendEnvelope appends a request body: the payload's length, the payload
// and the prompt.
func AppendEnvelope(dst, payload []byte, prompt string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, payload...)
	return append(dst, prompt...)
}

// doneEvent is the last line of a successful answer.
type doneEvent struct {
	Done             bool    `json:"done"`
	StopReason       string  `json:"stop_reason"`
	PromptIDs        []int32 `json:"prompt_ids"`
	IDs              []int32 `json:"ids"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	Timings          Timings `json:"timings"`
}

func (s *Server) handleEnvelope(kind payloadKind) http.HandlerFunc {
	endpoint, wantType := "split", ContentTypeFrame
	if kind == kindImage {
		endpoint, wantType = "image", ContentTypeImage
	}
	return func(w http.ResponseWriter, r *http.Request) {
		m, e := s.ready()
		if e != nil {
			writeError(w, e)
			return
		}
		if kind == kindFrame && m.VQ == nil {
			writeError(w, &APIError{Status: http.StatusNotFound, Type: typeNotFound, Code: "no_vq_module",
				Message: "this server has no AlignedVQ module (start it with --vq); send the image to /v1/image instead"})
			return
		}
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != wantType {
			writeError(w, &APIError{Status: http.StatusUnsupportedMediaType, Type: typeInvalid, Code: "bad_content_type",
				Message: fmt.Sprintf("%s takes Content-Type %s, not %q", r.URL.Path, wantType, r.Header.Get("Content-Type"))})
			return
		}
		p, e := parseParams(r.URL.Query(), s.opt.Template)
		if e == nil && p.maxTokens > 0 && m.LLM == nil {
			e = errInvalid("no_language_model", "this server has no language model: only max_tokens=0 (the vision side alone) is served")
		}
		if e != nil {
			writeError(w, e)
			return
		}
		a, e := s.admit(w, r, endpoint)
		if e != nil {
			writeError(w, e)
			return
		}
		defer a.release()
		payload, question, err := parseEnvelope(a.body)
		switch {
		case err != nil:
			writeError(w, errInvalid("bad_envelope", "%v", err))
			return
		case len(question) > s.opt.MaxPrompt:
			writeError(w, errInvalid("prompt_too_long", "the prompt is %d bytes; the server takes at most %d", len(question), s.opt.MaxPrompt))
			return
		}
		t := &task{endpoint: endpoint, prompt: p.template.Prompt(question, true), maxTokens: p.maxTokens,
			sampling: p.sampling, stop: p.stop}
		if kind == kindFrame {
			t.frame = payload
		} else {
			t.image = payload
		}
		st := newStream(w, ContentTypeNDJSON)
		out, e := s.execute(a.ctx, m, t, func(text string) error {
			b, _ := json.Marshal(struct {
				Text string `json:"text"`
			}{text})
			return st.send(append(b, '\n'))
		})
		if e != nil {
			s.fail(w, st, e, func(b []byte) []byte { return append(b, '\n') })
			return
		}
		out.timings.QueueMS = millis(a.queued)
		done := doneEvent{Done: true, StopReason: "length", PromptIDs: []int32{}, IDs: []int32{}, Timings: out.timings}
		if res := out.result; res != nil {
			done.StopReason, done.PromptIDs, done.IDs = res.StopReason, res.PromptIDs, res.IDs
			done.PromptTokens, done.CompletionTokens = res.PromptTokens, len(res.IDs)
		}
		b, _ := json.Marshal(done)
		st.send(append(b, '\n'))
	}
}

// fail sends e: as the response when nothing was sent yet (route logs
// it), as a last event of the stream (framed by frame) otherwise, and not
// at all when the client is gone.
func (s *Server) fail(w http.ResponseWriter, st *stream, e *APIError, frame func([]byte) []byte) {
	switch {
	case e.Status == 499:
	case !st.committed:
		writeError(w, e)
	default:
		st.send(frame(errorBody(e)))
		if e.Status >= 500 && e.Status != http.StatusGatewayTimeout {
			s.log.Printf("%s", e.Error())
		}
	}
}
