package serve

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/avq/avq/llama"
	"github.com/avq/avq/llava"
)

// POST /v1/chat/completions, as OpenAI's Chat Completions API defines it,
// for the cloud-only baseline: the whole image travels as a data: URI and
// no VQ is involved. What the API has and this server cannot honour (n > 1,
// tools, logprobs, penalties, several images, image URLs to fetch) is
// refused rather than ignored.

// chatRequest is the part of the Chat Completions request the server reads;
// fields that only a refusal needs are kept raw. "model" is not read: the
// server serves one model, whatever the client calls it.
type chatRequest struct {
	Messages      []chatInput `json:"messages"`
	Stream        bool        `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int                   `json:"max_tokens"`
	MaxCompletionTokens *int                   `json:"max_completion_tokens"`
	Temperature         *float64               `json:"temperature"`
	TopP                *float64               `json:"top_p"`
	TopK                *int                   `json:"top_k"` // not OpenAI's; vLLM and llama.cpp take it too
	Seed                *int64                 `json:"seed"`
	Stop                stopList               `json:"stop"`
	N                   *int                   `json:"n"`
	Tools               json.RawMessage        `json:"tools"`
	Functions           json.RawMessage        `json:"functions"`
	ToolChoice          json.RawMessage        `json:"tool_choice"`
	FunctionCall        json.RawMessage        `json:"function_call"`
	ResponseFormat      *struct{ Type string } `json:"response_format"`
	Logprobs            *bool                  `json:"logprobs"`
	TopLogprobs         *int                   `json:"top_logprobs"`
	LogitBias           map[string]float64     `json:"logit_bias"`
	PresencePenalty     *float64               `json:"presence_penalty"`
	FrequencyPenalty    *float64               `json:"frequency_penalty"`
}

type chatInput struct {
	Role      string          `json:"role"`
	Content   content         `json:"content"`
	ToolCalls json.RawMessage `json:"tool_calls"`
}

// content is a message's content: a string, or a list of parts.
type content struct {
	parts []contentPart
}

type contentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text"`
	ImageURL *imageURL `json:"image_url"`
}

func (c *content) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		c.parts = []contentPart{{Type: "text", Text: s}}
		return nil
	}
	if err := json.Unmarshal(b, &c.parts); err != nil {
		return fmt.Errorf("content must be a string or a list of parts")
	}
	return nil
}

// imageURL is {"url": …, "detail": …}, or the URL alone as some clients
// send it.
type imageURL struct {
	URL string `json:"url"`
}

func (u *imageURL) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &u.URL); err == nil {
		return nil
	}
	var o struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("image_url must be an object with a url")
	}
	u.URL = o.URL
	return nil
}

// stopList is a string or a list of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("stop must be a string or a list of strings")
	}
	*s = many
	return nil
}

// present reports whether a raw field was given, and not null or an empty
// list (which some clients send for "no tools").
func present(raw json.RawMessage) bool {
	s := strings.Join(strings.Fields(string(raw)), "")
	return s != "" && s != "null" && s != "[]"
}

// chatTask turns a request into a task, or says why it cannot be served.
func (s *Server) chatTask(body []byte, m *llava.Model) (*task, *chatRequest, *APIError) {
	var req chatRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, nil, errInvalid("invalid_json", "the request is not valid JSON for the Chat Completions API: %v", err)
	}
	if dec.More() {
		return nil, nil, errInvalid("invalid_json", "the request has data after its JSON object")
	}
	unsupported := func(what string) *APIError {
		return errInvalid("unsupported", "%s is not supported by this server", what)
	}
	switch {
	case req.N != nil && *req.N != 1:
		return nil, nil, unsupported("n other than 1")
	case present(req.Tools) || present(req.Functions) || present(req.ToolChoice) || present(req.FunctionCall):
		return nil, nil, unsupported("tool and function calling")
	case req.ResponseFormat != nil && req.ResponseFormat.Type != "" && req.ResponseFormat.Type != "text":
		return nil, nil, unsupported(fmt.Sprintf("response_format %q", req.ResponseFormat.Type))
	case req.Logprobs != nil && *req.Logprobs || req.TopLogprobs != nil:
		return nil, nil, unsupported("logprobs")
	case len(req.LogitBias) > 0:
		return nil, nil, unsupported("logit_bias")
	case req.PresencePenalty != nil && *req.PresencePenalty != 0 || req.FrequencyPenalty != nil && *req.FrequencyPenalty != 0:
		return nil, nil, unsupported("presence and frequency penalties")
	}
	t := &task{endpoint: "chat", sampling: llama.Sampling{Temperature: 1, TopP: 1}}
	if v := req.Temperature; v != nil {
		if !(*v >= 0 && *v <= 2) {
			return nil, nil, errInvalid("bad_parameter", "temperature %v: want a number in [0, 2]", *v)
		}
		t.sampling.Temperature = *v
	}
	if v := req.TopP; v != nil {
		if !(*v > 0 && *v <= 1) {
			return nil, nil, errInvalid("bad_parameter", "top_p %v: want a number in (0, 1]", *v)
		}
		t.sampling.TopP = *v
	}
	if v := req.TopK; v != nil {
		if *v < 0 {
			return nil, nil, errInvalid("bad_parameter", "top_k %d: must not be negative", *v)
		}
		t.sampling.TopK = *v
	}
	if req.Seed != nil {
		t.sampling.Seed = uint64(*req.Seed)
	}
	if len(req.Stop) > 4 {
		return nil, nil, errInvalid("bad_parameter", "stop: at most 4 strings, as OpenAI allows")
	}
	for _, x := range req.Stop {
		if len(x) > maxStopLen {
			return nil, nil, errInvalid("bad_parameter", "stop: a string of %d bytes; at most %d", len(x), maxStopLen)
		}
	}
	t.stop = req.Stop
	// Without a limit the answer may take the rest of the context, as OpenAI's
	// API has it; Generate cuts the limit to what the context leaves.
	t.maxTokens = math.MaxInt32
	if m.LLM != nil {
		t.maxTokens = m.LLM.Config.MaxPositionEmbeddings
	}
	for _, v := range []*int{req.MaxCompletionTokens, req.MaxTokens} {
		if v != nil {
			if *v < 0 {
				return nil, nil, errInvalid("bad_parameter", "max_tokens %d: must not be negative", *v)
			}
			t.maxTokens = *v
			break
		}
	}
	if t.maxTokens > 0 && m.LLM == nil {
		return nil, nil, errInvalid("no_language_model", "this server has no language model: only max_tokens=0 (the vision side alone) is served")
	}
	prompt, image, e := s.chatPrompt(req.Messages)
	if e != nil {
		return nil, nil, e
	}
	t.prompt, t.image = prompt, image
	return t, &req, nil
}

// chatPrompt renders the messages with the server's template: system
// messages replace the template's system prompt, the image goes before the
// text of the message that carries it. It returns the image file.
func (s *Server) chatPrompt(msgs []chatInput) (llava.Prompt, []byte, *APIError) {
	if len(msgs) == 0 {
		return llava.Prompt{}, nil, errInvalid("bad_messages", "messages is empty")
	}
	var system []string
	var turns []llava.Turn
	var image []byte
	size := 0
	for i, msg := range msgs {
		if present(msg.ToolCalls) {
			return llava.Prompt{}, nil, errInvalid("unsupported", "messages[%d]: tool calls are not supported by this server", i)
		}
		var text []string
		hasImage := false
		for j, p := range msg.Content.parts {
			switch p.Type {
			case "text":
				text = append(text, p.Text)
				size += len(p.Text)
			case "image_url":
				if msg.Role != "user" {
					return llava.Prompt{}, nil, errInvalid("bad_messages", "messages[%d].content[%d]: only user messages carry images", i, j)
				}
				if image != nil {
					return llava.Prompt{}, nil, errInvalid("unsupported", "messages[%d].content[%d]: more than one image; this server takes one image per request", i, j)
				}
				if p.ImageURL == nil {
					return llava.Prompt{}, nil, errInvalid("bad_image", "messages[%d].content[%d]: no image_url", i, j)
				}
				var err error
				if image, err = decodeDataURI(p.ImageURL.URL); err != nil {
					return llava.Prompt{}, nil, errInvalid("bad_image", "messages[%d].content[%d].image_url: %v", i, j, err)
				}
				hasImage = true
			default:
				return llava.Prompt{}, nil, errInvalid("unsupported", "messages[%d].content[%d]: content type %q is not supported (text, image_url)", i, j, p.Type)
			}
		}
		switch msg.Role {
		case "system", "developer":
			system = append(system, strings.Join(text, "\n"))
		case "user", "assistant":
			turns = append(turns, llava.Turn{Role: msg.Role, Text: strings.Join(text, "\n"), Image: hasImage})
		default:
			return llava.Prompt{}, nil, errInvalid("bad_messages", "messages[%d]: role %q is not supported (system, developer, user, assistant)", i, msg.Role)
		}
	}
	switch {
	case size > s.opt.MaxPrompt:
		return llava.Prompt{}, nil, errInvalid("prompt_too_long", "the messages hold %d bytes of text; the server takes at most %d", size, s.opt.MaxPrompt)
	case len(turns) == 0 || turns[len(turns)-1].Role != "user":
		return llava.Prompt{}, nil, errInvalid("bad_messages", "the last message must be the user's")
	}
	sys := s.opt.Template.System
	if system != nil {
		sys = strings.Join(system, "\n")
	}
	return s.opt.Template.Render(sys, turns), image, nil
}

// decodeDataURI reads data:image/<type>;base64,<data>. The server fetches
// no URLs: anything else is refused.
func decodeDataURI(uri string) ([]byte, error) {
	rest, ok := strings.CutPrefix(uri, "data:")
	if !ok {
		scheme, _, _ := strings.Cut(uri, ":")
		if len(scheme) > 16 {
			scheme = scheme[:16] + "…"
		}
		return nil, fmt.Errorf("the URL scheme is %q: this server fetches no URLs; send the image inline as data:image/...;base64,...", scheme)
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, fmt.Errorf("the data URI has no comma")
	}
	meta, isBase64 := strings.CutSuffix(meta, ";base64")
	if !isBase64 {
		return nil, fmt.Errorf("the data URI must be base64-encoded (;base64)")
	}
	if mt, _, _ := strings.Cut(meta, ";"); mt != "" && !strings.HasPrefix(mt, "image/") {
		return nil, fmt.Errorf("the data URI's media type is %q, not an image", mt)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(data); err != nil {
			return nil, fmt.Errorf("the data URI's base64 is invalid: %v", err)
		}
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("the data URI holds no bytes")
	}
	return b, nil
}

// The response objects.
type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatDelta   `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
	Logprobs     *struct{}    `json:"logprobs"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   any          `json:"usage,omitempty"`   // *chatUsage, or JSON null on a stream's chunks
	Timings *Timings     `json:"timings,omitempty"` // not OpenAI's: the server's phases, as llama.cpp adds them
}

func newCompletionID() string {
	var b [12]byte
	rand.Read(b[:])
	return "chatcmpl-" + hex.EncodeToString(b[:])
}

func finishReason(res *llava.Result) string {
	if res == nil || res.StopReason == "length" {
		return "length"
	}
	return "stop" // "eos" and "stop": the model or a stop string ended the answer
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	m, e := s.ready()
	if e != nil {
		writeError(w, e)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, &APIError{Status: http.StatusUnsupportedMediaType, Type: typeInvalid, Code: "bad_content_type",
			Message: fmt.Sprintf("/v1/chat/completions takes Content-Type application/json, not %q", ct)})
		return
	}
	a, e := s.admit(w, r, "chat")
	if e != nil {
		writeError(w, e)
		return
	}
	defer a.release()
	t, req, e := s.chatTask(a.body, m)
	if e != nil {
		writeError(w, e)
		return
	}
	base := chatCompletion{ID: newCompletionID(), Object: "chat.completion", Created: time.Now().Unix(), Model: s.opt.Name}
	if !req.Stream {
		out, e := s.execute(a.ctx, m, t, nil)
		if e != nil {
			s.fail(w, &stream{}, e, nil)
			return
		}
		out.timings.QueueMS = millis(a.queued)
		text, usage := "", chatUsage{}
		if res := out.result; res != nil {
			text = res.Text
			usage = chatUsage{res.PromptTokens, len(res.IDs), res.PromptTokens + len(res.IDs)}
		}
		reason := finishReason(out.result)
		base.Choices = []chatChoice{{Message: &chatMessage{Role: "assistant", Content: text}, FinishReason: &reason}}
		base.Usage, base.Timings = &usage, &out.timings
		writeJSON(w, http.StatusOK, base)
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	base.Object = "chat.completion.chunk"
	st := newStream(w, "text/event-stream")
	event := func(c chatCompletion) error {
		if includeUsage && c.Usage == nil {
			c.Usage = json.RawMessage("null")
		}
		b, _ := json.Marshal(c)
		return st.send(sse(b))
	}
	chunk := func(d chatDelta, reason *string) chatCompletion {
		c := base
		c.Choices = []chatChoice{{Delta: &d, FinishReason: reason}}
		return c
	}
	empty := ""
	out, e := s.execute(a.ctx, m, t, func(text string) error {
		if !st.committed {
			if err := event(chunk(chatDelta{Role: "assistant", Content: &empty}, nil)); err != nil {
				return err
			}
		}
		return event(chunk(chatDelta{Content: &text}, nil))
	})
	if e != nil {
		s.fail(w, st, e, sse)
		if st.committed && e.Status != 499 {
			st.send(sse([]byte("[DONE]")))
		}
		return
	}
	out.timings.QueueMS = millis(a.queued)
	if !st.committed {
		event(chunk(chatDelta{Role: "assistant", Content: &empty}, nil))
	}
	reason := finishReason(out.result)
	last := chunk(chatDelta{}, &reason)
	last.Timings = &out.timings
	event(last)
	if includeUsage {
		usage := chatUsage{}
		if res := out.result; res != nil {
			usage = chatUsage{res.PromptTokens, len(res.IDs), res.PromptTokens + len(res.IDs)}
		}
		c := base
		c.Choices, c.Usage = []chatChoice{}, &usage
		event(c)
	}
	st.send(sse([]byte("[DONE]")))
}

// sse frames one server-sent event.
func sse(data []byte) []byte {
	b := make([]byte, 0, len(data)+8)
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
