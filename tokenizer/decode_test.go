package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// streamAll pushes ids one at a time and returns every chunk, the last one
// from Flush.
func streamAll(t *testing.T, tk *Tokenizer, ids []int32, skip bool) []string {
	t.Helper()
	d := tk.NewStreamDecoder(skip)
	var chunks []string
	for _, id := range ids {
		s := d.Push(id)
		if !utf8.ValidString(s) {
			t.Fatalf("Push(%d) returned invalid UTF-8 %q", id, s)
		}
		chunks = append(chunks, s)
	}
	return append(chunks, d.Flush())
}

func checkStream(t *testing.T, name string, tk *Tokenizer, ids []int32, skip bool) {
	t.Helper()
	want := tk.Decode(ids, skip)
	if got := strings.Join(streamAll(t, tk, ids, skip), ""); got != want {
		t.Errorf("%s (skip=%v): streamed %q, Decode %q (ids %v)", name, skip, got, want, ids)
	}
}

// legacyTokenizer loads the LLaMA model with a legacy=true config, as
// checkpoints without the legacy key get.
func legacyTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	dir := t.TempDir()
	model, err := os.ReadFile(filepath.Join(tinyLlavaDir, "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"tokenizer.model":       string(model),
		"tokenizer_config.json": `{"tokenizer_class": "LlamaTokenizer", "legacy": true, "pad_token": "<pad>", "additional_special_tokens": ["<image>"]}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestStreamGenerated: streaming the reference generations gives their text,
// and (no byte pieces at the end) all of it before Flush.
func TestStreamGenerated(t *testing.T) {
	tiny, orig := loadFixtures(t)
	for _, c := range origCases(t) {
		chunks := streamAll(t, orig, c.GeneratedIDs, true)
		if got := strings.Join(chunks, ""); got != c.GeneratedText {
			t.Errorf("%s: streamed %q, want %q", c.Name, got, c.GeneratedText)
		}
		if chunks[len(chunks)-1] != "" {
			t.Errorf("%s: Flush returned %q, want everything streamed already", c.Name, chunks[len(chunks)-1])
		}
		checkStream(t, c.Name, tiny, c.GeneratedIDs, false)
		checkStream(t, c.Name+" with prompt", tiny, append(append([]int32{}, c.LlavaHFIDs...), c.GeneratedIDs...), false)
	}
}

// TestStreamHoldsPartialUTF8: a character split over byte pieces comes out
// whole, with the push that completes it.
func TestStreamHoldsPartialUTF8(t *testing.T) {
	tiny, _ := loadFixtures(t)
	ids := tiny.Encode("亲🚀", false) // byte-fallback characters, see tokenizer_cases.json
	d := tiny.NewStreamDecoder(true)
	var got []string
	for _, id := range ids {
		got = append(got, d.Push(id))
	}
	var nonEmpty []string
	for _, s := range got {
		if s != "" {
			nonEmpty = append(nonEmpty, s)
		}
	}
	if strings.Join(nonEmpty, "|") != "亲|🚀" || d.Flush() != "" {
		t.Errorf("pushes gave %q", got)
	}
	// An unfinished character at the end comes out of Flush as U+FFFD per
	// byte, as Decode renders it.
	e4, _ := tiny.TokenID("<0xE4>")
	ba, _ := tiny.TokenID("<0xBA>")
	d = tiny.NewStreamDecoder(true)
	if s := d.Push(e4) + d.Push(ba); s != "" {
		t.Errorf("partial character streamed as %q", s)
	}
	if s, want := d.Flush(), tiny.Decode([]int32{e4, ba}, true); s != want || want != "\uFFFD\uFFFD" {
		t.Errorf("Flush = %q, Decode = %q", s, want)
	}
	// The decoder is reusable after Flush, as a new sequence (the first
	// token's "▁" is dropped again).
	hello := tiny.Encode("Hello", false)
	if s := d.Push(hello[0]) + d.Flush(); s != "Hello" {
		t.Errorf("after Flush: %q", s)
	}
}

// randomIDs draws sequences rich in the tokens that make decoding
// context-dependent: byte pieces (valid and broken UTF-8), "▁" pieces,
// special and added tokens, ids outside the vocabulary.
func randomIDs(r *rand.Rand, tk *Tokenizer, n int) []int32 {
	words := tk.Encode("Hello  world ▁x\n亲🚀 ñ<image> a<s>b</s>", false)
	ids := make([]int32, n)
	for i := range ids {
		switch k := r.IntN(10); {
		case k < 3:
			ids[i] = int32(3 + r.IntN(256)) // any byte piece
		case k < 5:
			ids[i] = words[r.IntN(len(words))]
		case k < 6:
			ids[i] = []int32{0, 1, 2, 259, 29871, 32000, 32001, 32005, -200}[r.IntN(9)]
		default:
			ids[i] = int32(r.IntN(tk.VocabSize()))
		}
	}
	return ids
}

func TestStreamRandom(t *testing.T) {
	tiny, orig := loadFixtures(t)
	legacy := legacyTokenizer(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		tk   *Tokenizer
	}{{"tiny-llava", tiny}, {"orig-llava", orig}, {"legacy", legacy}} {
		for i := 0; i < 400; i++ {
			ids := randomIDs(r, tc.tk, 1+r.IntN(40))
			checkStream(t, tc.name, tc.tk, ids, true)
			checkStream(t, tc.name, tc.tk, ids, false)
		}
	}
}

// TestStreamLegacySpecialSpacing: with legacy=true and special tokens kept,
// the space a special token puts before the preceding text is not lost.
func TestStreamLegacySpecialSpacing(t *testing.T) {
	legacy := legacyTokenizer(t)
	ids := legacy.Encode("Hello <s>. a</s>b", true)
	checkStream(t, "legacy", legacy, ids, false)
	checkStream(t, "legacy", legacy, ids, true)
}

func TestDecodeOutOfRange(t *testing.T) {
	tiny, _ := loadFixtures(t)
	ids := tiny.Encode("Hello world", false)
	with := append([]int32{-200, 40000, 32063}, ids...)
	with = append(with, -1, 1<<30)
	if got, want := tiny.Decode(with, false), tiny.Decode(ids, false); got != want {
		t.Errorf("out-of-range ids changed Decode: %q vs %q", got, want)
	}
}
