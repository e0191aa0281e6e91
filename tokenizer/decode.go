package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Decoding replays, one token at a time, what transformers 4.40.2 does in
// PreTrainedTokenizer._decode (tokenization_utils.py), inside it
// LlamaTokenizer.convert_tokens_to_string, and inside that sentencepiece's
// SentencePieceProcessor::Decode (src/sentencepiece_processor.cc):
//
//   - _decode drops all_special_ids when skipping special tokens, and cuts
//     the tokens into sub-texts at "legacy added tokens" (added tokens that are
//     not special, plus additional special tokens with ids past the
//     sentencepiece vocabulary, e.g. <image>); the sub-texts are joined with
//     " " because the slow tokenizer's spaces_between_special_tokens
//     defaults to True whatever the config says. A sub-text cut before such a
//     token is kept only when non-empty; the last one always is.
//   - convert_tokens_to_string removes one leading "▁" from its first token,
//     writes special-token strings literally (sentencepiece decodes the runs
//     between them, each as a fresh call), and puts a space after a special
//     token in first position when the next token has no "▁"; with
//     legacy=true it also puts a space before a special token that follows
//     ordinary tokens (ahead of their decoded text).
//   - sentencepiece turns byte pieces into UTF-8 (U+FFFD per invalid byte),
//     "▁" into spaces, control pieces into nothing, the unk piece into
//     unk_surface, and strips the "▁" of the first piece when the model adds
//     a dummy prefix.
//
// Because every step is replayed incrementally, Decode and StreamDecoder share
// one implementation and their outputs agree by construction.
type decoder struct {
	t    *Tokenizer
	skip bool
	// hold buffers each sentencepiece run until its end is known, for the
	// legacy=true rule that puts a space in front of the run's text when a
	// special token follows. Off whenever no special-token string can reach
	// convert_tokens_to_string (skipping special ids, no aliases).
	hold bool
	out  []byte // produced text not yet handed out

	subTexts int // sub-texts already joined into out

	// the current convert_tokens_to_string call
	groupLen     int  // tokens in it so far (HF's index i)
	groupWritten bool // it has produced text (len(string) > 0)
	prevSpecial  bool

	// the current sentencepiece Decode call
	spText    bool // it has produced text
	isBosWS   bool
	bosWSSeen bool
	pending   []byte // byte pieces of an unfinished UTF-8 sequence
	held      []byte // the call's text while hold is on
}

func newDecoder(t *Tokenizer, skip bool) *decoder {
	d := &decoder{t: t, skip: skip, hold: t.legacy && (!skip || t.specialAlias)}
	d.resetSP()
	return d
}

func (d *decoder) resetSP() {
	d.spText, d.isBosWS, d.bosWSSeen = false, true, false
}

// push consumes one id. Ids outside the vocabulary (for example LLaVA's -200
// image sentinel) are skipped.
func (d *decoder) push(id int32) {
	if d.skip && d.t.specialIDs[id] {
		return
	}
	tok, ok := d.t.tokenString(id)
	if !ok {
		return
	}
	if d.t.legacyAdded[tok] {
		if d.groupLen > 0 {
			d.endGroup(false)
		}
		if d.subTexts > 0 {
			d.out = append(d.out, ' ')
		}
		d.out = append(d.out, tok...)
		d.subTexts++
		return
	}
	d.groupToken(tok)
}

// finish ends the sequence and leaves the decoder ready for a new one.
func (d *decoder) finish() {
	if d.groupLen > 0 {
		d.endGroup(true)
	}
	d.subTexts = 0
}

// groupToken is one step of convert_tokens_to_string.
func (d *decoder) groupToken(tok string) {
	i := d.groupLen
	d.groupLen++
	if i == 0 && d.t.addPrefixSpace {
		tok = strings.TrimPrefix(tok, spaceSymbol)
	}
	if d.t.isSpecial[tok] {
		if !d.prevSpecial && i != 0 && d.t.legacy {
			d.groupWrite(" ")
		}
		d.endSP()
		d.groupWrite(tok)
		d.prevSpecial = true
		return
	}
	if d.prevSpecial && i == 1 && d.t.addPrefixSpace && !strings.HasPrefix(tok, spaceSymbol) {
		d.groupWrite(" ")
	}
	d.spPiece(tok)
	d.prevSpecial = false
}

// endGroup closes convert_tokens_to_string. Before a legacy added token an
// empty result is dropped; at the end of the ids it still counts as a
// sub-text (and so still gets its joining space).
func (d *decoder) endGroup(final bool) {
	d.endSP()
	if d.groupWritten || final {
		if !d.groupWritten && d.subTexts > 0 {
			d.out = append(d.out, ' ')
		}
		d.subTexts++
	}
	d.groupLen, d.groupWritten, d.prevSpecial = 0, false, false
}

// groupWrite appends text of the current sub-text, preceded by the joining
// space when it is the sub-text's first text.
func (d *decoder) groupWrite(s string) {
	if s == "" {
		return
	}
	if !d.groupWritten {
		d.groupWritten = true
		if d.subTexts > 0 {
			d.out = append(d.out, ' ')
		}
	}
	d.out = append(d.out, s...)
}

// spWrite appends text of the current sentencepiece call.
func (d *decoder) spWrite(s string) {
	if s == "" {
		return
	}
	d.spText = true
	if d.hold {
		d.held = append(d.held, s...)
		return
	}
	d.groupWrite(s)
}

// endSP ends the current sentencepiece call.
func (d *decoder) endSP() {
	d.flushBytes()
	if len(d.held) > 0 {
		d.groupWrite(string(d.held))
		d.held = d.held[:0]
	}
	d.resetSP()
}

// spPiece decodes one piece string as SentencePieceProcessor::Decode does.
func (d *decoder) spPiece(piece string) {
	sp := d.t.sp
	id := sp.pieceToID(piece)
	if sp.typeOf(id) == pieceByte {
		b, _ := pieceByteValue(sp.pieces[id].text)
		d.pending = append(d.pending, b)
		d.drainBytes()
		return
	}
	d.flushBytes()
	if d.bosWSSeen || d.spText {
		d.isBosWS = false
	}
	var surface string
	surface, d.bosWSSeen = d.pieceSurface(piece, id)
	d.spWrite(surface)
}

// pieceSurface is DecodeSentencePiece: the text of one non-byte piece, and
// whether it consumed the leading whitespace of the output.
func (d *decoder) pieceSurface(piece string, id int32) (string, bool) {
	sp := d.t.sp
	switch sp.typeOf(id) {
	case pieceControl:
		return "", false
	case pieceUnknown:
		if piece == sp.pieces[id].text {
			return sp.unkSurface, false
		}
		return piece, false
	}
	seen := false
	if d.isBosWS && (d.t.spDummyPrefix || sp.removeExtraWS) {
		piece, seen = strings.CutPrefix(piece, spaceSymbol)
		if sp.removeExtraWS {
			seen = false
		}
	}
	return strings.ReplaceAll(piece, spaceSymbol, " "), seen
}

// drainBytes writes the complete characters at the front of pending. A
// prefix that is invalid whatever follows becomes U+FFFD per byte at once;
// an incomplete but so far valid sequence waits for more bytes.
func (d *decoder) drainBytes() {
	n := 0
	for n < len(d.pending) && utf8.FullRune(d.pending[n:]) {
		n += d.writeRune(d.pending[n:])
	}
	d.pending = append(d.pending[:0], d.pending[n:]...)
}

// flushBytes ends a run of byte pieces: whatever is left is invalid.
func (d *decoder) flushBytes() {
	for n := 0; n < len(d.pending); {
		n += d.writeRune(d.pending[n:])
	}
	d.pending = d.pending[:0]
}

// writeRune writes the first character of b (U+FFFD for an invalid byte) and
// returns how many bytes it used, as sentencepiece's IsValidDecodeUTF8 loop.
func (d *decoder) writeRune(b []byte) int {
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n == 1 {
		d.spWrite("\uFFFD")
		return 1
	}
	d.spWrite(string(b[:n]))
	return n
}

// Decode returns the text of ids as tokenizer.decode(ids,
// skip_special_tokens=skipSpecial) does in transformers 4.40.2 (slow
// tokenizer, clean_up_tokenization_spaces false), including its spacing
// around special tokens. Ids outside the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	d := newDecoder(t, skipSpecial)
	for _, id := range ids {
		d.push(id)
	}
	d.finish()
	return string(d.out)
}

// StreamDecoder turns generated ids into text as they arrive. The
// concatenation of everything Push and Flush return equals Decode of all the
// ids pushed since the decoder was made (or last flushed), so the first
// token's leading "▁" is dropped exactly as transformers' decode of the
// generated ids drops it. Push never returns part of a UTF-8 sequence: byte
// pieces of an unfinished character are held until it completes.
type StreamDecoder struct{ d *decoder }

// NewStreamDecoder starts decoding a new sequence; skipSpecial as in Decode.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{d: newDecoder(t, skipSpecial)}
}

// Push adds one id and returns the text it completed (possibly "").
func (s *StreamDecoder) Push(id int32) string {
	s.d.push(id)
	return s.take()
}

// Flush ends the sequence and returns what was held back: bytes of an
// unfinished character (as U+FFFD, like Decode), and text whose spacing
// depended on what came next. The decoder then starts a new sequence.
func (s *StreamDecoder) Flush() string {
	s.d.finish()
	return s.take()
}

func (s *StreamDecoder) take() string {
	text := string(s.d.out)
	s.d.out = s.d.out[:0]
	return text
}
