package tokenizer

import (
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

// maxModelBytes bounds tokenizer.model before it is read; LLaMA's is 0.5 MB.
const maxModelBytes = 64 << 20

// Tokenizer is a loaded checkpoint tokenizer. It is immutable and safe for
// concurrent use; StreamDecoders made from it are not shared.
type Tokenizer struct {
	sp *sentencePiece
	// spDummyPrefix is add_dummy_prefix of the model transformers actually
	// runs: LlamaTokenizer.get_spm_processor forces it off when legacy=false
	// (unless from_slow).
	spDummyPrefix bool

	legacy, addBOS, addEOS, addPrefixSpace, splitSpecial bool

	added    map[int32]*addedToken // _added_tokens_decoder
	addedIDs map[string]int32      // _added_tokens_encoder
	// byFirstByte lists added-token contents by first byte, longest first,
	// for splitting text at them.
	byFirstByte map[byte][]string

	allSpecial  []string        // all_special_tokens, in transformers' order
	isSpecial   map[string]bool // set of all_special_tokens
	specialIDs  map[int32]bool  // all_special_ids
	legacyAdded map[string]bool // _decode's legacy_added_tokens
	// specialAlias: some id outside all_special_ids still decodes to a
	// special-token string (duplicate contents); see decoder.hold.
	specialAlias bool

	unkToken  string
	unkLen    int // LlamaTokenizer.unk_token_length
	bos, eos  int32
	vocabSize int
}

// Load reads a Hugging Face LlamaTokenizer folder: tokenizer.model plus
// whichever of tokenizer_config.json, special_tokens_map.json and
// added_tokens.json exist.
func Load(dir string) (*Tokenizer, error) {
	modelPath := filepath.Join(dir, "tokenizer.model")
	data, err := readBounded(modelPath, maxModelBytes)
	if err != nil {
		return nil, err
	}
	sp, err := parseSentencePiece(data)
	if err != nil {
		return nil, inFile(modelPath, err)
	}
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	t, err := newTokenizer(sp, cfg)
	if err != nil {
		return nil, inFile(filepath.Join(dir, "tokenizer_config.json"), err)
	}
	return t, nil
}

// parseSentencePiece decodes and validates a serialized ModelProto.
func parseSentencePiece(data []byte) (*sentencePiece, error) {
	m, err := parseModelProto(data)
	if err != nil {
		return nil, err
	}
	return newSentencePiece(m)
}

func newTokenizer(sp *sentencePiece, cfg *hfConfig) (*Tokenizer, error) {
	t := &Tokenizer{
		sp:             sp,
		spDummyPrefix:  sp.addDummyPrefix && (cfg.legacy || cfg.fromSlow),
		legacy:         cfg.legacy,
		addBOS:         cfg.addBOS,
		addEOS:         cfg.addEOS,
		addPrefixSpace: cfg.addPrefixSpace,
		splitSpecial:   cfg.splitSpecial,
		added:          map[int32]*addedToken{},
		addedIDs:       map[string]int32{},
		isSpecial:      map[string]bool{},
		specialIDs:     map[int32]bool{},
		legacyAdded:    map[string]bool{},
	}
	for _, id := range sortedIDs(cfg.added) {
		t.added[id] = cfg.added[id]
		t.addedIDs[cfg.added[id].content] = id
	}
	// all_special_tokens_extended: the special-token attributes in order,
	// then additional_special_tokens, unique by content.
	var extended []*addedToken
	for _, tok := range append(cfg.special[:], cfg.additional...) {
		if tok != nil && !t.isSpecial[tok.content] {
			t.isSpecial[tok.content] = true
			t.allSpecial = append(t.allSpecial, tok.content)
			extended = append(extended, tok)
		}
	}
	t.addMissingSpecial(extended)

	if cfg.special[attrBOS] == nil || cfg.special[attrEOS] == nil {
		return nil, unsupported("bos_token and eos_token must be set")
	}
	if cfg.special[attrUnk] == nil && !cfg.legacy {
		return nil, unsupported("unk_token must be set when legacy is false")
	}
	t.bos = t.tokenID(cfg.special[attrBOS].content)
	t.eos = t.tokenID(cfg.special[attrEOS].content)
	if u := cfg.special[attrUnk]; u != nil {
		t.unkToken = u.content
		t.unkLen = len(sp.encode(u.content, t.spDummyPrefix, nil))
	}
	for _, s := range t.allSpecial {
		t.specialIDs[t.tokenID(s)] = true
	}
	for content := range t.addedIDs {
		if !t.isSpecial[content] {
			t.legacyAdded[content] = true
		}
	}
	for _, tok := range cfg.additional {
		if int(t.tokenID(tok.content)) >= len(sp.pieces) {
			t.legacyAdded[tok.content] = true
		}
	}
	t.specialAlias = t.findSpecialAlias()

	t.vocabSize = len(sp.pieces)
	t.byFirstByte = map[byte][]string{}
	for content, id := range t.addedIDs {
		t.vocabSize = max(t.vocabSize, int(id)+1)
		t.byFirstByte[content[0]] = append(t.byFirstByte[content[0]], content)
	}
	for _, list := range t.byFirstByte {
		sort.Slice(list, func(i, j int) bool {
			if len(list[i]) != len(list[j]) {
				return len(list[i]) > len(list[j])
			}
			return list[i] < list[j]
		})
	}
	return t, nil
}

// addMissingSpecial is PreTrainedTokenizer._add_tokens(special_tokens=True)
// as __init__ calls it: a special token that is not an added token yet takes
// its id from the vocabulary (get_vocab: pieces, then added tokens), or the
// next free id.
func (t *Tokenizer) addMissingSpecial(extended []*addedToken) {
	var vocab map[string]int32
	var newID int32 // len(get_vocab()), taken once as transformers does
	for _, tok := range extended {
		if _, ok := t.addedIDs[tok.content]; ok {
			continue
		}
		if vocab == nil {
			vocab = make(map[string]int32, len(t.sp.pieces)+len(t.addedIDs))
			for i := range t.sp.pieces {
				s, _ := t.tokenString(int32(i))
				vocab[s] = int32(i)
			}
			for s, id := range t.addedIDs {
				vocab[s] = id
			}
			newID = int32(len(vocab))
		}
		id, ok := vocab[tok.content]
		if !ok {
			id = newID
			newID++
			vocab[tok.content] = id
		}
		t.added[id] = tok
		t.addedIDs[tok.content] = id
	}
}

// findSpecialAlias reports whether an id outside all_special_ids decodes to a
// special-token string: an added token sharing its content with another id,
// or a sentencepiece piece spelled like an added special token.
func (t *Tokenizer) findSpecialAlias() bool {
	for id, tok := range t.added {
		if t.isSpecial[tok.content] && !t.specialIDs[id] {
			return true
		}
	}
	for _, s := range t.allSpecial {
		p, ok := t.sp.reserved[s]
		if !ok {
			p, ok = t.sp.normal[s]
		}
		if _, isAdded := t.added[p]; ok && !isAdded && !t.specialIDs[p] {
			return true
		}
	}
	return false
}

// tokenID is convert_tokens_to_ids: added tokens first, then the
// sentencepiece vocabulary, else unk.
func (t *Tokenizer) tokenID(s string) int32 {
	if id, ok := t.addedIDs[s]; ok {
		return id
	}
	return t.sp.pieceToID(s)
}

// tokenString is convert_ids_to_tokens for one id; false for an id that is
// neither an added token nor a piece.
func (t *Tokenizer) tokenString(id int32) (string, bool) {
	if a, ok := t.added[id]; ok {
		return a.content, true
	}
	if id >= 0 && int(id) < len(t.sp.pieces) {
		return t.sp.pieces[id].text, true
	}
	return "", false
}

// BOS returns the id of bos_token.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the id of eos_token.
func (t *Tokenizer) EOS() int32 { return t.eos }

// VocabSize is one more than the largest id the tokenizer can produce: the
// sentencepiece pieces plus added tokens (32002 for llava-hf checkpoints,
// whose embedding matrix is padded further).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// TokenID returns the id of an added token or sentencepiece piece spelled
// exactly s.
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	if id, ok := t.addedIDs[s]; ok {
		return id, true
	}
	if id, ok := t.sp.reserved[s]; ok {
		return id, true
	}
	id, ok := t.sp.normal[s]
	return id, ok
}

// Piece returns the token string of id (transformers' convert_ids_to_tokens),
// or "" for an id outside the vocabulary.
func (t *Tokenizer) Piece(id int32) string {
	s, _ := t.tokenString(id)
	return s
}

// IsSpecial reports whether id is one of all_special_ids (the ids that
// decoding with skipSpecial drops).
func (t *Tokenizer) IsSpecial(id int32) bool { return t.specialIDs[id] }

// Encode returns the ids of text as tokenizer(text, add_special_tokens=False)
// does, with bos_token's id in front when addBOS is set. EOS is never
// appended. Bytes that are not valid UTF-8 become U+FFFD, one per byte, as
// sentencepiece's normaliser does.
func (t *Tokenizer) Encode(text string, addBOS bool) []int32 {
	return t.encode(text, nil, addBOS)
}

// Span is a byte range [Start, End) of a text.
type Span struct{ Start, End int }

// EncodeControlled is Encode for a text that mixes a template's control
// tokens with text that came from a user: an added token (<s>, </s>,
// <image>, …) counts as its token only where it lies wholly inside one of
// the controls spans; anywhere else its string is plain text, encoded by
// sentencepiece like any other (transformers' split_special_tokens=True,
// for those parts only). A text whose added tokens all lie inside controls
// gets exactly Encode's ids.
func (t *Tokenizer) EncodeControlled(text string, controls []Span, addBOS bool) []int32 {
	return t.encode(text, &controlSpans{controls}, addBOS)
}

// controlSpans says where added tokens count; a nil *controlSpans counts
// them everywhere (Encode).
type controlSpans struct{ spans []Span }

func (c *controlSpans) allows(start, end int) bool {
	if c == nil {
		return true
	}
	for _, s := range c.spans {
		if s.Start <= start && end <= s.End {
			return true
		}
	}
	return false
}

// edit maps the spans through an edit of the text: at each offset in cuts
// (ascending) del bytes were replaced with ins bytes; shift bytes were
// added in front.
func (c *controlSpans) edit(cuts []int, del, ins, shift int) *controlSpans {
	if c == nil {
		return nil
	}
	moved := func(x int) int {
		n := 0
		for _, at := range cuts {
			if at < x {
				n++
			}
		}
		return x + shift + n*(ins-del)
	}
	out := &controlSpans{make([]Span, len(c.spans))}
	for i, s := range c.spans {
		out.spans[i] = Span{moved(s.Start), moved(s.End)}
	}
	return out
}

// sub is the spans within text[start:end], in its coordinates.
func (c *controlSpans) sub(start, end int) *controlSpans {
	if c == nil {
		return nil
	}
	out := &controlSpans{}
	for _, s := range c.spans {
		if s.End > start && s.Start < end {
			out.spans = append(out.spans, Span{max(s.Start, start) - start, min(s.End, end) - start})
		}
	}
	return out
}

func (t *Tokenizer) encode(text string, ctl *controlSpans, addBOS bool) []int32 {
	toks := t.tokenize(text, ctl)
	ids := make([]int32, 0, len(toks)+1)
	if addBOS {
		ids = append(ids, t.bos)
	}
	for _, s := range toks {
		ids = append(ids, t.tokenID(s))
	}
	return ids
}

// EncodeImageChunks is original LLaVA's tokenizer_image_token
// (haotian-liu/LLaVA, llava/mm_utils.py): the prompt is split at "<image>",
// each chunk is tokenized on its own as tokenizer(chunk).input_ids (with the
// config's add_bos_token/add_eos_token), and the chunks are joined with one
// sentinel id (IMAGE_TOKEN_INDEX, -200). When the first chunk starts with BOS,
// that BOS is kept once and the first id of every chunk is dropped.
func (t *Tokenizer) EncodeImageChunks(prompt string, sentinel int32) []int32 {
	return t.encodeImageChunks(prompt, nil, sentinel)
}

// EncodeImageChunksControlled is EncodeImageChunks with EncodeControlled's
// rule: the prompt is split only at the "<image>" strings inside controls,
// and each chunk's added tokens count only inside them.
func (t *Tokenizer) EncodeImageChunksControlled(prompt string, controls []Span, sentinel int32) []int32 {
	return t.encodeImageChunks(prompt, &controlSpans{controls}, sentinel)
}

func (t *Tokenizer) encodeImageChunks(prompt string, ctl *controlSpans, sentinel int32) []int32 {
	const image = "<image>"
	var bounds []Span // the chunks
	last := 0
	for i := 0; i+len(image) <= len(prompt); {
		if strings.HasPrefix(prompt[i:], image) && ctl.allows(i, i+len(image)) {
			bounds = append(bounds, Span{last, i})
			i += len(image)
			last = i
			continue
		}
		i++
	}
	bounds = append(bounds, Span{last, len(prompt)})
	perChunk := make([][]int32, len(bounds))
	for i, b := range bounds {
		ids := t.encode(prompt[b.Start:b.End], ctl.sub(b.Start, b.End), t.addBOS)
		if t.addEOS {
			ids = append(ids, t.eos)
		}
		perChunk[i] = ids
	}
	var out []int32
	offset := 0
	if len(perChunk[0]) > 0 && perChunk[0][0] == t.bos {
		offset = 1
		out = append(out, t.bos)
	}
	for i, ids := range perChunk {
		if i > 0 {
			out = append(out, sentinel)
		}
		out = append(out, ids[min(offset, len(ids)):]...)
	}
	return out
}

// tokenize is LlamaTokenizer.tokenize: with legacy=false the text gets one
// leading "▁" (literal "▁" becoming a space first), and that "▁" is dropped
// again when a special token follows it directly.
func (t *Tokenizer) tokenize(text string, ctl *controlSpans) []string {
	if t.legacy || text == "" {
		return t.splitAndEncode(text, ctl)
	}
	if ctl != nil {
		var cuts []int
		for i := 0; ; {
			j := strings.Index(text[i:], spaceSymbol)
			if j < 0 {
				break
			}
			cuts = append(cuts, i+j)
			i += j + len(spaceSymbol)
		}
		ctl = ctl.edit(cuts, len(spaceSymbol), 1, 0)
	}
	text = strings.ReplaceAll(text, spaceSymbol, " ")
	if t.addPrefixSpace {
		text = spaceSymbol + text
		ctl = ctl.edit(nil, 0, 0, len(spaceSymbol))
	}
	toks := t.splitAndEncode(text, ctl)
	if len(toks) > 1 && toks[0] == spaceSymbol && t.isSpecial[toks[1]] {
		toks = toks[1:]
	}
	return toks
}

// splitAndEncode is PreTrainedTokenizer.tokenize: cut the text at added
// tokens (those ctl allows), apply their lstrip/rstrip/single_word rules to
// the neighbouring chunks, and run sentencepiece on the rest.
func (t *Tokenizer) splitAndEncode(text string, ctl *controlSpans) []string {
	segs := []segment{{text: text}}
	if !t.splitSpecial {
		segs = t.splitAdded(text, ctl)
		for i, seg := range segs {
			if !seg.token {
				continue
			}
			a := t.added[t.addedIDs[seg.text]]
			var left, right string
			if i > 0 {
				left = segs[i-1].text
			}
			if i < len(segs)-1 {
				right = segs[i+1].text
			}
			if a.rstrip && right != "" {
				segs[i+1].text = strings.TrimLeftFunc(right, pyIsSpace)
			}
			if a.lstrip && left != "" {
				segs[i-1].text = strings.TrimRightFunc(left, pyIsSpace)
			}
			if a.singleWord && left != "" && left[len(left)-1] != ' ' {
				segs[i-1].text += seg.text
				segs[i].text = ""
			} else if a.singleWord && right != "" && right[0] != ' ' {
				segs[i].text += right
				segs[i+1].text = ""
			}
		}
	}
	var out []string
	for _, s := range segs {
		if s.text == "" {
			continue
		}
		if s.token && !t.splitSpecial {
			if _, ok := t.addedIDs[s.text]; ok { // not a single_word token glued to a word
				out = append(out, s.text)
				continue
			}
		}
		out = t.spTokenize(s.text, out)
	}
	return out
}

// segment is a piece of text between added tokens, or one of them.
type segment struct {
	text  string
	token bool // an added token where ctl allows one
}

// splitAdded cuts text before and after every added token that ctl allows,
// taking at each position the longest such token that starts there (what
// transformers' Trie.split yields).
func (t *Tokenizer) splitAdded(text string, ctl *controlSpans) []segment {
	var segs []segment
	last := 0
	for i := 0; i < len(text); {
		match := ""
		for _, c := range t.byFirstByte[text[i]] {
			if strings.HasPrefix(text[i:], c) && ctl.allows(i, i+len(c)) {
				match = c
				break
			}
		}
		if match == "" {
			i++
			continue
		}
		if i > last {
			segs = append(segs, segment{text: text[last:i]})
		}
		segs = append(segs, segment{text: match, token: true})
		i += len(match)
		last = i
	}
	if last < len(text) || len(segs) == 0 {
		segs = append(segs, segment{text: text[last:]})
	}
	return segs
}

// spTokenize is LlamaTokenizer._tokenize. With legacy=false a chunk that
// starts with a space is encoded behind unk_token, whose pieces are then
// cut off, so that sentencepiece (dummy prefix off) keeps the chunk's own
// leading "▁" as a word start.
func (t *Tokenizer) spTokenize(text string, out []string) []string {
	if t.legacy || !(strings.HasPrefix(text, spaceSymbol) || strings.HasPrefix(text, " ")) {
		return t.sp.encode(text, t.spDummyPrefix, out)
	}
	n := len(out)
	out = t.sp.encode(t.unkToken+text, t.spDummyPrefix, out)
	if len(out)-n >= t.unkLen {
		out = append(out[:n], out[n+t.unkLen:]...)
	}
	return out
}

// pyIsSpace is Python's str.isspace for one character (what str.strip
// removes): Go's unicode.IsSpace plus the separators U+001C..U+001F.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
