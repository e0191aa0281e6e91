package tokenizer

import (
	"math"
	"strings"
	"unicode/utf8"
)

// spaceSymbol is U+2581 LOWER ONE EIGHTH BLOCK, sentencepiece's escaped space.
const spaceSymbol = "\u2581"

// sentencePiece is a validated BPE model: the behaviour of sentencepiece's
// SentencePieceProcessor for model_type BPE with the "identity" normaliser.
// It is immutable after newSentencePiece. The HF layer switches the dummy
// prefix off per call (LlamaTokenizer with legacy=false loads the model with
// add_dummy_prefix forced to false), so that flag is an argument, not state.
type sentencePiece struct {
	pieces []spPiece
	// normal maps the pieces BPE may produce (NORMAL, USER_DEFINED, UNUSED);
	// reserved maps CONTROL, UNKNOWN and BYTE pieces. sentencepiece's
	// PieceToId looks in reserved first (model_interface.cc).
	normal, reserved map[string]int32
	userDefined      map[string]struct{}
	maxUserLen       int
	byteID           [256]int32
	unkID            int32
	byteFallback     bool
	addDummyPrefix   bool // as stored in the file
	removeExtraWS    bool
	escapeWS         bool
	unkSurface       string
}

// newSentencePiece checks m the way sentencepiece's ModelInterface and
// Normalizer constructors do (src/model_interface.cc InitializePieces), and
// refuses by name every setting whose behaviour is not implemented here.
func newSentencePiece(m *modelProto) (*sentencePiece, error) {
	t := m.trainer
	if t.modelType != modelBPE {
		return nil, unsupported("trainer_spec.model_type is %s; only BPE models are supported", modelTypeName(t.modelType))
	}
	if t.treatWhitespaceAsSuffix {
		return nil, unsupported("trainer_spec.treat_whitespace_as_suffix is true; only prefix whitespace is supported")
	}
	n := m.normalizer
	if n.name != "identity" {
		return nil, unsupported("normalizer_spec.name %q is not implemented (only \"identity\")", n.name)
	}
	if n.charsmapLen > 0 {
		return nil, unsupported("normalizer_spec.precompiled_charsmap (%d bytes) cannot be applied", n.charsmapLen)
	}
	if m.denormalizer.charsmapLen > 0 {
		return nil, unsupported("denormalizer_spec.precompiled_charsmap (%d bytes) cannot be applied", m.denormalizer.charsmapLen)
	}
	if len(m.pieces) == 0 {
		return nil, malformed(nil, "ModelProto has no pieces")
	}
	sp := &sentencePiece{
		pieces:         m.pieces,
		normal:         make(map[string]int32, len(m.pieces)),
		reserved:       make(map[string]int32),
		unkID:          -1,
		byteFallback:   t.byteFallback,
		addDummyPrefix: n.addDummyPrefix,
		removeExtraWS:  n.removeExtraWhitespaces,
		escapeWS:       n.escapeWhitespaces,
		unkSurface:     t.unkSurface,
	}
	for i := range sp.byteID {
		sp.byteID[i] = -1
	}
	for i, p := range m.pieces {
		id := int32(i)
		if p.text == "" {
			return nil, malformed(nil, "pieces[%d]: empty piece", i)
		}
		target := sp.reserved
		switch p.typ {
		case pieceNormal, pieceUserDefined, pieceUnused:
			target = sp.normal
			if math.IsNaN(float64(p.score)) {
				return nil, malformed(nil, "pieces[%d] %q: score is NaN", i, p.text)
			}
		case pieceControl:
		case pieceUnknown:
			if sp.unkID >= 0 {
				return nil, malformed(nil, "pieces[%d] %q: unk is already defined as pieces[%d]", i, p.text, sp.unkID)
			}
			sp.unkID = id
		case pieceByte:
			if !t.byteFallback {
				return nil, malformed(nil, "pieces[%d] %q is a BYTE piece but trainer_spec.byte_fallback is false", i, p.text)
			}
			b, ok := pieceByteValue(p.text)
			if !ok {
				return nil, malformed(nil, "pieces[%d] %q: invalid byte piece", i, p.text)
			}
			sp.byteID[b] = id
		default:
			return nil, malformed(nil, "pieces[%d] %q: unknown type %d", i, p.text, int32(p.typ))
		}
		if _, dup := sp.normal[p.text]; dup {
			return nil, malformed(nil, "pieces[%d] %q is already defined", i, p.text)
		}
		if _, dup := sp.reserved[p.text]; dup {
			return nil, malformed(nil, "pieces[%d] %q is already defined", i, p.text)
		}
		target[p.text] = id
		if p.typ == pieceUserDefined {
			if sp.userDefined == nil {
				sp.userDefined = make(map[string]struct{})
			}
			sp.userDefined[p.text] = struct{}{}
			sp.maxUserLen = max(sp.maxUserLen, len(p.text))
		}
	}
	if sp.unkID < 0 {
		return nil, malformed(nil, "no piece has type UNKNOWN")
	}
	if t.byteFallback {
		for b, id := range sp.byteID {
			if id < 0 {
				return nil, malformed(nil, "trainer_spec.byte_fallback is true but byte piece <0x%02X> is missing", b)
			}
		}
	}
	for _, f := range []struct {
		name string
		id   int32
	}{{"unk_id", t.unkID}, {"bos_id", t.bosID}, {"eos_id", t.eosID}, {"pad_id", t.padID}} {
		if f.id < -1 || int(f.id) >= len(m.pieces) {
			return nil, malformed(nil, "trainer_spec.%s %d is outside the %d pieces", f.name, f.id, len(m.pieces))
		}
	}
	return sp, nil
}

// pieceByteValue parses the "<0xXX>" form of byte pieces (upper-case hex, as
// sentencepiece's ByteToPiece writes and PieceToByte accepts).
func pieceByteValue(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	hi, ok1 := upperHex(s[3])
	lo, ok2 := upperHex(s[4])
	return hi<<4 | lo, ok1 && ok2
}

func upperHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// pieceToID is sentencepiece's PieceToId: reserved pieces, then normal ones,
// else unk.
func (sp *sentencePiece) pieceToID(s string) int32 {
	if id, ok := sp.reserved[s]; ok {
		return id
	}
	if id, ok := sp.normal[s]; ok {
		return id
	}
	return sp.unkID
}

func (sp *sentencePiece) typeOf(id int32) pieceType { return sp.pieces[id].typ }

// matchUserDefined returns the length of the longest user-defined piece that
// prefixes s, or 0.
func (sp *sentencePiece) matchUserDefined(s string) int {
	for n := min(sp.maxUserLen, len(s)); n > 0; n-- {
		if _, ok := sp.userDefined[s[:n]]; ok {
			return n
		}
	}
	return 0
}

// normalizePrefix is Normalizer::NormalizePrefix without a charsmap: a
// user-defined piece, else one UTF-8 character, else U+FFFD for one
// malformed byte.
func (sp *sentencePiece) normalizePrefix(s string) (string, int) {
	if n := sp.matchUserDefined(s); n > 0 {
		return s[:n], n
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n == 1 {
		return "\uFFFD", 1
	}
	return s[:n], n
}

// normalize is Normalizer::Normalize (src/normalizer.cc) for the identity
// rule set.
func (sp *sentencePiece) normalize(in string, dummyPrefix bool) string {
	if sp.removeExtraWS {
		for in != "" {
			p, n := sp.normalizePrefix(in)
			if p != " " {
				break
			}
			in = in[n:]
		}
	}
	if in == "" {
		return ""
	}
	space := " "
	if sp.escapeWS {
		space = spaceSymbol
	}
	var b strings.Builder
	b.Grow(len(in) + len(in)/2 + len(space))
	if dummyPrefix {
		b.WriteString(space)
	}
	isPrevSpace := sp.removeExtraWS
	for in != "" {
		p, n := sp.normalizePrefix(in)
		for isPrevSpace && strings.HasPrefix(p, " ") {
			p = p[1:]
		}
		if p != "" {
			for i := 0; i < len(p); i++ {
				if p[i] == ' ' {
					b.WriteString(space)
				} else {
					b.WriteByte(p[i])
				}
			}
			isPrevSpace = strings.HasSuffix(p, " ")
		}
		in = in[n:]
		if !sp.removeExtraWS {
			isPrevSpace = false
		}
	}
	out := b.String()
	if sp.removeExtraWS {
		for strings.HasSuffix(out, space) {
			out = out[:len(out)-len(space)]
		}
	}
	return out
}

// encode is SentencePieceProcessor::Encode with string output: normalise,
// run BPE, then split unknown pieces into byte pieces (byte_fallback) or merge
// runs of them into one unknown piece. Pieces are appended to out.
func (sp *sentencePiece) encode(text string, dummyPrefix bool, out []string) []string {
	norm := sp.normalize(text, dummyPrefix)
	prevUnk := false
	sp.bpe(norm, func(w string, id int32) {
		isUnk := id == sp.unkID
		switch {
		case isUnk && sp.byteFallback:
			for i := 0; i < len(w); i++ {
				out = append(out, sp.pieces[sp.byteID[w[i]]].text)
			}
		case isUnk && prevUnk:
			out[len(out)-1] += w
		default:
			out = append(out, w)
		}
		prevUnk = isUnk
	})
	return out
}

// oneCharLen is sentencepiece's string_util::OneCharLen (length of a UTF-8
// sequence from its lead byte).
func oneCharLen(b byte) int {
	return int("\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x02\x02\x03\x04"[b>>4])
}
