package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// Builders for synthetic ModelProto bytes.

func fVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func fBytes(num protowire.Number, b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
}

func fFixed32(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), v)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func pieceField(text string, score float32, typ pieceType) []byte {
	return fBytes(1, cat(fBytes(1, []byte(text)), fFixed32(2, math.Float32bits(score)), fVarint(3, uint64(typ))))
}

// bpeTrainer is a trainer_spec for a BPE model with byte fallback.
func bpeTrainer(extra ...[]byte) []byte {
	return fBytes(2, cat(append([][]byte{fVarint(3, modelBPE), fVarint(35, 1)}, extra...)...))
}

func identityNormalizer(extra ...[]byte) []byte {
	return fBytes(3, cat(append([][]byte{fBytes(1, []byte("identity")), fVarint(4, 0)}, extra...)...))
}

// smallModel is a valid byte-fallback BPE model: <unk>, <s>, </s>, 256 byte
// pieces and a few merges, followed by extra top-level fields (proto2 merges
// repeated sub-messages, so extra trainer/normalizer fields override).
func smallModel(extra ...[]byte) []byte {
	parts := [][]byte{
		pieceField("<unk>", 0, pieceUnknown),
		pieceField("<s>", 0, pieceControl),
		pieceField("</s>", 0, pieceControl),
	}
	for b := 0; b < 256; b++ {
		parts = append(parts, pieceField(fmt.Sprintf("<0x%02X>", b), 0, pieceByte))
	}
	for i, p := range []string{"▁", "a", "b", "c", "ab", "▁a", "▁ab", "bc", "abc", "<U>"} {
		typ := pieceNormal
		if p == "abc" {
			typ = pieceUnused
		}
		if p == "<U>" {
			typ = pieceUserDefined
		}
		parts = append(parts, pieceField(p, -float32(i), typ))
	}
	parts = append(parts, bpeTrainer(), identityNormalizer())
	return cat(append(parts, extra...)...)
}

func TestSmallModelLoads(t *testing.T) {
	sp, err := parseSentencePiece(smallModel())
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.pieces) != 269 || sp.unkID != 0 || !sp.byteFallback || !sp.addDummyPrefix || sp.removeExtraWS {
		t.Fatalf("parsed %d pieces, unk %d, flags %v %v %v", len(sp.pieces), sp.unkID, sp.byteFallback, sp.addDummyPrefix, sp.removeExtraWS)
	}
}

func wantErr(t *testing.T, name string, data []byte, kind error, mention string) {
	t.Helper()
	_, err := parseSentencePiece(data)
	if err == nil {
		t.Errorf("%s: no error", name)
		return
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) {
		t.Errorf("%s: error %v is not an *Error of kind %v", name, err, kind)
	}
	if !strings.Contains(err.Error(), mention) || !strings.HasPrefix(err.Error(), "tokenizer: ") {
		t.Errorf("%s: error %q does not mention %q", name, err, mention)
	}
}

func TestMalformedWire(t *testing.T) {
	good := smallModel()
	huge := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), 1<<62)
	for _, tc := range []struct {
		name, mention string
		data          []byte
	}{
		{"pieces as varint", "ModelProto.pieces (field 1) at byte 0 has wire type 0", fVarint(1, 5)},
		{"trainer_spec as fixed32", "trainer_spec (field 2)", cat(good, fFixed32(2, 0))},
		{"score as varint", "pieces[0].score", fBytes(1, cat(fBytes(1, []byte("x")), fVarint(2, 1)))},
		{"piece text as varint", "pieces[0].piece", fBytes(1, fVarint(1, 1))},
		{"type as bytes", "pieces[0].type", fBytes(1, fBytes(3, []byte{1}))},
		{"model_type as bytes", "trainer_spec.model_type", cat(good, fBytes(2, fBytes(3, []byte{2})))},
		{"byte_fallback as fixed32", "trainer_spec.byte_fallback", cat(good, fBytes(2, fFixed32(35, 1)))},
		{"name as varint", "normalizer_spec.name", cat(good, fBytes(3, fVarint(1, 1)))},
		{"add_dummy_prefix as bytes", "normalizer_spec.add_dummy_prefix", cat(good, fBytes(3, fBytes(3, nil)))},
		{"absurd length", "field 1 at byte 0", huge},
		{"absurd length inside a piece", "pieces[0]: field 1 at byte 2", fBytes(1, huge)},
		{"overlong varint", "bad field tag at byte 0", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"field number 0", "bad field tag at byte 0", []byte{0x02, 0x00}},
		{"unterminated group", "field 9 at byte 0", protowire.AppendTag(nil, 9, protowire.StartGroupType)},
		{"stray end group", "field 9 at byte 0", protowire.AppendTag(nil, 9, protowire.EndGroupType)},
		{"reserved wire type", "field 9 at byte 0", []byte{9<<3 | 6}},
		{"type beyond int32", "out of int32 range", fBytes(1, fVarint(3, 1<<40))},
	} {
		wantErr(t, tc.name, tc.data, ErrMalformed, tc.mention)
	}
}

// TestTruncatedModel: every cut of a model fails cleanly: all cuts of the
// small model, and cuts of the real one at its start, around its
// trainer_spec and at its end. A cut on a field boundary before trainer_spec
// is refused as the default UNIGRAM model type.
func TestTruncatedModel(t *testing.T) {
	small := smallModel()
	for n := 0; n < len(small); n++ {
		checkTruncated(t, "small", small, n)
	}
	real, err := os.ReadFile(filepath.Join(tinyLlavaDir, "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	trainerAt := len(real) - 286 // trainer_spec (263 bytes) and normalizer_spec (18) close the file
	for n := 0; n < 12; n++ {
		checkTruncated(t, "real", real, n)
		checkTruncated(t, "real", real, trainerAt-6+n)
		checkTruncated(t, "real", real, len(real)-1-n)
	}
	if _, err := parseSentencePiece(real); err != nil {
		t.Fatal(err)
	}
}

func checkTruncated(t *testing.T, name string, data []byte, n int) {
	t.Helper()
	_, err := parseSentencePiece(data[:n])
	if err == nil {
		t.Fatalf("%s: prefix of %d bytes parsed", name, n)
	}
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
		t.Fatalf("%s: prefix of %d bytes: %v", name, n, err)
	}
}

func TestRefusedSettings(t *testing.T) {
	real, err := os.ReadFile(filepath.Join(tinyLlavaDir, "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, mention string
		data          []byte
	}{
		{"unigram (explicit)", "model_type is UNIGRAM", cat(real, fBytes(2, fVarint(3, modelUnigram)))},
		{"word", "model_type is WORD", cat(smallModel(), fBytes(2, fVarint(3, modelWord)))},
		{"unigram (default)", "model_type is UNIGRAM", cat(pieceField("<unk>", 0, pieceUnknown), identityNormalizer())},
		{"nfkc", `normalizer_spec.name "nmt_nfkc"`, cat(real, fBytes(3, fBytes(1, []byte("nmt_nfkc"))))},
		{"charsmap", "precompiled_charsmap (3 bytes)", cat(real, fBytes(3, fBytes(2, []byte{1, 2, 3})))},
		{"denormalizer", "denormalizer_spec.precompiled_charsmap", cat(real, fBytes(5, fBytes(2, []byte{1})))},
		{"whitespace suffix", "treat_whitespace_as_suffix", cat(real, fBytes(2, fVarint(24, 1)))},
	} {
		wantErr(t, tc.name, tc.data, ErrUnsupported, tc.mention)
	}
}

func TestInvalidVocabulary(t *testing.T) {
	unk := pieceField("<unk>", 0, pieceUnknown)
	noFallback := fBytes(2, fVarint(3, modelBPE))
	for _, tc := range []struct {
		name, mention string
		data          []byte
	}{
		{"no pieces", "no pieces", cat(bpeTrainer(), identityNormalizer())},
		{"no unk", "no piece has type UNKNOWN", cat(pieceField("a", 0, pieceNormal), noFallback, identityNormalizer())},
		{"two unk", "unk is already defined", cat(unk, pieceField("<u2>", 0, pieceUnknown), noFallback, identityNormalizer())},
		{"duplicate", `pieces[2] "a" is already defined`, cat(unk, pieceField("a", 0, pieceNormal), pieceField("a", 0, pieceControl), noFallback, identityNormalizer())},
		{"empty piece", "pieces[1]: empty piece", cat(unk, pieceField("", 0, pieceNormal), noFallback, identityNormalizer())},
		{"unknown type", "unknown type 9", cat(unk, pieceField("a", 0, 9), noFallback, identityNormalizer())},
		{"negative type", "unknown type -1", cat(unk, fBytes(1, cat(fBytes(1, []byte("a")), fVarint(3, math.MaxUint64))), noFallback, identityNormalizer())},
		{"NaN score", "score is NaN", cat(unk, pieceField("a", float32(math.NaN()), pieceNormal), noFallback, identityNormalizer())},
		{"byte without fallback", "byte_fallback is false", cat(unk, pieceField("<0x41>", 0, pieceByte), noFallback, identityNormalizer())},
		{"bad byte piece", `"<0x4g>": invalid byte piece`, cat(unk, pieceField("<0x4g>", 0, pieceByte), bpeTrainer(), identityNormalizer())},
		{"missing bytes", "byte piece <0x00> is missing", cat(unk, pieceField("<0x41>", 0, pieceByte), bpeTrainer(), identityNormalizer())},
		{"bos_id out of range", "trainer_spec.bos_id 300", cat(smallModel(), fBytes(2, fVarint(41, 300)))},
		{"pad_id below -1", "trainer_spec.pad_id -2", cat(smallModel(), fBytes(2, fVarint(43, math.MaxUint64-1)))},
	} {
		wantErr(t, tc.name, tc.data, ErrMalformed, tc.mention)
	}
}

// writeFolder makes a checkpoint folder with the given files.
func writeFolder(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadErrors(t *testing.T) {
	model := smallModel()
	for _, tc := range []struct {
		name, mention string
		kind          error
		files         map[string][]byte
	}{
		{"no model", "tokenizer.model: open", ErrIO, map[string][]byte{}},
		{"garbage model", "tokenizer.model: ModelProto", ErrMalformed, map[string][]byte{"tokenizer.model": {0x0a, 0xff}}},
		{"bad json", "tokenizer_config.json: not a JSON object", ErrMalformed, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte("{")}},
		{"json list", "tokenizer_config.json: not a JSON object", ErrMalformed, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte("[]")}},
		{"other class", `tokenizer_class "T5Tokenizer"`, ErrUnsupported, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"tokenizer_class": "T5Tokenizer"}`)}},
		{"cleanup", "clean_up_tokenization_spaces", ErrUnsupported, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"clean_up_tokenization_spaces": true}`)}},
		{"sampling", "sp_model_kwargs", ErrUnsupported, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"sp_model_kwargs": {"enable_sampling": true}}`)}},
		{"no bos", "bos_token and eos_token", ErrUnsupported, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"bos_token": null}`)}},
		{"no unk", "unk_token must be set", ErrUnsupported, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"legacy": false, "unk_token": null}`)}},
		{"bool as string", "add_bos_token is not a boolean", ErrMalformed, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"add_bos_token": "yes"}`)}},
		{"bad token", "eos_token is neither", ErrMalformed, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"eos_token": 3}`)}},
		{"bad __type", `__type "Other"`, ErrMalformed, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"eos_token": {"__type": "Other", "content": "</s>"}}`)}},
		{"bad decoder key", `added_tokens_decoder key "x"`, ErrMalformed, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"added_tokens_decoder": {"x": {"content": "<a>"}}}`)}},
		{"decoder without content", "added_tokens_decoder[5] has no content", ErrMalformed, map[string][]byte{"tokenizer.model": model, "tokenizer_config.json": []byte(`{"added_tokens_decoder": {"5": {"lstrip": true}}}`)}},
		{"bad added id", `added_tokens.json: id of "<a>"`, ErrMalformed, map[string][]byte{"tokenizer.model": model, "added_tokens.json": []byte(`{"<a>": -4}`)}},
		{"bad special list", "special_tokens_map.json: additional_special_tokens is not a list", ErrMalformed, map[string][]byte{"tokenizer.model": model, "special_tokens_map.json": []byte(`{"additional_special_tokens": "<a>"}`)}},
	} {
		_, err := Load(writeFolder(t, tc.files))
		if err == nil || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: error %v, want kind %v mentioning %q", tc.name, err, tc.kind, tc.mention)
		}
	}
}
