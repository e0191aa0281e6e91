package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentClients sends 32 requests at once to a server that runs 2
// and queues 4. The running ones are held until every other request has
// been answered, so exactly 6 are served and 26 refused with 503, and none
// is lost. After shutdown no goroutine is left and the heap is back where
// it was.
func TestConcurrentClients(t *testing.T) {
	m := tinyModel(t)
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	png := readImage(t, "tiny_32x24.png")
	before := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc

	opt := testOptions()
	ts := start(t, opt, m)
	release := make(chan struct{})
	ts.textHook = func(context.Context) { <-release }
	const clients = 32
	admitted := opt.Parallel + opt.MaxQueue
	type result struct {
		status int
		code   string
		err    error
	}
	results := make(chan result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			var req *http.Request
			if i%2 == 0 {
				req, _ = http.NewRequest(http.MethodPost, ts.url+"/v1/split?max_tokens=4", strings.NewReader(string(AppendEnvelope(nil, e.Frame, question))))
				req.Header.Set("Content-Type", ContentTypeFrame)
			} else {
				req, _ = http.NewRequest(http.MethodPost, ts.url+"/v1/chat/completions", strings.NewReader(string(chatBody(png, `,"max_tokens":4,"stream":true`))))
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := ts.client.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			r := result{status: resp.StatusCode, err: err}
			switch {
			case resp.StatusCode == http.StatusServiceUnavailable:
				var body struct{ Error *APIError }
				json.Unmarshal(b, &body)
				if body.Error != nil && resp.Header.Get("Retry-After") != "" {
					r.code = body.Error.Code
				}
			case i%2 == 0 && !strings.Contains(string(b), `"done":true`), i%2 == 1 && !strings.HasSuffix(string(b), "data: [DONE]\n\n"):
				r.err = fmt.Errorf("an incomplete answer: %q", b)
			}
			results <- r
		})
	}
	refusedMetric := func() float64 {
		return ts.metric(t, `avq_requests_total{endpoint="split",code="503"}`) + ts.metric(t, `avq_requests_total{endpoint="chat",code="503"}`)
	}
	eventually(t, "the refusals", func() bool { return refusedMetric() == float64(clients-admitted) })
	if d, r := ts.queue.depth(), ts.queue.running.Load(); d != int64(opt.MaxQueue) || r != int64(opt.Parallel) {
		t.Errorf("queue depth %d, running %d", d, r)
	}
	close(release)
	wg.Wait()
	close(results)
	served, refused := 0, 0
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("a lost request: %v", r.err)
		case r.status == http.StatusOK:
			served++
		case r.status == http.StatusServiceUnavailable && r.code == "queue_full":
			refused++
		default:
			t.Errorf("status %d %s", r.status, r.code)
		}
	}
	if served != admitted || refused != clients-admitted {
		t.Errorf("%d served and %d refused, want %d and %d", served, refused, admitted, clients-admitted)
	}
	if code, _ := ts.get(t, "/health"); code != 200 {
		t.Errorf("health after the burst: %d", code)
	}
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the goroutines ending", func() bool { return runtime.NumGoroutine() <= before })
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapAlloc) - int64(heapBefore); grown > 16<<20 {
		t.Errorf("the heap grew by %d MiB over the burst", grown>>20)
	}
}

// TestClientGoneStopsGeneration disconnects a client after the first piece
// of its answer: the server cancels the request and generates nothing more.
func TestClientGoneStopsGeneration(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	var calls atomic.Int32
	stopped := make(chan bool, 1)
	ts.textHook = func(ctx context.Context) {
		if calls.Add(1) == 1 {
			select {
			case <-ctx.Done():
				stopped <- true
			case <-time.After(20 * time.Second):
				stopped <- false
			}
		}
	}
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/v1/split?max_tokens=3000", strings.NewReader(string(AppendEnvelope(nil, e.Frame, question))))
	req.Header.Set("Content-Type", ContentTypeFrame)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, `{"text":`) {
		t.Fatalf("first line %q: %v", line, err)
	}
	cancel() // the client goes away
	resp.Body.Close()
	if !<-stopped {
		t.Fatal("the request's context was not cancelled when the client went away")
	}
	eventually(t, "the cancellation count", func() bool {
		return ts.metric(t, `avq_requests_cancelled_total{endpoint="split",reason="client_gone"}`) == 1
	})
	eventually(t, "the slot coming free", func() bool { return ts.queue.running.Load() == 0 })
	if n := calls.Load(); n != 1 {
		t.Errorf("%d pieces of text were generated; generation should have stopped after the first", n)
	}
	if n := ts.metric(t, "avq_generated_tokens_total"); n != 0 {
		t.Errorf("%v tokens counted for a cancelled request", n)
	}
}

// TestTimeout gives a request less time than it needs.
func TestTimeout(t *testing.T) {
	m := tinyModel(t)
	opt := testOptions()
	opt.Timeout = 300 * time.Millisecond
	ts := start(t, opt, m)
	ts.textHook = func(ctx context.Context) { <-ctx.Done() }
	resp, body := ts.post(t, "/v1/chat/completions", "application/json", []byte(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":50}`))
	wantAPIError(t, "timeout", resp.StatusCode, body, http.StatusGatewayTimeout, "timeout")
	if ts.metric(t, `avq_requests_cancelled_total{endpoint="chat",reason="timeout"}`) != 1 {
		t.Error("the timeout is not counted")
	}
}

// TestSlowClients: a body that trickles in gets a 408 JSON error after the
// read timeout; headers that trickle in get the connection closed. The
// server stays healthy.
func TestSlowClients(t *testing.T) {
	opt := testOptions()
	opt.ReadTimeout, opt.ReadHeaderTimeout = 200*time.Millisecond, 200*time.Millisecond
	ts := start(t, opt, tinyModel(t))
	addr := strings.TrimPrefix(ts.url, "http://")

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/split HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n0123456789", ContentTypeFrame)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	wantAPIError(t, "slow body", resp.StatusCode, body, http.StatusRequestTimeout, "body_timeout")

	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprint(c2, "POST /v1/split HTTP/1.1\r\nHost: x\r\n")
	c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c2)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("slow headers: the server kept the connection open (read %q)", b)
	}
	if code, _ := ts.get(t, "/health"); code != 200 {
		t.Errorf("health after slow clients: %d", code)
	}
}
