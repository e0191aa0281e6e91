package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/serve"
)

// startServer serves the tiny model with the block-0 module on loopback,
// loaded as avq serve loads it, until the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	opt := serve.DefaultOptions()
	opt.DrainDelay = 0 // no balancer to tell
	srv, err := serve.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-srv.Load(func() (*llava.Model, error) {
		return loadLocal(c, td("tiny-llava"), "", td("vq", "block0_ln1", "alignedvq.safetensors"), "", false)
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
		c.cpu.Close()
	})
	return "http://" + ln.Addr().String()
}

// TestEdgeCloudEqualsRun: the answer through a real server is the answer
// of the in-process split, token for token, on a plain and a shaped link.
func TestEdgeCloudEqualsRun(t *testing.T) {
	url := startServer(t)
	module := td("vq", "block0_ln1", "alignedvq.safetensors")
	common := []string{"--model", td("tiny-llava"), "--vq", module, "--image", td("images", "square_336.png"),
		"--prompt", "What is in the image?", "--max-tokens", "24", "--json"}
	status, out, stderr := avq(t, append([]string{"run"}, common...)...)
	if status != 0 {
		t.Fatal(stderr)
	}
	var want runOutput
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatal(err)
	}
	for _, link := range [][]string{nil, {"--bandwidth", "2mbit", "--rtt", "30ms"}} {
		args := append(append([]string{"edge", "--cloud", url}, common...), link...)
		status, out, stderr := avq(t, args...)
		if status != 0 {
			t.Fatal(stderr)
		}
		var got edgeOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if !slicesEqual(got.IDs, want.IDs) || got.Text != want.Text || !slicesEqual(got.PromptIDs, want.PromptIDs) ||
			got.StopReason != want.StopReason || got.FrameBytes != *want.FrameBytes {
			t.Fatalf("%v: the edge got %v %q, avq run %v %q", link, got.IDs, got.Text, want.IDs, want.Text)
		}
		tm := got.Timings
		if got.BytesSent < int64(got.BodyBytes) || got.BodyBytes != serve.EnvelopeSize+got.FrameBytes+len("What is in the image?") ||
			tm.EdgeMS <= 0 || tm.FirstTokenMS < tm.EdgeMS || tm.TotalMS < tm.FirstTokenMS || tm.Server.VisionMS <= 0 {
			t.Errorf("%v: report %+v", link, got)
		}
		if link != nil && tm.TransferMS < 30 {
			t.Errorf("a 30 ms round trip, and the transfer took %.1f ms", tm.TransferMS)
		}
	}
	// Streaming to stdout, the report on stderr.
	status, out, stderr = avq(t, append([]string{"edge", "--cloud", url}, common[:len(common)-1]...)...)
	if status != 0 || out != want.Text+"\n" || !strings.Contains(stderr, "first token") {
		t.Fatalf("streamed %q, stderr %q", out, stderr)
	}
}

func slicesEqual(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestChatCompletionsEqualsRun: the OpenAI endpoint with the whole image
// answers as avq run without VQ.
func TestChatCompletionsEqualsRun(t *testing.T) {
	url := startServer(t)
	status, out, stderr := avq(t, "run", "--model", td("tiny-llava"), "--image", td("images", "square_336.png"),
		"--prompt", "What is in the image?", "--max-tokens", "24", "--json")
	if status != 0 {
		t.Fatal(stderr)
	}
	var want runOutput
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(td("images", "square_336.png"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"tiny","temperature":0,"max_tokens":24,"messages":[{"role":"user","content":[` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"}},` +
		`{"type":"text","text":"What is in the image?"}]}]}`
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Choices []struct {
			Message struct{ Content string }
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if got.Choices[0].Message.Content != want.Text || got.Usage.CompletionTokens != len(want.IDs) {
		t.Fatalf("chat answered %q (%d tokens), avq run %q (%d)", got.Choices[0].Message.Content, got.Usage.CompletionTokens, want.Text, len(want.IDs))
	}
}

// lockedBuffer is a buffer the command writes from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveMain runs avq serve in process with the tiny model and the extra
// flags, and returns its URL once /health answers 200, its stderr and the
// channel its exit status arrives on.
func serveMain(t *testing.T, flags ...string) (string, *lockedBuffer, <-chan int) {
	t.Helper()
	stderr := new(lockedBuffer)
	done := make(chan int, 1)
	go func() {
		done <- Main(append([]string{"serve", "--model", td("tiny-llava"), "--vq", td("vq", "block0_ln1", "alignedvq.safetensors"),
			"--listen", "127.0.0.1:0"}, flags...), io.Discard, stderr)
	}()
	listening := regexp.MustCompile(`listening on (http://\S+);`)
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line: %s", stderr.String())
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never healthy: %v %s", err, stderr.String())
		}
	}
	return url, stderr, done
}

// TestServeCommand runs avq serve, asks it through avq edge, and drains it
// with SIGTERM.
func TestServeCommand(t *testing.T) {
	url, stderr, done := serveMain(t, "--shutdown-timeout", "20s", "--drain-delay", "0s")
	status, out, errs := avq(t, "edge", "--cloud", url, "--model", td("tiny-llava"), "--vq", td("vq", "block0_ln1", "alignedvq.safetensors"),
		"--image", td("images", "tall_200x500.png"), "--prompt", "Describe it.", "--max-tokens", "5")
	if status != 0 || out == "" {
		t.Fatalf("edge: %d %q %s", status, out, errs)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case status := <-done:
		if status != 0 || !strings.Contains(stderr.String(), "drained") {
			t.Fatalf("serve exited %d: %s", status, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit on SIGTERM: %s", stderr.String())
	}
}

// TestServeSecondSignal: the first SIGTERM drains with the listener open
// (/health 503, /livez 200) for --drain-delay; a second one exits at once.
// --max-image-pixels is honoured and the refusal logged.
func TestServeSecondSignal(t *testing.T) {
	url, stderr, done := serveMain(t, "--drain-delay", "1h", "--max-image-pixels", "1000")
	png, err := os.ReadFile(td("images", "square_336.png"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/image", serve.ContentTypeImage, bytes.NewReader(serve.AppendEnvelope(nil, png, "What?")))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "invalid_image") {
		t.Errorf("a 336×336 image with --max-image-pixels 1000: %d %s", resp.StatusCode, b)
	}
	if !strings.Contains(stderr.String(), "refused POST /v1/image") {
		t.Errorf("the refusal is not logged: %s", stderr.String())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), "draining"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no drain on SIGTERM: %s", stderr.String())
		}
	}
	for path, want := range map[string]int{"/health": http.StatusServiceUnavailable, "/livez": http.StatusOK} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatalf("%s while draining: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s while draining: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case status := <-done:
		if status != 1 || !strings.Contains(stderr.String(), "drain was cut short") {
			t.Fatalf("serve exited %d after a second SIGTERM: %s", status, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit on a second SIGTERM (drain delay 1 h): %s", stderr.String())
	}
}

func TestEdgeFlagErrors(t *testing.T) {
	base := []string{"edge", "--model", td("tiny-llava"), "--vq", td("vq", "block0_ln1", "alignedvq.safetensors"), "--image", td("images", "square_336.png")}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", "x", "--prompt", "hi"}, "--prompt need --cloud"},
		{[]string{"--out", "x", "--temperature", "1"}, "--temperature need --cloud"},
		{[]string{}, "give --out, --cloud or both"},
		{[]string{"--cloud", "http://127.0.0.1:1"}, "--cloud needs --prompt"},
		{[]string{"--cloud", "http://127.0.0.1:1", "--prompt", "hi", "--bandwidth", "1mbps"}, "bits per second"},
		{[]string{"--out", "x", "--retries", "2"}, "--retries need --cloud"},
		{[]string{"--cloud", "http://127.0.0.1:1", "--prompt", "hi", "--retries", "-1"}, "--retries -1: want at least 0"},
		// Nothing listens there: the request is sent twice, then the error.
		{[]string{"--cloud", "http://127.0.0.1:1", "--prompt", "hi", "--retries", "1"}, "connection refused (after 2 attempts)"},
	} {
		status, _, stderr := avq(t, append(base, c.args...)...)
		if status == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: status %d, %q", c.args, status, stderr)
		}
	}
}
