package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	tinyLlavaDir = "../testdata/tiny-llava"
	origLlavaDir = "../testdata/original/orig-llava"
)

var (
	loadOnce  sync.Once
	tinyTok   *Tokenizer
	origTok   *Tokenizer
	errLoaded error
)

// loadFixtures loads both fixture tokenizers once per test binary.
func loadFixtures(t testing.TB) (tiny, orig *Tokenizer) {
	t.Helper()
	loadOnce.Do(func() {
		tinyTok, errLoaded = Load(tinyLlavaDir)
		if errLoaded == nil {
			origTok, errLoaded = Load(origLlavaDir)
		}
	})
	if errLoaded != nil {
		t.Fatal(errLoaded)
	}
	return tinyTok, origTok
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// idList reads an id list stored either as a JSON array or as a string
// holding one (tiny-llava's cases.json writes some lists as strings).
type idList []int32

func (l *idList) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		b = []byte(s)
	}
	return json.Unmarshal(b, (*[]int32)(l))
}

type tokenizerCase struct {
	Text                     string   `json:"text"`
	IDs                      []int32  `json:"ids"`
	IDsNoBOS                 []int32  `json:"ids_no_bos"`
	TokensNoBOS              []string `json:"tokens_no_bos"`
	DecodeNoBOS              string   `json:"decode_no_bos"`
	DecodeNoBOSSkipSpecial   string   `json:"decode_no_bos_skip_special"`
	DecodeWithBOS            string   `json:"decode_with_bos"`
	DecodeWithBOSSkipSpecial string   `json:"decode_with_bos_skip_special"`
}

func tokenizerCases(t testing.TB) []tokenizerCase {
	var f struct {
		Cases []tokenizerCase `json:"cases"`
	}
	readJSON(t, "../testdata/ref/tokenizer_cases.json", &f)
	if len(f.Cases) != 200 {
		t.Fatalf("tokenizer_cases.json has %d cases, want 200", len(f.Cases))
	}
	return f.Cases
}

func TestLoadFixtureFacts(t *testing.T) {
	tiny, orig := loadFixtures(t)
	for _, tc := range []struct {
		name      string
		tok       *Tokenizer
		vocabSize int
	}{{"tiny-llava", tiny, 32002}, {"orig-llava", orig, 32000}} {
		tk := tc.tok
		if tk.BOS() != 1 || tk.EOS() != 2 || tk.VocabSize() != tc.vocabSize {
			t.Errorf("%s: BOS %d EOS %d VocabSize %d, want 1 2 %d", tc.name, tk.BOS(), tk.EOS(), tk.VocabSize(), tc.vocabSize)
		}
		// FIXTURES.md: byte pieces <0x00>..<0xFF> are ids 3..258.
		for b := 0; b < 256; b++ {
			if id, ok := tk.TokenID(tk.sp.pieces[3+b].text); !ok || id != int32(3+b) || tk.sp.typeOf(id) != pieceByte {
				t.Fatalf("%s: byte piece %d is not id %d", tc.name, b, 3+b)
			}
		}
		if tk.Piece(0) != "<unk>" || tk.Piece(29871) != spaceSymbol || tk.Piece(-1) != "" || tk.Piece(40000) != "" {
			t.Errorf("%s: Piece gives %q %q %q %q", tc.name, tk.Piece(0), tk.Piece(29871), tk.Piece(-1), tk.Piece(40000))
		}
		for _, id := range []int32{0, 1, 2} {
			if !tk.IsSpecial(id) {
				t.Errorf("%s: id %d is not special", tc.name, id)
			}
		}
		if tk.IsSpecial(29871) {
			t.Errorf("%s: id 29871 is special", tc.name)
		}
	}
	if id, ok := tiny.TokenID("<image>"); !ok || id != 32000 || !tiny.IsSpecial(32000) || !tiny.IsSpecial(32001) {
		t.Errorf("tiny-llava: <image> id %d %v, specials %v %v", id, ok, tiny.IsSpecial(32000), tiny.IsSpecial(32001))
	}
	if _, ok := orig.TokenID("<image>"); ok {
		t.Error("orig-llava has an <image> token")
	}
}

// TestTokenizerCases checks all 200 reference strings: ids, pieces and the
// four decodes.
func TestTokenizerCases(t *testing.T) {
	tiny, _ := loadFixtures(t)
	for i, c := range tokenizerCases(t) {
		if got := tiny.Encode(c.Text, true); !slices.Equal(got, c.IDs) {
			t.Errorf("case %d %q: Encode(bos) = %v, want %v", i, c.Text, got, c.IDs)
		}
		noBOS := tiny.Encode(c.Text, false)
		if !slices.Equal(noBOS, c.IDsNoBOS) {
			t.Errorf("case %d %q: Encode = %v, want %v", i, c.Text, noBOS, c.IDsNoBOS)
			continue
		}
		for j, id := range noBOS {
			if tiny.Piece(id) != c.TokensNoBOS[j] {
				t.Errorf("case %d %q: token %d is %q, want %q", i, c.Text, j, tiny.Piece(id), c.TokensNoBOS[j])
			}
		}
		for _, d := range []struct {
			name string
			ids  []int32
			skip bool
			want string
		}{
			{"decode_no_bos", c.IDsNoBOS, false, c.DecodeNoBOS},
			{"decode_no_bos_skip_special", c.IDsNoBOS, true, c.DecodeNoBOSSkipSpecial},
			{"decode_with_bos", c.IDs, false, c.DecodeWithBOS},
			{"decode_with_bos_skip_special", c.IDs, true, c.DecodeWithBOSSkipSpecial},
		} {
			if got := tiny.Decode(d.ids, d.skip); got != d.want {
				t.Errorf("case %d %q: %s = %q, want %q", i, c.Text, d.name, got, d.want)
			}
		}
	}
}

// TestPromptIDs: the llava-hf prompt ids are BOS + Encode(prompt), and
// EncodeControlled's when the prompt's added tokens are controls.
func TestPromptIDs(t *testing.T) {
	tiny, _ := loadFixtures(t)
	var f struct {
		Cases []struct {
			Name     string `json:"name"`
			Prompt   string `json:"prompt"`
			InputIDs idList `json:"input_ids"`
		} `json:"cases"`
	}
	readJSON(t, "../testdata/ref/tiny-llava/cases.json", &f)
	if len(f.Cases) != 26 {
		t.Fatalf("%d cases, want 26", len(f.Cases))
	}
	for _, c := range f.Cases {
		if got := tiny.Encode(c.Prompt, true); !slices.Equal(got, []int32(c.InputIDs)) {
			t.Errorf("%s: Encode = %v, want %v", c.Name, got, c.InputIDs)
		}
		// With its added tokens marked as a template marks its controls.
		if got := tiny.EncodeControlled(c.Prompt, addedSpans(tiny, c.Prompt), true); !slices.Equal(got, []int32(c.InputIDs)) {
			t.Errorf("%s: EncodeControlled = %v, want %v", c.Name, got, c.InputIDs)
		}
	}
}

type origCase struct {
	Name          string    `json:"name"`
	Prompt        string    `json:"prompt"`
	InputIDs      []int32   `json:"input_ids"`
	Chunks        [][]int32 `json:"chunks"`
	LlavaHFIDs    []int32   `json:"llava_hf_input_ids"`
	GeneratedIDs  []int32   `json:"generated_ids"`
	GeneratedText string    `json:"generated_text"`
}

func origCases(t testing.TB) []origCase {
	var f struct {
		ImageTokenIndex int32      `json:"image_token_index"`
		Cases           []origCase `json:"cases"`
	}
	readJSON(t, "../testdata/original/ref/orig-llava/cases.json", &f)
	if len(f.Cases) != 7 || f.ImageTokenIndex != -200 {
		t.Fatalf("%d cases, image_token_index %d; want 7, -200", len(f.Cases), f.ImageTokenIndex)
	}
	return f.Cases
}

// TestOriginalLlavaIDs: tokenizer_image_token ids and per-chunk ids of the
// original LLaVA reference, with the orig-llava tokenizer.
func TestOriginalLlavaIDs(t *testing.T) {
	tiny, orig := loadFixtures(t)
	for _, c := range origCases(t) {
		if got := orig.EncodeImageChunks(c.Prompt, -200); !slices.Equal(got, c.InputIDs) {
			t.Errorf("%s: EncodeImageChunks = %v, want %v", c.Name, got, c.InputIDs)
		}
		for i, chunk := range strings.Split(c.Prompt, "<image>") {
			if got := orig.Encode(chunk, true); !slices.Equal(got, c.Chunks[i]) {
				t.Errorf("%s chunk %d: Encode = %v, want %v", c.Name, i, got, c.Chunks[i])
			}
		}
		// The llava-hf tokenizer gives the same chunk ids (its <image> token
		// is never seen once the prompt is split) and, on the whole prompt,
		// the llava-hf ids.
		if got := tiny.EncodeImageChunks(c.Prompt, -200); !slices.Equal(got, c.InputIDs) {
			t.Errorf("%s: tiny-llava EncodeImageChunks = %v, want %v", c.Name, got, c.InputIDs)
		}
		if got := tiny.Encode(c.Prompt, true); !slices.Equal(got, c.LlavaHFIDs) {
			t.Errorf("%s: tiny-llava Encode = %v, want %v", c.Name, got, c.LlavaHFIDs)
		}
		if got := orig.Decode(c.GeneratedIDs, true); got != c.GeneratedText {
			t.Errorf("%s: Decode(generated) = %q, want %q", c.Name, got, c.GeneratedText)
		}
	}
}

func TestGeneratedText(t *testing.T) {
	tiny, _ := loadFixtures(t)
	for _, dir := range []string{"tiny-llava", "tiny-llava-f16", "lora"} {
		var f struct {
			Cases []struct {
				Name          string `json:"name"`
				GeneratedIDs  idList `json:"generated_ids"`
				GeneratedText string `json:"generated_text"`
			} `json:"cases"`
		}
		readJSON(t, filepath.Join("../testdata/ref", dir, "cases.json"), &f)
		for _, c := range f.Cases {
			if got := tiny.Decode(c.GeneratedIDs, true); got != c.GeneratedText {
				t.Errorf("%s/%s: Decode = %q, want %q", dir, c.Name, got, c.GeneratedText)
			}
		}
	}
}
