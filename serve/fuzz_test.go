package serve

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// The parsers of untrusted bytes: the split envelope and its query (from
// any client), the chat request (from any client) and the answer stream
// (from a server, as the client reads it). Seeds are in testdata/fuzz.

func FuzzEnvelope(f *testing.F) {
	f.Add(AppendEnvelope(nil, []byte("AVQ1\x01\x08"), "What is in the image?"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		payload, prompt, err := parseEnvelope(body)
		if err != nil {
			return
		}
		if len(payload) == 0 || !bytes.Equal(AppendEnvelope(nil, payload, prompt), body) {
			t.Fatalf("%q parsed to %q and %q", body, payload, prompt)
		}
	})
}

func FuzzParams(f *testing.F) {
	f.Add("max_tokens=0&temperature=0.7&top_k=40&top_p=0.9&seed=1&stop=%0A&stop=USER:&template=hf")
	f.Add("temperature=1e309&top_p=-0")
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		p, e := parseParams(q, DefaultOptions().Template)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Message == "" {
				t.Fatalf("%q: refused with %+v", query, e)
			}
			return
		}
		if p.maxTokens < 0 || p.sampling.Temperature < 0 || !(p.sampling.TopP > 0 && p.sampling.TopP <= 1) || p.template == nil || len(p.stop) > maxStops {
			t.Fatalf("%q: accepted %+v", query, p)
		}
	})
}

func FuzzChatRequest(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"hi"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"stop":["a"],"max_tokens":3,"temperature":0}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"n":1,"tools":null,"stream":true,"stream_options":{"include_usage":true}}`))
	s, err := New(testOptions())
	if err != nil {
		f.Fatal(err)
	}
	m := tinyModel(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		tk, _, e := s.chatTask(body, m)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Message == "" || e.Code == "" {
				t.Fatalf("%q: refused with %+v", body, e)
			}
			return
		}
		if tk.prompt.Text == "" || tk.maxTokens < 0 || len(tk.stop) > 4 || tk.image != nil && len(tk.image) == 0 {
			t.Fatalf("%q: accepted %+v", body, tk)
		}
	})
}

func FuzzAnswer(f *testing.F) {
	f.Add([]byte("{\"text\":\"Hel\"}\n{\"text\":\"lo\"}\n{\"done\":true,\"stop_reason\":\"eos\",\"prompt_ids\":[1],\"ids\":[5,2]," +
		"\"prompt_tokens\":600,\"completion_tokens\":2,\"timings\":{\"vision_ms\":3}}\n"))
	f.Add([]byte("{\"text\":\"x\"}\n{\"error\":{\"message\":\"timeout\",\"type\":\"server_error\",\"code\":\"timeout\"}}\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var ans Answer
		var pieces bytes.Buffer
		err := ans.read(bytes.NewReader(stream), time.Now(), func(s string) error { pieces.WriteString(s); return nil })
		if err == nil && ans.Text != pieces.String() {
			t.Fatalf("%q: text %q, streamed %q", stream, ans.Text, pieces.String())
		}
	})
}
