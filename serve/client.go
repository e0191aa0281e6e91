package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava"
)

// Client speaks the split protocol to a server: the edge's side.
type Client struct {
	URL    string       // the server's base URL, e.g. http://cloud:8080
	APIKey string       // sent as a bearer token when set
	HTTP   *http.Client // nil: http.DefaultClient
	Retry  Retry        // the zero value retries as Retry's fields say

	// wait, set by tests, replaces the pause between attempts.
	wait func(ctx context.Context, d time.Duration) error
}

// Retry says how a Client sends a whole request again when it failed in a
// way a balancer cannot hide: the connection failed, the answer's stream
// was cut after its first byte (a replica died mid-answer), or the server
// or a balancer refused it for now (429, 502, 503). It waits Backoff, then
// twice as long each time (with jitter), or the Retry-After the refusal
// names when that is longer, never more than MaxWait at once. A refusal of
// the request itself (4xx), a deadline (504) or an error event inside the
// answer is not retried. Text already passed to onText is not passed
// again: the retried answer must begin with it (greedy decoding, or a
// fixed seed, gives the same answer), else Answer fails.
type Retry struct {
	Attempts int           // sends at most, the first included; 0: 4; 1: no retry
	Backoff  time.Duration // the first wait; 0: 200 ms
	MaxWait  time.Duration // the longest wait; 0: 10 s
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 4
	}
	if r.Backoff <= 0 {
		r.Backoff = 200 * time.Millisecond
	}
	if r.MaxWait <= 0 {
		r.MaxWait = 10 * time.Second
	}
	return r
}

// retryable is a failed attempt worth sending again, and how long the
// server asked the client to wait (0: no word).
type retryable struct {
	err        error
	retryAfter time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// Request is one question about one image, sent as an AlignedVQ frame
// (POST /v1/split) or, for the cloud-only baseline, as an image file (POST
// /v1/image). Exactly one of Frame and Image is set.
type Request struct {
	Frame     []byte
	Image     []byte // JPEG, PNG, GIF or WebP
	Prompt    string // the question; the server renders it with its template
	Template  string // a template name instead of the server's; "" for the server's
	MaxTokens int    // new tokens at most; 0 runs the vision side only
	Sampling  llama.Sampling
	Stop      []string
}

// Answer is the server's answer and what the client saw of the exchange.
type Answer struct {
	Text             string
	StopReason       string // "eos", "stop" or "length"
	PromptIDs, IDs   []int32
	PromptTokens     int
	CompletionTokens int
	Server           Timings // the server's time, by phase
	Fingerprint      string  // the server's codebook fingerprint (hex), "" without a module
	BodyBytes        int     // the request body: envelope, payload and prompt
	Retries          int     // sends after the first (see Retry)

	FirstText time.Duration // from sending the request to the first text; 0 if none came
	Total     time.Duration // from sending the request to the end of the answer
}

// Answer sends req and streams the answer's text to onText (when not nil)
// as it arrives, sending it again as c.Retry says. A refused request
// returns an *APIError.
func (c *Client) Answer(ctx context.Context, req Request, onText func(string) error) (*Answer, error) {
	policy := c.Retry.withDefaults()
	var shown strings.Builder // text passed to onText by earlier attempts
	wait := policy.Backoff
	for attempt := 1; ; attempt++ {
		var seen strings.Builder // this attempt's text
		dedup := onText
		if onText != nil {
			dedup = func(text string) error {
				seen.WriteString(text)
				s, done := seen.String(), shown.String()
				if len(s) <= len(done) {
					if !strings.HasPrefix(done, s) {
						return errors.New("serve: the retried answer differs from the text already passed on")
					}
					return nil
				}
				if !strings.HasPrefix(s, done) {
					return errors.New("serve: the retried answer differs from the text already passed on")
				}
				fresh := s[len(done):]
				shown.WriteString(fresh)
				return onText(fresh)
			}
		}
		ans, err := c.answerOnce(ctx, req, dedup)
		var r *retryable
		if err == nil {
			ans.Retries = attempt - 1
			return ans, nil
		}
		if !errors.As(err, &r) || attempt >= policy.Attempts || ctx.Err() != nil {
			if r != nil {
				return nil, fmt.Errorf("%w (after %d attempts)", r.err, attempt)
			}
			return nil, err
		}
		d := time.Duration(float64(wait) * (0.5 + rand.Float64()/2))
		d = min(max(d, r.retryAfter), policy.MaxWait)
		wait *= 2
		pause := c.wait
		if pause == nil {
			pause = sleep
		}
		if err := pause(ctx, d); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// answerOnce is one attempt of Answer; a failure worth retrying is a
// *retryable.
func (c *Client) answerOnce(ctx context.Context, req Request, onText func(string) error) (*Answer, error) {
	path, contentType, payload := "/v1/split", ContentTypeFrame, req.Frame
	if req.Image != nil {
		path, contentType, payload = "/v1/image", ContentTypeImage, req.Image
	}
	if (req.Frame == nil) == (req.Image == nil) || len(payload) == 0 {
		return nil, errors.New("serve: a request carries exactly one of a frame and an image")
	}
	u := strings.TrimSuffix(c.URL, "/") + path
	if q := req.query().Encode(); q != "" {
		u += "?" + q
	}
	body := AppendEnvelope(make([]byte, 0, EnvelopeSize+len(payload)+len(req.Prompt)), payload, req.Prompt)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	hr.Header.Set("Content-Type", contentType)
	if c.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	t0 := time.Now()
	resp, err := hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		return nil, &retryable{err: fmt.Errorf("serve: %w", err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := readAPIError(resp)
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
			var after time.Duration
			if n, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && n > 0 {
				after = time.Duration(n) * time.Second
			}
			return nil, &retryable{err: err, retryAfter: after}
		}
		return nil, err
	}
	ans := &Answer{Fingerprint: resp.Header.Get(FingerprintHeader), BodyBytes: len(body)}
	if err := ans.read(io.LimitReader(resp.Body, maxAnswerBytes), t0, onText); err != nil {
		var cut *streamCut
		if errors.As(err, &cut) && ctx.Err() == nil {
			return nil, &retryable{err: err}
		}
		return nil, err
	}
	return ans, nil
}

// streamCut is an answer whose stream ended, or broke, before its last
// line: the connection failed after the first byte.
type streamCut struct{ err error }

func (s *streamCut) Error() string { return s.err.Error() }
func (s *streamCut) Unwrap() error { return s.err }

// query holds the parameters that differ from the protocol's defaults.
func (req *Request) query() url.Values {
	q := url.Values{}
	if req.MaxTokens != llava.DefaultMaxTokens {
		q.Set("max_tokens", strconv.Itoa(req.MaxTokens))
	}
	s := req.Sampling
	if s.Temperature != 0 {
		q.Set("temperature", strconv.FormatFloat(s.Temperature, 'g', -1, 64))
	}
	if s.TopK != 0 {
		q.Set("top_k", strconv.Itoa(s.TopK))
	}
	if s.TopP != 0 && s.TopP != 1 {
		q.Set("top_p", strconv.FormatFloat(s.TopP, 'g', -1, 64))
	}
	if s.Seed != 0 {
		q.Set("seed", strconv.FormatUint(s.Seed, 10))
	}
	for _, x := range req.Stop {
		q.Add("stop", x)
	}
	if req.Template != "" {
		q.Set("template", req.Template)
	}
	return q
}

// Bounds on what a client takes from a server: one line of an answer (the
// last carries every id), and the whole answer.
const (
	maxEventBytes  = 8 << 20
	maxAnswerBytes = 256 << 20
)

// read consumes the answer's JSON lines.
func (ans *Answer) read(r io.Reader, t0 time.Time, onText func(string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	var text strings.Builder
	for sc.Scan() {
		var ev struct {
			Text  *string   `json:"text"`
			Error *APIError `json:"error"`
			doneEvent
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("serve: a malformed line in the answer: %w", err)
		}
		switch {
		case ev.Error != nil:
			ev.Error.Status = http.StatusOK // it came inside a 200 stream
			return ev.Error
		case ev.Text != nil:
			if ans.FirstText == 0 {
				ans.FirstText = time.Since(t0)
			}
			text.WriteString(*ev.Text)
			if onText != nil {
				if err := onText(*ev.Text); err != nil {
					return err
				}
			}
		case ev.Done:
			ans.Total = time.Since(t0)
			ans.Text, ans.StopReason = text.String(), ev.StopReason
			ans.PromptIDs, ans.IDs = ev.PromptIDs, ev.IDs
			ans.PromptTokens, ans.CompletionTokens, ans.Server = ev.PromptTokens, ev.CompletionTokens, ev.Timings
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("serve: reading the answer: %w", err)
		}
		return &streamCut{fmt.Errorf("serve: reading the answer: %w", err)}
	}
	return &streamCut{errors.New("serve: the answer ended before its last line")}
}

// readAPIError reads a refusal's JSON error, or describes the response when
// it has none (a proxy's error page).
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error *APIError `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != nil {
		body.Error.Status = resp.StatusCode
		return body.Error
	}
	return &APIError{Status: resp.StatusCode, Type: typeServer, Message: strings.TrimSpace(string(b))}
}
