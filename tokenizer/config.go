package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Reading the Hugging Face side of a checkpoint folder the way transformers
// 4.40.2 does for the slow LlamaTokenizer: tokenization_utils_base.py
// (PreTrainedTokenizerBase._from_pretrained, SpecialTokensMixin),
// tokenization_utils.py (PreTrainedTokenizer.__init__, _add_tokens) and
// models/llama/tokenization_llama.py (LlamaTokenizer.__init__).

const maxJSONBytes = 16 << 20 // tokenizer JSON files are a few KiB

// addedToken is transformers' AddedToken, less the flags the slow
// LlamaTokenizer never reads: normalized only matters with do_lower_case, and
// special only matters when a token is added after loading (membership in
// all_special_tokens comes from the special-token attributes, not the flag).
type addedToken struct {
	content                    string
	singleWord, lstrip, rstrip bool
}

// specialAttrs is SpecialTokensMixin.SPECIAL_TOKENS_ATTRIBUTES without
// additional_special_tokens, in its order (which fixes the order of
// all_special_tokens and of ids given to missing special tokens).
var specialAttrs = [...]string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

const (
	attrBOS = iota
	attrEOS
	attrUnk
)

// hfConfig is what the JSON files say, after transformers' merging rules.
type hfConfig struct {
	legacy, addBOS, addEOS, addPrefixSpace bool
	fromSlow, splitSpecial                 bool
	special                                [len(specialAttrs)]*addedToken // nil: None
	additional                             []*addedToken
	added                                  map[int32]*addedToken // _added_tokens_decoder before _add_tokens
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Kind: ErrIO, Detail: "open", Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{Path: path, Kind: ErrIO, Detail: "stat", Err: err}
	}
	if st.Size() > limit {
		return nil, &Error{Path: path, Kind: ErrMalformed, Detail: fmt.Sprintf("%d bytes, more than the %d this file may have", st.Size(), limit)}
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, &Error{Path: path, Kind: ErrIO, Detail: "read", Err: err}
	}
	return data, nil
}

// readJSONObject reads a JSON file into a map of raw values; a missing file
// gives a nil map and no error.
func readJSONObject(path string) (map[string]json.RawMessage, error) {
	data, err := readBounded(path, maxJSONBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &Error{Path: path, Kind: ErrMalformed, Detail: "not a JSON object", Err: err}
	}
	if m == nil {
		return nil, &Error{Path: path, Kind: ErrMalformed, Detail: "not a JSON object (null)"}
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool {
	return raw == nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// boolField reads an optional boolean; null and absence give def.
func boolField(m map[string]json.RawMessage, key string, def bool) (bool, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return def, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, malformed(err, "%s is not a boolean", key)
	}
	return v, nil
}

// parseToken reads a token given as a string, as {"content": ...} (with or
// without "__type": "AddedToken"), or null (nil, nil).
func parseToken(raw json.RawMessage, field string) (*addedToken, error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil // transformers treats "" as unset (special_tokens_map_extended skips falsy values)
		}
		return &addedToken{content: s}, nil
	}
	var obj struct {
		Type       *string `json:"__type"`
		Content    *string `json:"content"`
		SingleWord bool    `json:"single_word"`
		LStrip     bool    `json:"lstrip"`
		RStrip     bool    `json:"rstrip"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, malformed(err, "%s is neither a string nor an AddedToken object", field)
	}
	if obj.Type != nil && *obj.Type != "AddedToken" {
		return nil, malformed(nil, "%s has __type %q, want \"AddedToken\"", field, *obj.Type)
	}
	if obj.Content == nil || *obj.Content == "" {
		return nil, malformed(nil, "%s has no content", field)
	}
	return &addedToken{content: *obj.Content, singleWord: obj.SingleWord, lstrip: obj.LStrip, rstrip: obj.RStrip}, nil
}

func parseTokenList(raw json.RawMessage, field string) ([]*addedToken, error) {
	if isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, malformed(err, "%s is not a list", field)
	}
	var out []*addedToken
	for i, it := range items {
		t, err := parseToken(it, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		if t != nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// readConfig reads the JSON files of a checkpoint folder (see mergeConfig).
func readConfig(dir string) (*hfConfig, error) {
	return mergeConfig(func(name string) (map[string]json.RawMessage, string, error) {
		path := filepath.Join(dir, name)
		m, err := readJSONObject(path)
		return m, path, err
	})
}

// jsonOpener returns a file's top-level object (nil when the file does not
// exist) and the path to name in errors.
type jsonOpener func(name string) (map[string]json.RawMessage, string, error)

// mergeConfig merges tokenizer_config.json, special_tokens_map.json and
// added_tokens.json as PreTrainedTokenizerBase._from_pretrained does: when
// tokenizer_config.json has added_tokens_decoder, the other two files are
// not read; otherwise special_tokens_map.json overrides the config's special
// tokens (additional ones are merged) and added_tokens.json lists the added
// tokens.
func mergeConfig(open jsonOpener) (*hfConfig, error) {
	cfg, cfgPath, err := open("tokenizer_config.json")
	if err != nil {
		return nil, err
	}
	c, err := parseConfig(cfg)
	if err != nil {
		return nil, inFile(cfgPath, err)
	}
	if _, ok := cfg["added_tokens_decoder"]; ok {
		return c, nil
	}
	stm, mapPath, err := open("special_tokens_map.json")
	if err != nil {
		return nil, err
	}
	if err := c.mergeSpecialTokensMap(stm); err != nil {
		return nil, inFile(mapPath, err)
	}
	added, addedPath, err := open("added_tokens.json")
	if err != nil {
		return nil, err
	}
	if err := c.mergeAddedTokens(added); err != nil {
		return nil, inFile(addedPath, err)
	}
	return c, nil
}

func parseConfig(cfg map[string]json.RawMessage) (*hfConfig, error) {
	if raw, ok := cfg["tokenizer_class"]; ok && !isNull(raw) {
		var class string
		if err := json.Unmarshal(raw, &class); err != nil {
			return nil, malformed(err, "tokenizer_class is not a string")
		}
		if class != "LlamaTokenizer" && class != "LlamaTokenizerFast" {
			return nil, unsupported("tokenizer_class %q is not implemented (only LlamaTokenizer)", class)
		}
	}
	if raw, ok := cfg["sp_model_kwargs"]; ok && !isNull(raw) {
		var kw map[string]json.RawMessage
		if err := json.Unmarshal(raw, &kw); err != nil {
			return nil, malformed(err, "sp_model_kwargs is not an object")
		}
		if len(kw) > 0 {
			return nil, unsupported("sp_model_kwargs %s is not implemented (sampling and other sentencepiece options)", bytes.TrimSpace(raw))
		}
	}
	if cleanup, err := boolField(cfg, "clean_up_tokenization_spaces", false); err != nil {
		return nil, err
	} else if cleanup {
		return nil, unsupported("clean_up_tokenization_spaces true is not implemented (it makes decoding non-incremental)")
	}
	c := &hfConfig{added: map[int32]*addedToken{}}
	var err error
	flags := []struct {
		key string
		dst *bool
		def bool
	}{
		// legacy: LlamaTokenizer turns None into True (with a warning).
		{"legacy", &c.legacy, true},
		{"add_bos_token", &c.addBOS, true},
		{"add_eos_token", &c.addEOS, false},
		{"add_prefix_space", &c.addPrefixSpace, true},
		{"from_slow", &c.fromSlow, false},
		{"split_special_tokens", &c.splitSpecial, false},
	}
	for _, f := range flags {
		if *f.dst, err = boolField(cfg, f.key, f.def); err != nil {
			return nil, err
		}
	}
	// LlamaTokenizer.__init__ defaults for tokens the config does not name.
	defaults := map[string]string{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
	for i, attr := range specialAttrs {
		raw, ok := cfg[attr]
		if !ok {
			if d, has := defaults[attr]; has {
				c.special[i] = &addedToken{content: d}
			}
			continue
		}
		if c.special[i], err = parseToken(raw, attr); err != nil {
			return nil, err
		}
	}
	if c.additional, err = parseTokenList(cfg["additional_special_tokens"], "additional_special_tokens"); err != nil {
		return nil, err
	}
	if raw, ok := cfg["added_tokens_decoder"]; ok && !isNull(raw) {
		var dec map[string]json.RawMessage
		if err := json.Unmarshal(raw, &dec); err != nil {
			return nil, malformed(err, "added_tokens_decoder is not an object")
		}
		for key, v := range dec {
			id, err := strconv.ParseInt(key, 10, 32)
			if err != nil || id < 0 {
				return nil, malformed(nil, "added_tokens_decoder key %q is not a token id", key)
			}
			tok, err := parseToken(v, "added_tokens_decoder["+key+"]")
			if err != nil {
				return nil, err
			}
			if tok == nil {
				return nil, malformed(nil, "added_tokens_decoder[%s] is empty", key)
			}
			c.added[int32(id)] = tok
		}
	}
	return c, nil
}

// mergeSpecialTokensMap applies special_tokens_map.json over the config.
func (c *hfConfig) mergeSpecialTokensMap(stm map[string]json.RawMessage) error {
	for i, attr := range specialAttrs {
		raw, ok := stm[attr]
		if !ok {
			continue
		}
		t, err := parseToken(raw, attr)
		if err != nil {
			return err
		}
		c.special[i] = t
	}
	extra, err := parseTokenList(stm["additional_special_tokens"], "additional_special_tokens")
	if err != nil {
		return err
	}
	for _, t := range extra {
		seen := false
		for _, have := range c.additional {
			seen = seen || have.content == t.content
		}
		if !seen {
			c.additional = append(c.additional, t)
		}
	}
	return nil
}

// mergeAddedTokens reads added_tokens.json ({content: id}); such tokens never
// strip whitespace.
func (c *hfConfig) mergeAddedTokens(added map[string]json.RawMessage) error {
	for content, raw := range added {
		var id int64
		if err := json.Unmarshal(raw, &id); err != nil || id < 0 || id > 1<<31-1 {
			return malformed(err, "id of %q is not a token id", content)
		}
		if content == "" {
			return malformed(nil, "empty token at id %d", id)
		}
		c.added[int32(id)] = &addedToken{content: content}
	}
	return nil
}

func sortedIDs(m map[int32]*addedToken) []int32 {
	ids := make([]int32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
