package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scripted serves the split endpoint on loopback from a script: attempt i
// (from 0) gets script[min(i, len-1)].
func scripted(t *testing.T, script ...func(w http.ResponseWriter)) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		script[min(i, len(script)-1)](w)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String(), &n
}

const doneLine = `{"done":true,"stop_reason":"eos","prompt_ids":[1],"ids":[2],"prompt_tokens":1,"completion_tokens":1}` + "\n"

func answerWith(lines ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", ContentTypeNDJSON)
		for _, l := range lines {
			fmt.Fprint(w, l)
			w.(http.Flusher).Flush()
		}
	}
}

// cutAfter sends the lines, then breaks the connection mid-answer.
func cutAfter(lines ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		answerWith(lines...)(w)
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}
}

func refuse(status int, retryAfter string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeError(w, &APIError{Status: status, Type: typeUnavailable, Code: "x", Message: "no"})
	}
}

// recordWaits makes a client that records its pauses instead of taking them.
func recordWaits(url string, retry Retry) (*Client, *[]time.Duration) {
	var waits []time.Duration
	c := &Client{URL: url, Retry: retry, HTTP: &http.Client{Transport: &http.Transport{}}}
	c.wait = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return c, &waits
}

var frameRequest = Request{Frame: []byte{1, 2, 3}, Prompt: "q", MaxTokens: 4}

// TestClientRetriesACutStream: a stream cut after its first line is sent
// again, and the text already passed on is not passed again.
func TestClientRetriesACutStream(t *testing.T) {
	url, n := scripted(t, cutAfter(`{"text":"A"}`+"\n"), answerWith(`{"text":"A"}`+"\n", `{"text":" cat"}`+"\n", doneLine))
	c, waits := recordWaits(url, Retry{})
	var got []string
	ans, err := c.Answer(context.Background(), frameRequest, func(s string) error { got = append(got, s); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if ans.Text != "A cat" || ans.Retries != 1 || n.Load() != 2 || len(*waits) != 1 || strings.Join(got, "|") != "A| cat" {
		t.Errorf("answer %q after %d retries, %d sends, waits %v, text passed on %q", ans.Text, ans.Retries, n.Load(), *waits, got)
	}
}

// TestClientRetryAfterAndBound: a 503's Retry-After sets the wait when it
// is longer than the backoff; the backoff doubles; the attempts are bounded.
func TestClientRetryAfterAndBound(t *testing.T) {
	url, n := scripted(t, refuse(http.StatusServiceUnavailable, "3"), refuse(http.StatusTooManyRequests, ""))
	c, waits := recordWaits(url, Retry{Attempts: 4, Backoff: time.Second, MaxWait: time.Minute})
	_, err := c.Answer(context.Background(), frameRequest, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || !strings.Contains(err.Error(), "after 4 attempts") {
		t.Fatalf("after the attempts: %v", err)
	}
	w := *waits
	if n.Load() != 4 || len(w) != 3 || w[0] != 3*time.Second || w[1] < time.Second || w[1] > 2*time.Second || w[2] < 2*time.Second || w[2] > 4*time.Second {
		t.Errorf("%d sends, waits %v: want 4 sends, 3 s (Retry-After), then 1–2 s and 2–4 s", n.Load(), w)
	}
	c, waits = recordWaits(url, Retry{Attempts: 2, Backoff: time.Second, MaxWait: 2 * time.Second})
	n.Store(0)
	c.Answer(context.Background(), frameRequest, nil)
	if w := *waits; len(w) != 1 || w[0] != 2*time.Second {
		t.Errorf("Retry-After past MaxWait: waits %v, want [2s]", w)
	}
}

// TestClientDoesNotRetry the request's own refusals, a deadline, an error
// inside the answer, or an answer that differs from the text passed on.
func TestClientDoesNotRetry(t *testing.T) {
	for name, script := range map[string][]func(http.ResponseWriter){
		"400":            {refuse(http.StatusBadRequest, "")},
		"504":            {refuse(http.StatusGatewayTimeout, "")},
		"an error event": {answerWith(`{"text":"A"}`+"\n", `{"error":{"message":"boom","type":"server_error"}}`+"\n")},
	} {
		url, n := scripted(t, script...)
		c, _ := recordWaits(url, Retry{})
		if _, err := c.Answer(context.Background(), frameRequest, nil); err == nil || n.Load() != 1 {
			t.Errorf("%s: %d sends, error %v; want 1 and an error", name, n.Load(), err)
		}
	}
	url, n := scripted(t, cutAfter(`{"text":"A"}`+"\n"), answerWith(`{"text":"B"}`+"\n", doneLine))
	c, _ := recordWaits(url, Retry{})
	_, err := c.Answer(context.Background(), frameRequest, func(string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "differs") || n.Load() != 2 {
		t.Errorf("a retried answer that differs: %d sends, %v", n.Load(), err)
	}
}
