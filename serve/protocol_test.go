package serve

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava"
)

const question = "What is in the image?"

// inProcess answers as `avq run` does, without a server: the features
// come from a frame through the split (frame != nil) or from the pixels.
func inProcess(t *testing.T, m *llava.Model, frame []byte, pix []float32, maxTokens int, s llama.Sampling) *llava.Result {
	t.Helper()
	req := llava.Request{Prompt: llava.Templates[llava.DefaultTemplate].Prompt(question, true), MaxTokens: maxTokens, Sampling: s}
	if frame != nil {
		res, err := m.DecodeFrame(frame)
		if err != nil {
			t.Fatal(err)
		}
		req.Image = res.Projected
	} else {
		f, err := m.SelectFeatures(pix)
		if err != nil {
			t.Fatal(err)
		}
		req.Image = m.Project(f)
	}
	res, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSplitAnswerEqualsInProcess(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []llama.Sampling{{}, {Temperature: 0.8, TopK: 40, TopP: 0.9, Seed: 7}} {
		want := inProcess(t, m, e.Frame, nil, 24, s)
		var pieces []string
		c := Client{URL: ts.url, HTTP: ts.client}
		ans, err := c.Answer(context.Background(), Request{Frame: e.Frame, Prompt: question, MaxTokens: 24, Sampling: s},
			func(p string) error { pieces = append(pieces, p); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ans.IDs, want.IDs) || ans.Text != want.Text || !slices.Equal(ans.PromptIDs, want.PromptIDs) ||
			ans.StopReason != want.StopReason || ans.PromptTokens != want.PromptTokens || ans.CompletionTokens != len(want.IDs) {
			t.Fatalf("%+v: the server answered %v %q (%s), in process %v %q (%s)", s, ans.IDs, ans.Text, ans.StopReason,
				want.IDs, want.Text, want.StopReason)
		}
		// The answer streams: several pieces, in order, making up the text.
		if len(pieces) < 5 || strings.Join(pieces, "") != ans.Text {
			t.Errorf("streamed %d pieces %q for the answer %q", len(pieces), pieces, ans.Text)
		}
		if ans.Fingerprint != hex.EncodeToString(m.VQ.Fingerprint[:]) || ans.BodyBytes != EnvelopeSize+len(e.Frame)+len(question) {
			t.Errorf("fingerprint %q, body %d bytes", ans.Fingerprint, ans.BodyBytes)
		}
		if ans.Server.VisionMS <= 0 || ans.Server.PrefillMS <= 0 || ans.FirstText <= 0 || ans.Total < ans.FirstText {
			t.Errorf("timings %+v, first text %v, total %v", ans.Server, ans.FirstText, ans.Total)
		}
	}
}

func TestImageAnswerEqualsInProcess(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	want := inProcess(t, m, nil, pixels(t, m, "wide_640x360.jpg"), 16, llama.Sampling{})
	c := Client{URL: ts.url, HTTP: ts.client}
	ans, err := c.Answer(context.Background(), Request{Image: readImage(t, "wide_640x360.jpg"), Prompt: question, MaxTokens: 16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ans.IDs, want.IDs) || ans.Text != want.Text || ans.Server.DecodeImageMS <= 0 {
		t.Fatalf("the server answered %v %q (%+v), in process %v %q", ans.IDs, ans.Text, ans.Server, want.IDs, want.Text)
	}
}

func TestVisionOnly(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	e, err := m.EncodeFrame(pixels(t, m, "tall_200x500.png"), true)
	if err != nil {
		t.Fatal(err)
	}
	c := Client{URL: ts.url, HTTP: ts.client}
	for _, req := range []Request{{Frame: e.Frame}, {Image: readImage(t, "tall_200x500.png")}} {
		ans, err := c.Answer(context.Background(), req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ans.Text != "" || len(ans.IDs) != 0 || ans.Server.VisionMS <= 0 || ans.Server.PrefillMS != 0 || ans.FirstText != 0 {
			t.Errorf("max_tokens=0 answered %+v", ans)
		}
	}
	// A server without a language model serves exactly these requests.
	vision := *m
	vision.LLM, vision.Projector, vision.Tokenizer = nil, nil, nil
	ts2 := start(t, testOptions(), &vision)
	c2 := Client{URL: ts2.url, HTTP: ts2.client}
	if _, err := c2.Answer(context.Background(), Request{Frame: e.Frame}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c2.Answer(context.Background(), Request{Frame: e.Frame, MaxTokens: 4}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != http.StatusBadRequest || ae.Code != "no_language_model" {
		t.Errorf("generation on a vision-only server: %v", err)
	}
}

func TestSplitRefusals(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := loadTiny("block1_ln2") // another module: another codebook
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.EncodeFrame(pixels(t, other, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := slices.Clone(e.Frame)
	corrupt[30] ^= 1
	env := func(payload []byte, prompt string) []byte { return AppendEnvelope(nil, payload, prompt) }
	for _, c := range []struct {
		name, query, contentType string
		body                     []byte
		status                   int
		code                     string
	}{
		{"empty body", "", ContentTypeFrame, nil, 400, "bad_envelope"},
		{"short length", "", ContentTypeFrame, []byte{1, 2}, 400, "bad_envelope"},
		{"length past the end", "", ContentTypeFrame, binary.LittleEndian.AppendUint32(nil, 5000), 400, "bad_envelope"},
		{"no payload", "", ContentTypeFrame, env(nil, question), 400, "bad_envelope"},
		{"prompt not UTF-8", "", ContentTypeFrame, env(e.Frame, "\xff\xfe"), 400, "bad_envelope"},
		{"garbage frame", "", ContentTypeFrame, env([]byte("not a frame at all, not at all"), question), 400, "invalid_frame"},
		{"truncated frame", "", ContentTypeFrame, env(e.Frame[:len(e.Frame)-9], question), 400, "invalid_frame"},
		{"bad CRC", "", ContentTypeFrame, env(corrupt, question), 400, "invalid_frame"},
		{"another module's frame", "", ContentTypeFrame, env(foreign.Frame, question), 409, "module_mismatch"},
		{"prompt too long", "", ContentTypeFrame, env(e.Frame, strings.Repeat("x", 5000)), 400, "prompt_too_long"},
		{"prompt over the context", "", ContentTypeFrame, env(e.Frame, strings.Repeat("\U0001F9FF", 1000)), 400, "context_length_exceeded"},
		{"body too large", "", ContentTypeFrame, make([]byte, 2<<20), 413, "body_too_large"},
		{"wrong content type", "", "application/json", env(e.Frame, question), 415, "bad_content_type"},
		{"unknown parameter", "?max_token=3", ContentTypeFrame, env(e.Frame, question), 400, "unknown_parameter"},
		{"bad temperature", "?temperature=-1", ContentTypeFrame, env(e.Frame, question), 400, "bad_parameter"},
		{"NaN top_p", "?top_p=NaN", ContentTypeFrame, env(e.Frame, question), 400, "bad_parameter"},
		{"unknown template", "?template=chatml", ContentTypeFrame, env(e.Frame, question), 400, "bad_parameter"},
		{"two max_tokens", "?max_tokens=1&max_tokens=2", ContentTypeFrame, env(e.Frame, question), 400, "bad_parameter"},
		{"image placeholder in the question", "?template=raw", ContentTypeFrame, env(e.Frame, "no placeholder"), 400, "image_placeholder"},
		{"image that is not one", "", ContentTypeImage, env([]byte("GIF89a, or so it says"), question), 400, "invalid_image"},
	} {
		path := "/v1/split"
		if c.contentType == ContentTypeImage {
			path = "/v1/image"
		}
		resp, body := ts.post(t, path+c.query, c.contentType, c.body)
		wantAPIError(t, c.name, resp.StatusCode, body, c.status, c.code)
	}
	resp, _ := ts.post(t, "/v1/split", ContentTypeFrame, nil)
	if resp.Header.Get(FingerprintHeader) != hex.EncodeToString(m.VQ.Fingerprint[:]) {
		t.Errorf("a refusal carries fingerprint %q", resp.Header.Get(FingerprintHeader))
	}
	code, body := ts.get(t, "/v1/split")
	wantAPIError(t, "GET /v1/split", code, []byte(body), http.StatusMethodNotAllowed, "method_not_allowed")
	if code, b := ts.get(t, "/health"); code != 200 {
		t.Fatalf("health after the refusals: %d %s", code, b)
	}
}

func TestSplitWithoutModule(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), withoutVQ(m))
	e, err := m.EncodeFrame(pixels(t, m, "square_336.png"), false)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := ts.post(t, "/v1/split", ContentTypeFrame, AppendEnvelope(nil, e.Frame, question))
	wantAPIError(t, "split without a module", resp.StatusCode, body, http.StatusNotFound, "no_vq_module")
	if resp.Header.Get(FingerprintHeader) != "" {
		t.Error("a server without a module sends a fingerprint")
	}
}

func TestParseParams(t *testing.T) {
	def := llava.Templates["vicuna_v1"]
	q, _ := url.ParseQuery("max_tokens=0&temperature=0.5&top_k=3&top_p=0.25&seed=18446744073709551615&stop=a&stop=b%20c&template=hf")
	p, e := parseParams(q, def)
	want := llama.Sampling{Temperature: 0.5, TopK: 3, TopP: 0.25, Seed: 1<<64 - 1}
	if e != nil || p.maxTokens != 0 || p.sampling != want || fmt.Sprint(p.stop) != "[a b c]" || p.template.Name != "hf" {
		t.Fatalf("parsed %+v, %v", p, e)
	}
	p, e = parseParams(url.Values{}, def)
	if e != nil || p.maxTokens != llava.DefaultMaxTokens || p.sampling != (llama.Sampling{TopP: 1}) || p.template != def {
		t.Fatalf("defaults %+v, %v", p, e)
	}
	// The client sends only what differs from the defaults.
	r := Request{MaxTokens: llava.DefaultMaxTokens, Sampling: llama.Sampling{TopP: 1}}
	if q := r.query().Encode(); q != "" {
		t.Errorf("default request sends %q", q)
	}
	r = Request{MaxTokens: 0, Sampling: want, Stop: []string{"a", "b c"}, Template: "hf"}
	if p, e := parseParams(r.query(), def); e != nil || p.maxTokens != 0 || p.sampling != want || fmt.Sprint(p.stop) != "[a b c]" {
		t.Errorf("round trip: %+v, %v", p, e)
	}
}

func TestParseEnvelope(t *testing.T) {
	b := AppendEnvelope(nil, []byte{9, 8, 7}, "héllo")
	if len(b) != EnvelopeSize+3+len("héllo") {
		t.Fatalf("envelope of %d bytes", len(b))
	}
	payload, prompt, err := parseEnvelope(b)
	if err != nil || string(payload) != "\x09\x08\x07" || prompt != "héllo" {
		t.Fatalf("%v %q %v", payload, prompt, err)
	}
	if _, p, err := parseEnvelope(AppendEnvelope(nil, []byte{1}, "")); err != nil || p != "" {
		t.Fatalf("an empty prompt: %q %v", p, err)
	}
}
