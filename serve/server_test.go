package serve

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avq/avq/llava"
)

func TestHealthWhileLoading(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), nil)
	release := make(chan struct{})
	loaded := ts.Load(func() (*llava.Model, error) { <-release; return m, nil })
	code, body := ts.get(t, "/health")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"loading"`) {
		t.Fatalf("health while loading: %d %s", code, body)
	}
	resp, b := ts.post(t, "/v1/chat/completions", "application/json", chatBody(nil, ""))
	wantAPIError(t, "chat while loading", resp.StatusCode, b, http.StatusServiceUnavailable, "loading")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After while loading")
	}
	close(release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	code, body = ts.get(t, "/health")
	var h health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h.Status != "ok" || !h.LanguageModel ||
		h.VQ == nil || h.VQ.Fingerprint != hex.EncodeToString(m.VQ.Fingerprint[:]) || h.VQ.K != m.VQ.K || h.VQ.Tokens != 577 {
		t.Fatalf("health when ready: %d %s", code, body)
	}
}

func TestLoadFailure(t *testing.T) {
	ts := start(t, testOptions(), nil)
	if err := <-ts.Load(func() (*llava.Model, error) { return nil, errors.New("no such model") }); err == nil {
		t.Fatal("the load error is lost")
	}
	code, body := ts.get(t, "/health")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no such model") {
		t.Fatalf("health after a failed load: %d %s", code, body)
	}
}

func TestAPIKey(t *testing.T) {
	opt := testOptions()
	opt.APIKey = "sesame"
	ts := start(t, opt, tinyModel(t))
	body := chatBody(nil, `,"max_tokens":2`)
	for _, h := range [][]string{nil, {"Authorization", "Bearer open"}, {"Authorization", "sesame"}, {"Authorization", "Basic c2VzYW1l"},
		{"Authorization", "Bearersesame"}, {"Authorization", "Bearer"}} {
		resp, b := ts.post(t, "/v1/chat/completions", "application/json", body, h...)
		wantAPIError(t, "key "+strings.Join(h, " "), resp.StatusCode, b, http.StatusUnauthorized, "invalid_api_key")
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Error("a 401 without WWW-Authenticate")
		}
	}
	// The scheme's name is case-insensitive (RFC 7235 §2.1).
	for _, h := range []string{"Bearer sesame", "bearer sesame", "BEARER sesame", "bEaReR  sesame"} {
		if resp, b := ts.post(t, "/v1/chat/completions", "application/json", body, "Authorization", h); resp.StatusCode != 200 {
			t.Fatalf("the right key as %q: %d %s", h, resp.StatusCode, b)
		}
	}
	for _, p := range []string{"/health", "/livez", "/metrics"} {
		if code, _ := ts.get(t, p); code != 200 {
			t.Errorf("%s needs the key: %d", p, code)
		}
	}
	if code, _ := ts.get(t, "/v1/models"); code != http.StatusUnauthorized {
		t.Errorf("/v1/models without the key: %d", code)
	}
}

// TestMetricsFormat checks the exposition text: every sample belongs to a
// family announced with HELP and TYPE, histograms are cumulative and end
// at +Inf with their count, and the counters count.
func TestMetricsFormat(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	ts.post(t, "/v1/split?max_tokens=3", ContentTypeFrame, AppendEnvelope(nil, e.Frame, question))
	ts.post(t, "/v1/split", ContentTypeFrame, nil)
	ts.get(t, "/nowhere")
	resp, err := ts.client.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	sample := regexp.MustCompile(`^([a-z_:]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (\S+)$`)
	typed := map[string]string{}
	var lastBucket float64
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			typed[f[2]] = f[3]
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		g := sample.FindStringSubmatch(line)
		if g == nil {
			t.Fatalf("not a sample line: %q", line)
		}
		v, err := strconv.ParseFloat(g[4], 64)
		if err != nil {
			t.Fatalf("%q: value %v", line, err)
		}
		family := g[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(family, suf); ok && typed[base] == "histogram" {
				family = base
			}
		}
		if typed[family] == "" {
			t.Errorf("%q: no TYPE for %s", line, family)
		}
		if strings.HasSuffix(g[1], "_bucket") {
			if strings.Contains(line, `le="0.001"`) {
				lastBucket = 0
			}
			if v < lastBucket {
				t.Errorf("%q: buckets not cumulative", line)
			}
			lastBucket = v
		}
		if strings.HasSuffix(g[1], "_count") && v != lastBucket {
			t.Errorf("%q: count is not the +Inf bucket %v", line, lastBucket)
		}
	}
	for sample, want := range map[string]float64{
		`avq_requests_total{endpoint="split",code="200"}`:          1,
		`avq_requests_total{endpoint="split",code="400"}`:          1,
		`avq_requests_total{endpoint="other",code="404"}`:          1,
		`avq_generated_tokens_total`:                               3,
		`vllm:generation_tokens_total`:                             3,
		`avq_phase_seconds_count{phase="vision_tail"}`:             1,
		`avq_phase_seconds_count{phase="prefill"}`:                 1,
		`avq_request_body_bytes_total{endpoint="split"}`:           float64(EnvelopeSize + len(e.Frame) + len(question)),
		`avq_phase_seconds_bucket{phase="decode_frame",le="+Inf"}`: 1,
	} {
		if got := ts.metric(t, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
}

func TestH2C(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, ts.url+"/v1/split?max_tokens=4", strings.NewReader(string(AppendEnvelope(nil, e.Frame, question))))
	req.Header.Set("Content-Type", ContentTypeFrame)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || !strings.Contains(string(b), `"done":true`) {
		t.Fatalf("%s %d %s", resp.Proto, resp.StatusCode, b)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	pool := writeCert(t, dir)
	opt := testOptions()
	opt.TLSCert, opt.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ts := start(t, opt, tinyModel(t))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(strings.Replace(ts.url, "http:", "https:", 1) + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns a
// pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "avq test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestDrain stops the server while a request runs: /health turns 503 on
// the listener, which stays open for the drain delay while /livez stays
// 200, the running request still gets its whole answer, and Serve returns
// cleanly.
func TestDrain(t *testing.T) {
	m := tinyModel(t)
	opt := testOptions()
	opt.DrainDelay = 2 * time.Second
	ts := start(t, opt, m)
	running, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the server's drain, should the test stop early
	first := true
	ts.textHook = func(context.Context) {
		if first {
			first = false
			close(running)
			<-release
		}
	}
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ans *Answer
		err error
	}
	answered := make(chan result, 1)
	go func() {
		c := Client{URL: ts.url, HTTP: ts.client}
		ans, err := c.Answer(context.Background(), Request{Frame: e.Frame, Prompt: question, MaxTokens: 12}, nil)
		answered <- result{ans, err}
	}()
	<-running
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	eventually(t, "draining", ts.draining.Load)
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // a new connection each
	for _, c := range []struct {
		path string
		code int
		body string
	}{{"/health", http.StatusServiceUnavailable, `"status":"draining"`}, {"/livez", http.StatusOK, "ok"}} {
		resp, err := fresh.Get(ts.url + c.path)
		if err != nil {
			t.Fatalf("%s while draining: the listener is closed: %v", c.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.body) {
			t.Errorf("%s while draining: %d %s", c.path, resp.StatusCode, b)
		}
	}
	unblock()
	r := <-answered
	if r.err != nil || len(r.ans.IDs) != 12 {
		t.Fatalf("the running request: %+v %v", r.ans, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// TestAbort: Abort cuts a drain short, the delay and the running requests'
// time included.
func TestAbort(t *testing.T) {
	m := tinyModel(t)
	opt := testOptions()
	opt.DrainDelay, opt.ShutdownTimeout = time.Hour, time.Hour
	ts := start(t, opt, m)
	running := make(chan struct{})
	var once sync.Once
	ts.textHook = func(ctx context.Context) {
		once.Do(func() { close(running) })
		<-ctx.Done()
	}
	go func() {
		if resp, err := ts.client.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(chatBody(nil, `,"max_tokens":50`))); err == nil {
			resp.Body.Close()
		}
	}()
	<-running
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	eventually(t, "draining", ts.draining.Load)
	ts.Abort()
	if err := <-stopped; !errors.Is(err, ErrAborted) {
		t.Fatalf("Serve after Abort: %v, want ErrAborted", err)
	}
}

func TestPprof(t *testing.T) {
	opt := testOptions()
	ts := start(t, opt, tinyModel(t))
	if code, _ := ts.get(t, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof without --pprof: %d", code)
	}
	opt.Pprof = true
	ts = start(t, opt, tinyModel(t))
	if code, body := ts.get(t, "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof: %d", code)
	}
	if code, _ := ts.get(t, "/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Errorf("pprof goroutine: %d", code)
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, f := range []func(*Options){
		func(o *Options) { o.Parallel = 0 },
		func(o *Options) { o.MaxQueue = -1 },
		func(o *Options) { o.MaxBody = 0 },
		func(o *Options) { o.Template = nil },
		func(o *Options) { o.TLSCert = "x" },
		func(o *Options) { o.ReadTimeout = 0 },
		func(o *Options) { o.DrainDelay = -time.Second },
		func(o *Options) { o.MaxUploads = 0 },
		func(o *Options) { o.MaxUploadsPerConn = 0 },
		func(o *Options) { o.MinUploadRate = -1 },
	} {
		o := DefaultOptions()
		f(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
