package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava"
)

// chatBody is a chat request with one user message: the question and,
// when image is not nil, the image as a data URI.
func chatBody(image []byte, extra string) []byte {
	parts := `{"type":"text","text":"` + question + `"}`
	if image != nil {
		parts = `{"type":"image_url","image_url":{"url":"data:image/png;base64,` + base64.StdEncoding.EncodeToString(image) + `"}},` + parts
	}
	return []byte(`{"model":"tiny","messages":[{"role":"user","content":[` + parts + `]}]` + extra + `}`)
}

type completion struct {
	Choices []struct {
		Message      *chatMessage `json:"message"`
		Delta        *chatDelta   `json:"delta"`
		FinishReason *string      `json:"finish_reason"`
	} `json:"choices"`
	Usage   *chatUsage `json:"usage"`
	Object  string     `json:"object"`
	Model   string     `json:"model"`
	ID      string     `json:"id"`
	Timings *Timings   `json:"timings"`
}

func TestChatEqualsInProcess(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), withoutVQ(m))
	png := readImage(t, "square_336.png")
	want := inProcess(t, m, nil, pixels(t, m, "square_336.png"), 24, llama.Sampling{})
	resp, body := ts.post(t, "/v1/chat/completions", "application/json", chatBody(png, `,"temperature":0,"max_tokens":24`))
	var c completion
	if err := json.Unmarshal(body, &c); err != nil || resp.StatusCode != 200 || len(c.Choices) != 1 || c.Choices[0].Message == nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got := c.Choices[0]
	if got.Message.Content != want.Text || got.Message.Role != "assistant" || *got.FinishReason != "length" ||
		c.Object != "chat.completion" || c.Model != "tiny" || !strings.HasPrefix(c.ID, "chatcmpl-") {
		t.Fatalf("answered %s, in process %q", body, want.Text)
	}
	if u := c.Usage; u == nil || u.PromptTokens != want.PromptTokens || u.CompletionTokens != len(want.IDs) ||
		u.TotalTokens != u.PromptTokens+u.CompletionTokens || u.PromptTokens < 576 {
		t.Errorf("usage %+v, in process %d prompt positions and %d tokens", c.Usage, want.PromptTokens, len(want.IDs))
	}

	// Streaming: a role chunk, several content chunks in order that make up
	// the same text, a finish reason, the usage, then [DONE].
	resp, body = ts.post(t, "/v1/chat/completions", "application/json",
		chatBody(png, `,"temperature":0,"max_completion_tokens":24,"stream":true,"stream_options":{"include_usage":true}`))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var events []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				t.Fatalf("not an event line: %q", line)
			}
			events = append(events, data)
		}
	}
	if len(events) < 6 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("%d events, the last %q", len(events), events[len(events)-1])
	}
	var text strings.Builder
	var finish string
	var usage *chatUsage
	for i, ev := range events[:len(events)-1] {
		var ch completion
		if err := json.Unmarshal([]byte(ev), &ch); err != nil || ch.Object != "chat.completion.chunk" {
			t.Fatalf("event %d: %q: %v", i, ev, err)
		}
		if ch.Usage != nil {
			usage = ch.Usage
			continue
		}
		d := ch.Choices[0].Delta
		if (i == 0) != (d.Role == "assistant") {
			t.Errorf("event %d has role %q", i, d.Role)
		}
		if d.Content != nil {
			text.WriteString(*d.Content)
		}
		if r := ch.Choices[0].FinishReason; r != nil {
			finish = *r
		}
	}
	if text.String() != want.Text || finish != "length" || usage == nil || usage.CompletionTokens != len(want.IDs) {
		t.Errorf("streamed %q (finish %q, usage %+v), in process %q", text.String(), finish, usage, want.Text)
	}
}

// TestChatPrompt checks the prompt a conversation renders to: the image
// before the text of its message, a system message replacing the
// template's, earlier turns kept.
func TestChatPrompt(t *testing.T) {
	s, err := New(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"messages":[
		{"role":"system","content":"Be brief."},
		{"role":"user","content":"Hello"},
		{"role":"assistant","content":[{"type":"text","text":"Hi."}]},
		{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":"data:image/png;base64,iVBORw0KGgo="}]}],
		"stop":"x","seed":3,"top_p":0.5}`)
	tk, _, e := s.chatTask(body, tinyModel(t))
	if e != nil {
		t.Fatal(e)
	}
	want := llava.Templates["vicuna_v1"].Render("Be brief.", []llava.Turn{
		{Role: "user", Text: "Hello"}, {Role: "assistant", Text: "Hi."}, {Role: "user", Text: "What is this?", Image: true}})
	if !reflect.DeepEqual(tk.prompt, want) || string(tk.image) != "\x89PNG\r\n\x1a\n" || len(tk.stop) != 1 ||
		tk.sampling != (llama.Sampling{Temperature: 1, TopP: 0.5, Seed: 3}) || tk.maxTokens != 4096 {
		t.Fatalf("task %+v\nprompt %+v\nwant   %+v", tk, tk.prompt, want)
	}
	// Without a system message the template's own is used; text alone is
	// a text-only chat.
	tk, _, e = s.chatTask([]byte(`{"messages":[{"role":"user","content":"Hi"}],"max_tokens":5}`), tinyModel(t))
	if e != nil || !reflect.DeepEqual(tk.prompt, llava.Templates["vicuna_v1"].Prompt("Hi", false)) || tk.image != nil || tk.maxTokens != 5 {
		t.Fatalf("%+v %v", tk, e)
	}
}

func TestChatTextOnly(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	resp, body := ts.post(t, "/v1/chat/completions", "application/json",
		[]byte(`{"messages":[{"role":"user","content":"Say something."}],"temperature":0,"max_tokens":6}`))
	want, err := m.Generate(context.Background(), llava.Request{Prompt: llava.Templates["vicuna_v1"].Prompt("Say something.", false), MaxTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	var c completion
	if json.Unmarshal(body, &c) != nil || resp.StatusCode != 200 || c.Choices[0].Message.Content != want.Text {
		t.Fatalf("%d %s, want %q", resp.StatusCode, body, want.Text)
	}
}

func TestChatRefusals(t *testing.T) {
	m := tinyModel(t)
	ts := start(t, testOptions(), m)
	png := readImage(t, "tiny_32x24.png")
	img := `{"type":"image_url","image_url":{"url":"data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"}}`
	for _, c := range []struct {
		name, body string
		code       string
	}{
		{"not JSON", `{"messages":`, "invalid_json"},
		{"two objects", `{"messages":[]} {}`, "invalid_json"},
		{"wrong types", `{"messages":"hi"}`, "invalid_json"},
		{"content of numbers", `{"messages":[{"role":"user","content":5}]}`, "invalid_json"},
		{"no messages", `{"messages":[]}`, "bad_messages"},
		{"n=2", `{"messages":[{"role":"user","content":"hi"}],"n":2}`, "unsupported"},
		{"tools", `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}`, "unsupported"},
		{"json mode", `{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`, "unsupported"},
		{"logprobs", `{"messages":[{"role":"user","content":"hi"}],"logprobs":true}`, "unsupported"},
		{"penalty", `{"messages":[{"role":"user","content":"hi"}],"presence_penalty":0.5}`, "unsupported"},
		{"two images", `{"messages":[{"role":"user","content":[` + img + `,` + img + `]}]}`, "unsupported"},
		{"an http URL", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://169.254.169.254/x.png"}}]}]}`, "bad_image"},
		{"bad base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%%%"}}]}]}`, "bad_image"},
		{"not an image type", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGk="}}]}]}`, "bad_image"},
		{"not base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "bad_image"},
		{"broken image", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"max_tokens":2}`, "invalid_image"},
		{"audio", `{"messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "unsupported"},
		{"tool role", `{"messages":[{"role":"tool","content":"x"}]}`, "bad_messages"},
		{"assistant last", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`, "bad_messages"},
		{"image from the assistant", `{"messages":[{"role":"assistant","content":[` + img + `]},{"role":"user","content":"hi"}]}`, "bad_messages"},
		{"temperature 3", `{"messages":[{"role":"user","content":"hi"}],"temperature":3}`, "bad_parameter"},
		{"top_p 0", `{"messages":[{"role":"user","content":"hi"}],"top_p":0}`, "bad_parameter"},
		{"negative max_tokens", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":-1}`, "bad_parameter"},
		{"five stops", `{"messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}`, "bad_parameter"},
		{"long prompt", `{"messages":[{"role":"user","content":"` + strings.Repeat("y", 5000) + `"}]}`, "prompt_too_long"},
	} {
		resp, body := ts.post(t, "/v1/chat/completions", "application/json", []byte(c.body))
		wantAPIError(t, c.name, resp.StatusCode, body, http.StatusBadRequest, c.code)
	}
	resp, body := ts.post(t, "/v1/chat/completions", "text/plain", chatBody(nil, ""))
	wantAPIError(t, "text/plain", resp.StatusCode, body, http.StatusUnsupportedMediaType, "bad_content_type")
	if code, b := ts.get(t, "/health"); code != 200 {
		t.Fatalf("health after the refusals: %d %s", code, b)
	}
}

func TestDecodeDataURI(t *testing.T) {
	for uri, want := range map[string]string{
		"data:image/png;base64,aGVsbG8=": "hello",
		"data:image/jpeg;base64,aGVsbG8": "hello", // padding left out
		"data:;base64,aGk=":              "hi",
		"data:image/png;x=y;base64,aGk=": "hi",
	} {
		if b, err := decodeDataURI(uri); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", uri, b, err)
		}
	}
	for _, uri := range []string{"https://example.com/a.png", "file:///etc/passwd", "data:image/png;base64,", "data:image/png;base64"} {
		if _, err := decodeDataURI(uri); err == nil {
			t.Errorf("%s: accepted", uri)
		}
	}
}
