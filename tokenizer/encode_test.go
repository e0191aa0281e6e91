package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// naiveBPE is the textbook statement of sentencepiece's BPE, written
// independently of the heap version: rescan all adjacent pairs, merge the one
// whose concatenation is a vocabulary piece with the highest score (leftmost
// on ties), and finally split UNUSED pieces back along the merge that made
// them. O(n²) per merge; a cross-check, not an implementation.
func naiveBPE(sp *sentencePiece, text string) []string {
	type sym struct {
		s      string
		freeze bool
	}
	var syms []sym
	for pos := 0; pos < len(text); {
		if n := sp.matchUserDefined(text[pos:]); n > 0 {
			syms = append(syms, sym{text[pos : pos+n], true})
			pos += n
			continue
		}
		n := min(oneCharLen(text[pos]), len(text)-pos)
		syms = append(syms, sym{s: text[pos : pos+n]})
		pos += n
	}
	rev := map[string][2]string{}
	for {
		best := -1
		var bestScore float32
		for i := 0; i+1 < len(syms); i++ {
			if syms[i].freeze || syms[i+1].freeze {
				continue
			}
			id, ok := sp.normal[syms[i].s+syms[i+1].s]
			if ok && (best < 0 || sp.pieces[id].score > bestScore) {
				best, bestScore = i, sp.pieces[id].score
			}
		}
		if best < 0 {
			break
		}
		merged := syms[best].s + syms[best+1].s
		if sp.pieces[sp.normal[merged]].typ == pieceUnused {
			if _, ok := rev[merged]; !ok {
				rev[merged] = [2]string{syms[best].s, syms[best+1].s}
			}
		}
		syms = slices.Replace(syms, best, best+2, sym{s: merged})
	}
	var out []string
	var split func(s string)
	split = func(s string) {
		if parts, ok := rev[s]; ok {
			split(parts[0])
			split(parts[1])
			return
		}
		out = append(out, s)
	}
	for _, s := range syms {
		split(s.s)
	}
	return out
}

func heapBPE(sp *sentencePiece, text string) []string {
	var out []string
	sp.bpe(text, func(piece string, _ int32) { out = append(out, piece) })
	return out
}

func randomText(r *rand.Rand, alphabet []string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// TestBPEMatchesNaive compares the heap BPE with naiveBPE on random strings,
// for the LLaMA vocabulary and for a small model with UNUSED and
// USER_DEFINED pieces.
func TestBPEMatchesNaive(t *testing.T) {
	tiny, _ := loadFixtures(t)
	small, err := parseSentencePiece(smallModel())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	llamaAlphabet := []string{"▁", "▁", "a", "e", "t", "in", "the", "▁the", "ing", "s", "r", "0", "1", "9", ".", ",", "'", "\n", "é", "ß", "中", "文", "한", "😀", "\uFFFD"}
	smallAlphabet := []string{"▁", "a", "b", "c", "<U>", "d", "<"}
	for i := 0; i < 300; i++ {
		for _, tc := range []struct {
			sp       *sentencePiece
			alphabet []string
		}{{tiny.sp, llamaAlphabet}, {small, smallAlphabet}} {
			text := randomText(r, tc.alphabet, 1+r.IntN(40))
			if got, want := heapBPE(tc.sp, text), naiveBPE(tc.sp, text); !slices.Equal(got, want) {
				t.Fatalf("%q: heap %q, naive %q", text, got, want)
			}
		}
	}
}

// TestLegacyFlag: the example of transformers' LlamaTokenizer docstring for
// huggyllama/llama-7b (the same vocabulary): "Hello <s>." encodes to
// [1, 15043, 29871, 1, 869] with legacy=True and [1, 15043, 29871, 1, 29889]
// with legacy=False.
func TestLegacyFlag(t *testing.T) {
	tiny, orig := loadFixtures(t)
	legacy := legacyTokenizer(t)
	if got, want := legacy.Encode("Hello <s>.", true), []int32{1, 15043, 29871, 1, 869}; !slices.Equal(got, want) {
		t.Errorf("legacy=true: %v, want %v", got, want)
	}
	for _, tk := range []*Tokenizer{tiny, orig} {
		if got, want := tk.Encode("Hello <s>.", true), []int32{1, 15043, 29871, 1, 29889}; !slices.Equal(got, want) {
			t.Errorf("legacy=false: %v, want %v", got, want)
		}
	}
	// legacy=true is plain sentencepiece per chunk (dummy prefix on):
	// "▁" in the text is not turned into a space and a chunk after a special
	// token gets its own "▁".
	if got, want := legacy.Encode("a<s>b", false), slices.Concat(legacy.Encode("a", false), []int32{1}, legacy.Encode("b", false)); !slices.Equal(got, want) {
		t.Errorf("legacy=true chunks: %v, want %v", got, want)
	}
}

// TestAddedTokenStripping checks lstrip / rstrip / single_word against the
// rules of PreTrainedTokenizer.tokenize, stated as equalities.
func TestAddedTokenStripping(t *testing.T) {
	model := smallModel()
	cfg := `{"legacy": false, "added_tokens_decoder": {
		"300": {"content": "<L>", "lstrip": true, "special": true},
		"301": {"content": "<R>", "rstrip": true, "special": true},
		"302": {"content": "<W>", "single_word": true}},
		"additional_special_tokens": ["<L>", "<R>"]}`
	tk, err := Load(writeFolder(t, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(cfg)}))
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) {
		t.Helper()
		if x, y := tk.Encode(a, false), tk.Encode(b, false); !slices.Equal(x, y) {
			t.Errorf("Encode(%q) = %v, Encode(%q) = %v; want equal", a, x, b, y)
		}
	}
	same("ab \t <L>c", "ab<L>c")
	same("ab<R> \n c", "ab<R>c")
	same("ab <R>  c", "ab <R>c")
	// single_word: glued to a word on its left, the token is encoded as text.
	glued := tk.Encode("ab<W>", false)
	if slices.Contains(glued, 302) {
		t.Errorf("single_word token glued to a word was split: %v", glued)
	}
	if ids := tk.Encode("ab <W> c", false); !slices.Contains(ids, 302) {
		t.Errorf("single_word token between spaces was not split: %v", ids)
	}
	if tk.VocabSize() != 303 || !tk.IsSpecial(300) || tk.IsSpecial(302) {
		t.Errorf("VocabSize %d, specials %v %v", tk.VocabSize(), tk.IsSpecial(300), tk.IsSpecial(302))
	}
}

// TestInvalidUTF8: each invalid byte is encoded as U+FFFD would be.
func TestInvalidUTF8(t *testing.T) {
	tiny, _ := loadFixtures(t)
	if got, want := tiny.Encode("a\xffb\xe4\xbac", true), tiny.Encode("a\uFFFDb\uFFFD\uFFFDc", true); !slices.Equal(got, want) {
		t.Errorf("invalid UTF-8: %v, want %v", got, want)
	}
}

// TestEncodeConcurrent: a Tokenizer is shared by goroutines (run with -race).
func TestEncodeConcurrent(t *testing.T) {
	tiny, _ := loadFixtures(t)
	want := tiny.Encode(benchPrompt(200), true)
	done := make(chan []int32)
	for i := 0; i < 4; i++ {
		go func() { done <- tiny.Encode(benchPrompt(200), true) }()
	}
	for i := 0; i < 4; i++ {
		if got := <-done; !slices.Equal(got, want) {
			t.Fatal("concurrent Encode differs")
		}
	}
}

// benchPrompt builds a LLaVA conversation of at least n tokens.
func benchPrompt(n int) string {
	const system = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
	turns := []string{
		" USER: <image>\nWhat is in the image? ASSISTANT: A red bicycle leaning against a brick wall.</s>",
		" USER: Describe the colors. Answer the question using a single word or phrase. ASSISTANT: Red.</s>",
		" USER: List three objects you see, one per line:\n1.\n2.\n3.\n\tThen say  which one is the largest. ASSISTANT: 1. bicycle\n2. wall\n3. lamp — the wall (größte, 最大).</s>",
	}
	var b strings.Builder
	b.WriteString(system)
	for i := 0; b.Len() < 5*n; i++ {
		b.WriteString(turns[i%len(turns)])
	}
	return b.String()
}

func BenchmarkEncode2000(b *testing.B) {
	tiny, _ := loadFixtures(b)
	prompt := benchPrompt(2000)
	ids := tiny.Encode(prompt, true)
	if len(ids) < 2000 {
		b.Fatalf("prompt has %d tokens", len(ids))
	}
	b.SetBytes(int64(len(prompt)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tiny.Encode(prompt, true)
	}
	b.ReportMetric(float64(len(ids)), "tokens")
}

// BenchmarkEncodeLongWord: one 8000-character chunk with no spaces, the
// case where per-merge rescans would be quadratic.
func BenchmarkEncodeLongWord(b *testing.B) {
	tiny, _ := loadFixtures(b)
	word := strings.Repeat("abcdefghij", 800)
	b.SetBytes(int64(len(word)))
	for i := 0; i < b.N; i++ {
		tiny.Encode(word, false)
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	tiny, _ := loadFixtures(b)
	ids := tiny.Encode(benchPrompt(2000), false)
	for i := 0; i < b.N; i++ {
		d := tiny.NewStreamDecoder(true)
		for _, id := range ids {
			d.Push(id)
		}
		d.Flush()
	}
	b.ReportMetric(float64(len(ids)), "tokens")
}
