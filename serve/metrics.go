package serve

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Phases of a request that the latency histogram tracks.
const (
	phaseQueue       = "queue"        // waiting for a slot
	phaseDecodeFrame = "decode_frame" // parsing and checking an AlignedVQ frame
	phaseDecodeImage = "decode_image" // decoding and preprocessing an image file
	phaseVisionTail  = "vision_tail"  // codebook lookup, DLP_out, residual, the tower after the split, projector
	phaseVision      = "vision"       // the whole tower and the projector (whole images)
	phasePrefill     = "prefill"
	phaseDecode      = "decode" // every token after the first
)

var phases = []string{phaseQueue, phaseDecodeFrame, phaseDecodeImage, phaseVisionTail, phaseVision, phasePrefill, phaseDecode}

// latencyBuckets are the histogram's upper bounds in seconds: 1 ms to 2 min.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

type histogram struct {
	counts []int64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      int64
}

// metrics are the server's counters, written in the Prometheus text
// exposition format (version 0.0.4) by hand.
type metrics struct {
	mu        sync.Mutex
	requests  map[[2]string]int64 // {endpoint, code}
	cancelled map[[2]string]int64 // {endpoint, reason}
	bodyBytes map[string]int64    // by endpoint
	promptTok int64
	genTok    int64
	phases    map[string]*histogram
	load      time.Duration
}

func newMetrics() *metrics {
	m := &metrics{
		requests:  map[[2]string]int64{},
		cancelled: map[[2]string]int64{},
		bodyBytes: map[string]int64{},
		phases:    map[string]*histogram{},
	}
	for _, p := range phases {
		m.phases[p] = &histogram{counts: make([]int64, len(latencyBuckets)+1)}
	}
	return m
}

func (m *metrics) request(endpoint string, code int) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, strconv.Itoa(code)}]++
	m.mu.Unlock()
}

// cancel counts a request whose work stopped early: reason "client_gone"
// or "timeout".
func (m *metrics) cancel(endpoint, reason string) {
	m.mu.Lock()
	m.cancelled[[2]string{endpoint, reason}]++
	m.mu.Unlock()
}

func (m *metrics) body(endpoint string, n int) {
	m.mu.Lock()
	m.bodyBytes[endpoint] += int64(n)
	m.mu.Unlock()
}

func (m *metrics) tokens(prompt, generated int) {
	m.mu.Lock()
	m.promptTok += int64(prompt)
	m.genTok += int64(generated)
	m.mu.Unlock()
}

func (m *metrics) observe(phase string, d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, s)
	m.mu.Lock()
	h := m.phases[phase]
	h.counts[i]++
	h.sum += s
	h.n++
	m.mu.Unlock()
}

func (m *metrics) loaded(d time.Duration) {
	m.mu.Lock()
	m.load = d
	m.mu.Unlock()
}

// gauges are read at scrape time from the queue and the server state.
type gauges struct {
	queueDepth, running, uploading int64
	ready                          bool
}

func (m *metrics) write(w io.Writer, g gauges) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	family("avq_requests_total", "counter", "Requests answered, by endpoint and HTTP status code (499: the client went away first).")
	for _, k := range sortedKeys(m.requests) {
		fmt.Fprintf(&b, "avq_requests_total{endpoint=%s,code=%s} %d\n", quote(k[0]), quote(k[1]), m.requests[k])
	}
	family("avq_requests_cancelled_total", "counter", "Requests whose work stopped early, by endpoint and reason (client_gone, timeout).")
	for _, k := range sortedKeys(m.cancelled) {
		fmt.Fprintf(&b, "avq_requests_cancelled_total{endpoint=%s,reason=%s} %d\n", quote(k[0]), quote(k[1]), m.cancelled[k])
	}
	family("avq_request_body_bytes_total", "counter", "Request body bytes received, by endpoint.")
	for _, k := range sortedKeys(m.bodyBytes) {
		fmt.Fprintf(&b, "avq_request_body_bytes_total{endpoint=%s} %d\n", quote(k), m.bodyBytes[k])
	}
	// Each of these four is written under vLLM's name too, which the
	// Gateway API inference extension's model server protocol reads
	// (TotalQueuedRequests, TotalRunningRequests).
	family("avq_queue_depth", "gauge", "Requests whose body is in, waiting for a slot.")
	fmt.Fprintf(&b, "avq_queue_depth %d\n", g.queueDepth)
	family("vllm:num_requests_waiting", "gauge", "Requests waiting for a slot (avq_queue_depth).")
	fmt.Fprintf(&b, "vllm:num_requests_waiting %d\n", g.queueDepth)
	family("avq_requests_running", "gauge", "Requests running on the model.")
	fmt.Fprintf(&b, "avq_requests_running %d\n", g.running)
	family("vllm:num_requests_running", "gauge", "Requests running on the model (avq_requests_running).")
	fmt.Fprintf(&b, "vllm:num_requests_running %d\n", g.running)
	family("avq_uploads_in_progress", "gauge", "Request bodies being received (they hold no queue place yet).")
	fmt.Fprintf(&b, "avq_uploads_in_progress %d\n", g.uploading)
	family("avq_prompt_tokens_total", "counter", "Positions prefilled (image tokens included).")
	fmt.Fprintf(&b, "avq_prompt_tokens_total %d\n", m.promptTok)
	family("vllm:prompt_tokens_total", "counter", "Positions prefilled (avq_prompt_tokens_total).")
	fmt.Fprintf(&b, "vllm:prompt_tokens_total %d\n", m.promptTok)
	family("avq_generated_tokens_total", "counter", "Tokens generated by finished requests.")
	fmt.Fprintf(&b, "avq_generated_tokens_total %d\n", m.genTok)
	family("vllm:generation_tokens_total", "counter", "Tokens generated by finished requests (avq_generated_tokens_total).")
	fmt.Fprintf(&b, "vllm:generation_tokens_total %d\n", m.genTok)
	family("avq_model_ready", "gauge", "1 when the model is loaded and the server is not draining.")
	ready := 0
	if g.ready {
		ready = 1
	}
	fmt.Fprintf(&b, "avq_model_ready %d\n", ready)
	family("avq_model_load_seconds", "gauge", "Time the model took to load.")
	fmt.Fprintf(&b, "avq_model_load_seconds %s\n", formatFloat(m.load.Seconds()))
	family("avq_phase_seconds", "histogram", "Latency of each phase of a request.")
	for _, p := range phases {
		h := m.phases[p]
		var cum int64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "avq_phase_seconds_bucket{phase=%s,le=%s} %d\n", quote(p), quote(formatFloat(le)), cum)
		}
		fmt.Fprintf(&b, "avq_phase_seconds_bucket{phase=%s,le=\"+Inf\"} %d\n", quote(p), h.n)
		fmt.Fprintf(&b, "avq_phase_seconds_sum{phase=%s} %s\n", quote(p), formatFloat(h.sum))
		fmt.Fprintf(&b, "avq_phase_seconds_count{phase=%s} %d\n", quote(p), h.n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// quote writes a label value: in double quotes, with backslash, quote and
// newline escaped as the exposition format requires.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func sortedKeys[K interface{ ~string | ~[2]string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return keys
}
