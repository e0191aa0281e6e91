package tokenizer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// fuzzTexts exercise added tokens, spaces, "▁", byte fallback and invalid
// UTF-8.
var fuzzTexts = []string{"", " ", "Hello <s> wor▁ld</s>\n", "ab<U>c abc  <unk>", "亲🚀\xff<image>x"}

// exercise encodes and decodes with tk and checks that streaming agrees
// with Decode.
func exercise(t *testing.T, tk *Tokenizer) {
	var all []int32
	for _, s := range fuzzTexts {
		all = append(all, tk.Encode(s, true)...)
		all = append(all, tk.EncodeImageChunks(s, -200)...)
	}
	for id := int32(-2); id < int32(min(tk.VocabSize(), 300))+2; id++ {
		all = append(all, id)
	}
	for _, skip := range []bool{false, true} {
		want := tk.Decode(all, skip)
		d := tk.NewStreamDecoder(skip)
		var got strings.Builder
		for _, id := range all {
			got.WriteString(d.Push(id))
		}
		got.WriteString(d.Flush())
		if got.String() != want {
			t.Fatalf("skip=%v: streamed %q, Decode %q", skip, got.String(), want)
		}
	}
}

func checkErrorType(t *testing.T, err error) {
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "tokenizer: ") {
		t.Fatalf("error %v (%T) is not a tokenizer *Error", err, err)
	}
}

// FuzzParseModel feeds arbitrary bytes to the tokenizer.model parser; a
// model that parses must also encode and decode without panicking.
func FuzzParseModel(f *testing.F) {
	legacyFalse, err := parseConfig(map[string]json.RawMessage{"legacy": json.RawMessage("false")})
	if err != nil {
		f.Fatal(err)
	}
	legacyTrue, err := parseConfig(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := parseSentencePiece(data)
		if err != nil {
			checkErrorType(t, err)
			return
		}
		for _, cfg := range []*hfConfig{legacyFalse, legacyTrue} {
			tk, err := newTokenizer(sp, cfg)
			if err != nil {
				checkErrorType(t, err)
				continue
			}
			exercise(t, tk)
		}
	})
}

// FuzzConfig feeds arbitrary tokenizer_config.json, special_tokens_map.json
// and added_tokens.json contents (each may be absent) to the config merger,
// with the small test model.
func FuzzConfig(f *testing.F) {
	sp, err := parseSentencePiece(smallModel())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, config, specialTokensMap, addedTokens []byte) {
		files := map[string][]byte{
			"tokenizer_config.json":   config,
			"special_tokens_map.json": specialTokensMap,
			"added_tokens.json":       addedTokens,
		}
		cfg, err := mergeConfig(func(name string) (map[string]json.RawMessage, string, error) {
			data := files[name]
			if len(data) == 0 {
				return nil, name, nil
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(data, &m); err != nil {
				return nil, name, malformed(err, "not a JSON object")
			}
			return m, name, nil
		})
		if err != nil {
			checkErrorType(t, err)
			return
		}
		tk, err := newTokenizer(sp, cfg)
		if err != nil {
			checkErrorType(t, err)
			return
		}
		exercise(t, tk)
	})
}
