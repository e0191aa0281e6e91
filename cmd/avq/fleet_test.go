//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/serve"
)

// The fleet test: three avq serve replicas behind HAProxy, configured by
// deploy/haproxy/haproxy.cfg, everything on 127.0.0.1 with ephemeral ports.
// Linux only: the replicas and HAProxy die with the test (Pdeathsig).

// dieWithTest makes a child process end when the test binary does, even
// when it is killed.
var dieWithTest = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

// TestFleetReplica is not a test: it is one replica, when the fleet test
// starts this binary again with AVQ_FLEET_REPLICA set to its --listen.
func TestFleetReplica(t *testing.T) {
	listen := os.Getenv("AVQ_FLEET_REPLICA")
	if listen == "" {
		return
	}
	os.Exit(Main([]string{"serve", "--model", td("tiny-llava"), "--vq", td("vq", "block0_ln1", "alignedvq.safetensors"),
		"--listen", listen, "--threads", "1", "--parallel", "2", "--max-queue", "32",
		"--drain-delay", "3s", "--shutdown-timeout", "60s"}, os.Stdout, os.Stderr))
}

type replica struct {
	name, addr string
	cmd        *exec.Cmd
	stderr     *lockedBuffer
	exited     chan struct{} // closed once the process is gone
	err        error         // its exit, once exited is closed
}

// startReplica runs a replica listening on listen and waits until its
// /health answers 200.
func startReplica(t *testing.T, name, listen string) *replica {
	t.Helper()
	r := &replica{name: name, stderr: new(lockedBuffer), exited: make(chan struct{})}
	r.cmd = exec.Command(os.Args[0], "-test.run=^TestFleetReplica$")
	r.cmd.Env = append(os.Environ(), "AVQ_FLEET_REPLICA="+listen)
	r.cmd.Stderr = r.stderr
	r.cmd.SysProcAttr = dieWithTest
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.exited
	})
	listening := regexp.MustCompile(`listening on http://(\S+);`)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := listening.FindStringSubmatch(r.stderr.String()); m != nil && r.addr == "" {
			r.addr = m[1]
		}
		if r.addr != "" {
			if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + r.addr + "/health"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return r
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s never healthy: %s", name, r.stderr.String())
		}
	}
}

// freeAddr is a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// servedBy counts the replicas that answered, by HAProxy's X-Avq-Replica.
type servedBy struct {
	mu sync.Mutex
	n  map[string]int
	rt http.RoundTripper
}

func (s *servedBy) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.rt.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK {
		s.mu.Lock()
		s.n[resp.Header.Get("X-Avq-Replica")]++
		s.mu.Unlock()
	}
	return resp, err
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestFleetBehindHAProxy sends 48 concurrent split and OpenAI requests
// through HAProxy to three replicas, twice: while one replica drains on
// SIGTERM (every request answered, none resent by the client, each
// replica served some) and while one is killed (every request still gets
// the right answer, through the balancer's or the client's retry).
func TestFleetBehindHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	switch {
	case err != nil && os.Getenv("AVQ_REQUIRE_HAPROXY") != "":
		t.Fatalf("AVQ_REQUIRE_HAPROXY is set and haproxy is not installed: %v", err)
	case err != nil:
		t.Skip("haproxy is not installed, so the fleet test does not run (apt-get install haproxy; .ci/run installs it)")
	}
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	m, err := loadLocal(c, td("tiny-llava"), "", td("vq", "block0_ln1", "alignedvq.safetensors"), "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.cpu.Close()
	defer m.Checkpoint.Close()
	pix, err := m.Checkpoint.Pixels(td("images", "square_336.png"), llava.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := m.EncodeFrame(pix, false)
	if err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(td("images", "tiny_32x24.png"))
	if err != nil {
		t.Fatal(err)
	}
	splitReq := serve.Request{Frame: enc.Frame, Prompt: "What is in the image?", MaxTokens: 48}
	chat, _ := json.Marshal(map[string]any{"max_tokens": 48, "temperature": 0, "messages": []any{map[string]any{"role": "user", "content": []any{
		map[string]any{"type": "text", "text": "Describe it."},
		map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)}},
	}}}})

	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = startReplica(t, fmt.Sprintf("r%d", i+1), "127.0.0.1:0")
	}
	// The right answers, from a replica directly.
	bounded := &http.Client{Timeout: time.Minute} // every request of the test ends
	direct := serve.Client{URL: "http://" + replicas[0].addr, HTTP: bounded}
	want, err := direct.Answer(context.Background(), splitReq, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantChat := askChat(t, bounded, "http://"+replicas[0].addr, chat)

	lb := freeAddr(t)
	hp := exec.Command(haproxy, "-db", "-f", "../../deploy/haproxy/haproxy.cfg")
	hp.Env = append(os.Environ(), "AVQ_LISTEN="+lb, "AVQ_REPLICA1="+replicas[0].addr, "AVQ_REPLICA2="+replicas[1].addr, "AVQ_REPLICA3="+replicas[2].addr)
	hpLog := new(lockedBuffer)
	hp.Stdout, hp.Stderr = hpLog, hpLog
	hp.SysProcAttr = dieWithTest
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		hp.Process.Kill()
		hp.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", hpLog.String())
		}
	}()
	lbURL := "http://" + lb
	waitFor(t, "haproxy answering", func() bool {
		resp, err := bounded.Get(lbURL + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// burst sends the requests and calls hit, once: after the first few
	// answers, as soon as target streams text of a split answer (so that
	// the signal lands mid-answer), or at half the answers if it does not.
	// It returns the client's resends and who served what.
	burst := func(name, target string, hit func()) (int, map[string]int) {
		const requests, hitAfter = 48, 6
		by := &servedBy{n: map[string]int{}, rt: &http.Transport{MaxIdleConnsPerHost: requests}}
		hc := &http.Client{Transport: by, Timeout: time.Minute}
		var (
			mu      sync.Mutex
			done    int
			resends int
			once    sync.Once
			wg      sync.WaitGroup
		)
		answered := func() {
			mu.Lock()
			done++
			n := done
			mu.Unlock()
			if n == requests/2 {
				once.Do(hit)
			}
		}
		for i := range requests {
			wg.Go(func() {
				if i%2 == 0 {
					var from string // the replica of the latest attempt
					tagged := &http.Client{Timeout: time.Minute, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
						resp, err := by.RoundTrip(r)
						if err == nil {
							from = resp.Header.Get("X-Avq-Replica")
						}
						return resp, err
					})}
					client := serve.Client{URL: lbURL, HTTP: tagged, Retry: serve.Retry{Attempts: 5, Backoff: 100 * time.Millisecond}}
					ans, err := client.Answer(context.Background(), splitReq, func(string) error {
						mu.Lock()
						ripe := done >= hitAfter
						mu.Unlock()
						if ripe && from == target {
							once.Do(hit)
						}
						return nil
					})
					switch {
					case err != nil:
						t.Errorf("%s: split request %d: %v", name, i, err)
					case !slicesEqual(ans.IDs, want.IDs):
						t.Errorf("%s: split request %d: ids %v, want %v", name, i, ans.IDs, want.IDs)
					default:
						mu.Lock()
						resends += ans.Retries
						mu.Unlock()
					}
				} else if got := askChat(t, hc, lbURL, chat); got != wantChat {
					t.Errorf("%s: chat request %d: %q, want %q", name, i, got, wantChat)
				}
				answered()
			})
		}
		wg.Wait()
		return resends, by.n
	}

	// SIGTERM: r3 drains (health 503 with the listener open, then its
	// running requests finish); nothing fails and nothing is resent.
	resends, by := burst("SIGTERM", "r3", func() { replicas[2].cmd.Process.Signal(syscall.SIGTERM) })
	if resends != 0 {
		t.Errorf("SIGTERM: the client resent %d requests; a drain needs none", resends)
	}
	for _, r := range replicas {
		if by[r.name] == 0 {
			t.Errorf("SIGTERM: replica %s served nothing: %v", r.name, by)
		}
	}
	select {
	case <-replicas[2].exited:
		if err := replicas[2].err; err != nil || !bytes.Contains([]byte(replicas[2].stderr.String()), []byte("drained")) {
			t.Errorf("r3 after SIGTERM: %v\n%s", err, replicas[2].stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("r3 did not exit after SIGTERM:\n%s", replicas[2].stderr.String())
	}
	t.Logf("SIGTERM: served by %v", by)

	// r3 comes back at its address and the balancer takes it in again.
	replicas[2] = startReplica(t, "r3", replicas[2].addr)
	waitFor(t, "haproxy sending to r3 again", func() bool {
		resp, err := bounded.Get(lbURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("X-Avq-Replica") == "r3"
	})

	// SIGKILL: r2 dies mid-answer; every request still gets its answer.
	resends, by = burst("SIGKILL", "r2", func() { replicas[1].cmd.Process.Kill() })
	t.Logf("SIGKILL: served by %v, %d requests resent by the client", by, resends)
}

// askChat sends a non-streaming chat completion and returns its text.
func askChat(t *testing.T, hc *http.Client, url string, body []byte) string {
	resp, err := hc.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Errorf("chat: %v", err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Choices) != 1 {
		t.Errorf("chat: %d %s", resp.StatusCode, b)
		return ""
	}
	return out.Choices[0].Message.Content
}

// waitFor polls cond for a bounded time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
	}
}
