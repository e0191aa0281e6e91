package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/llava"
	"github.com/avq/avq/vq"
)

// The tiny model (testdata/tiny-llava: random weights, real architecture)
// with the block-0 ln1 module attached, loaded once for every test.
var tiny struct {
	once sync.Once
	m    *llava.Model
	err  error
}

func tinyModel(t testing.TB) *llava.Model {
	t.Helper()
	tiny.once.Do(func() { tiny.m, tiny.err = loadTiny("block0_ln1") })
	if tiny.err != nil {
		t.Fatal(tiny.err)
	}
	return tiny.m
}

func loadTiny(module string) (*llava.Model, error) {
	ck, err := llava.Open(testutil.Testdata("tiny-llava"), llava.OpenOptions{})
	if err != nil {
		return nil, err
	}
	b := cpu.New(2)
	m, err := llava.Load(ck, b, llava.LoadOptions{Parts: ck.AllParts()})
	if err != nil || module == "" {
		return m, err
	}
	mod, err := vq.Load(testutil.Testdata("vq", module, "alignedvq.safetensors"), b)
	if err != nil {
		return nil, err
	}
	return m, m.AttachVQ(mod)
}

// withoutVQ is the tiny model's parts without the module.
func withoutVQ(m *llava.Model) *llava.Model {
	c := *m
	c.VQ = nil
	return &c
}

// testOptions are small limits that tests can reach.
func testOptions() Options {
	o := DefaultOptions()
	o.Name = "tiny"
	o.Parallel, o.MaxQueue = 2, 4
	o.Timeout = time.Minute
	o.ReadTimeout, o.ReadHeaderTimeout = 2*time.Second, 2*time.Second
	o.ShutdownTimeout = 10 * time.Second
	o.DrainDelay = 0 // no balancer to tell; TestDrain sets one
	o.MaxBody = 1 << 20
	o.MaxPrompt = 4096
	return o
}

// testServer is a Server on a loopback listener.
type testServer struct {
	*Server
	url    string
	stop   func() error // drains and returns Serve's error
	client *http.Client
}

// start serves m (loaded at once when not nil) until the test ends.
func start(t *testing.T, opt Options, m *llava.Model) *testServer {
	t.Helper()
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if m != nil {
		if err := <-s.Load(func() (*llava.Model, error) { return m, nil }); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	tr := &http.Transport{}
	ts := &testServer{Server: s, url: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr}}
	var once sync.Once
	var serveErr error
	ts.stop = func() error {
		once.Do(func() {
			// The client's idle connections go first: a connection the server
			// has accepted but seen no request on holds Shutdown up to 5 s.
			tr.CloseIdleConnections()
			cancel()
			serveErr = <-served
		})
		return serveErr
	}
	t.Cleanup(func() { ts.stop() })
	return ts
}

// get fetches a path and returns the status and body.
func (ts *testServer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := ts.client.Get(ts.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends a body and returns the response with its body read.
func (ts *testServer) post(t *testing.T, path, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// wantAPIError checks a refusal: the status, a JSON error with a message,
// and the code.
func wantAPIError(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error *APIError `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("%s: body %q is not a JSON error", what, body)
		return
	}
	if status != wantStatus || e.Error.Code != wantCode {
		t.Errorf("%s: %d %s (%s), want %d %s", what, status, e.Error.Code, e.Error.Message, wantStatus, wantCode)
	}
}

// metric reads one sample of the server's metrics, by its full name with
// labels; 0 when absent.
func (ts *testServer) metric(t *testing.T, sample string) float64 {
	t.Helper()
	var b strings.Builder
	ts.metrics.write(&b, gauges{})
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			json.Unmarshal([]byte(v), &f)
			return f
		}
	}
	return 0
}

// pixels preprocesses a test image for the tiny model.
func pixels(t testing.TB, m *llava.Model, name string) []float32 {
	t.Helper()
	p, err := m.Checkpoint.Pixels(testutil.Testdata("images", name), llava.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readImage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testutil.Testdata("images", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually polls cond until it holds, failing after a generous time: for
// things that happen on another goroutine without a signal to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
	}
}
