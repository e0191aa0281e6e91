package tokenizer

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The subset of sentencepiece's ModelProto (google/sentencepiece,
// src/sentencepiece_model.proto) that encoding and decoding depend on, read
// field by field with protowire. Fields that only matter for training are
// skipped; fields whose meaning this package does not implement are parsed so
// that validate can refuse them by name.

// pieceType is ModelProto.SentencePiece.Type.
type pieceType int32

const (
	pieceNormal      pieceType = 1
	pieceUnknown     pieceType = 2
	pieceControl     pieceType = 3
	pieceUserDefined pieceType = 4
	pieceUnused      pieceType = 5
	pieceByte        pieceType = 6
)

// TrainerSpec.ModelType values.
const (
	modelUnigram = 1
	modelBPE     = 2
	modelWord    = 3
	modelChar    = 4
)

func modelTypeName(t int32) string {
	switch t {
	case modelUnigram:
		return "UNIGRAM"
	case modelBPE:
		return "BPE"
	case modelWord:
		return "WORD"
	case modelChar:
		return "CHAR"
	}
	return fmt.Sprintf("%d", t)
}

type spPiece struct {
	text  string
	score float32
	typ   pieceType
}

type trainerSpec struct {
	modelType               int32
	byteFallback            bool
	treatWhitespaceAsSuffix bool
	unkID, bosID, eosID     int32
	padID                   int32
	unkSurface              string
}

type normalizerSpec struct {
	name                   string
	charsmapLen            int // precompiled_charsmap is refused when non-empty, so only its size is kept
	addDummyPrefix         bool
	removeExtraWhitespaces bool
	escapeWhitespaces      bool
}

type modelProto struct {
	pieces       []spPiece
	trainer      trainerSpec
	normalizer   normalizerSpec
	denormalizer normalizerSpec
}

// Proto2 defaults from sentencepiece_model.proto.
func defaultTrainer() trainerSpec {
	return trainerSpec{modelType: modelUnigram, unkID: 0, bosID: 1, eosID: 2, padID: -1,
		unkSurface: " \u2047 "}
}

func defaultNormalizer() normalizerSpec {
	return normalizerSpec{addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true}
}

// msgName names a message in errors: "trainer_spec", or "pieces[7]" when
// index >= 0 (formatted only when an error needs it).
type msgName struct {
	name  string
	index int
}

func (m msgName) String() string {
	if m.index < 0 {
		return m.name
	}
	return fmt.Sprintf("%s[%d]", m.name, m.index)
}

func message(name string) msgName { return msgName{name: name, index: -1} }

// wireField is one decoded field of a message.
type wireField struct {
	num  protowire.Number
	typ  protowire.Type
	off  int    // file offset of the tag
	v    uint64 // varint, fixed32 or fixed64 payload
	b    []byte // length-delimited payload
	boff int    // file offset of b
}

// walkMessage calls visit for every field of the message encoded in b, which
// starts at file offset base. Groups are skipped as unknown fields.
func walkMessage(b []byte, base int, msg msgName, visit func(f wireField) error) error {
	for pos := 0; pos < len(b); {
		num, typ, n := protowire.ConsumeTag(b[pos:])
		if n < 0 {
			return malformed(protowire.ParseError(n), "%s: bad field tag at byte %d", msg, base+pos)
		}
		f := wireField{num: num, typ: typ, off: base + pos}
		pos += n
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b[pos:])
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b[pos:])
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b[pos:])
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b[pos:])
			f.boff = base + pos + n - len(f.b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b[pos:])
		}
		if n < 0 {
			return malformed(protowire.ParseError(n), "%s: field %d at byte %d", msg, num, f.off)
		}
		pos += n
		if typ == protowire.StartGroupType {
			continue
		}
		if err := visit(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks a known field's wire type.
func (f wireField) want(msg msgName, name string, typ protowire.Type) error {
	if f.typ == typ {
		return nil
	}
	return malformed(nil, "%s.%s (field %d) at byte %d has wire type %d, want %d",
		msg, name, f.num, f.off, f.typ, typ)
}

// int32Value reads an int32 or enum varint (negative values are sign-extended
// to 64 bits on the wire).
func (f wireField) int32Value(msg msgName, name string) (int32, error) {
	if int64(f.v) < math.MinInt32 || int64(f.v) > math.MaxInt32 {
		return 0, malformed(nil, "%s.%s at byte %d: value %d out of int32 range", msg, name, f.off, int64(f.v))
	}
	return int32(int64(f.v)), nil
}

// parseModelProto decodes a serialized ModelProto. It checks the wire format
// only; validate checks the meaning.
func parseModelProto(b []byte) (*modelProto, error) {
	m := &modelProto{trainer: defaultTrainer(), normalizer: defaultNormalizer(), denormalizer: defaultNormalizer()}
	top := message("ModelProto")
	err := walkMessage(b, 0, top, func(f wireField) error {
		switch f.num {
		case 1:
			if err := f.want(top, "pieces", protowire.BytesType); err != nil {
				return err
			}
			p, err := parsePiece(f.b, f.boff, len(m.pieces))
			if err != nil {
				return err
			}
			m.pieces = append(m.pieces, p)
		case 2:
			if err := f.want(top, "trainer_spec", protowire.BytesType); err != nil {
				return err
			}
			return parseTrainer(f.b, f.boff, &m.trainer)
		case 3:
			if err := f.want(top, "normalizer_spec", protowire.BytesType); err != nil {
				return err
			}
			return parseNormalizer(f.b, f.boff, message("normalizer_spec"), &m.normalizer)
		case 5:
			if err := f.want(top, "denormalizer_spec", protowire.BytesType); err != nil {
				return err
			}
			return parseNormalizer(f.b, f.boff, message("denormalizer_spec"), &m.denormalizer)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func parsePiece(b []byte, base, index int) (spPiece, error) {
	msg := msgName{name: "pieces", index: index}
	p := spPiece{typ: pieceNormal}
	err := walkMessage(b, base, msg, func(f wireField) error {
		switch f.num {
		case 1:
			if err := f.want(msg, "piece", protowire.BytesType); err != nil {
				return err
			}
			p.text = string(f.b)
		case 2:
			if err := f.want(msg, "score", protowire.Fixed32Type); err != nil {
				return err
			}
			p.score = math.Float32frombits(uint32(f.v))
		case 3:
			if err := f.want(msg, "type", protowire.VarintType); err != nil {
				return err
			}
			v, err := f.int32Value(msg, "type")
			if err != nil {
				return err
			}
			p.typ = pieceType(v)
		}
		return nil
	})
	return p, err
}

func parseTrainer(b []byte, base int, t *trainerSpec) error {
	msg := message("trainer_spec")
	return walkMessage(b, base, msg, func(f wireField) error {
		var dst *int32
		var flag *bool
		var name string
		switch f.num {
		case 3:
			dst, name = &t.modelType, "model_type"
		case 40:
			dst, name = &t.unkID, "unk_id"
		case 41:
			dst, name = &t.bosID, "bos_id"
		case 42:
			dst, name = &t.eosID, "eos_id"
		case 43:
			dst, name = &t.padID, "pad_id"
		case 24:
			flag, name = &t.treatWhitespaceAsSuffix, "treat_whitespace_as_suffix"
		case 35:
			flag, name = &t.byteFallback, "byte_fallback"
		case 44:
			if err := f.want(msg, "unk_surface", protowire.BytesType); err != nil {
				return err
			}
			t.unkSurface = string(f.b)
			return nil
		default:
			return nil
		}
		if err := f.want(msg, name, protowire.VarintType); err != nil {
			return err
		}
		if flag != nil {
			*flag = f.v != 0
			return nil
		}
		v, err := f.int32Value(msg, name)
		*dst = v
		return err
	})
}

func parseNormalizer(b []byte, base int, msg msgName, n *normalizerSpec) error {
	return walkMessage(b, base, msg, func(f wireField) error {
		var flag *bool
		var name string
		switch f.num {
		case 1:
			if err := f.want(msg, "name", protowire.BytesType); err != nil {
				return err
			}
			n.name = string(f.b)
			return nil
		case 2:
			if err := f.want(msg, "precompiled_charsmap", protowire.BytesType); err != nil {
				return err
			}
			n.charsmapLen = len(f.b)
			return nil
		case 3:
			flag, name = &n.addDummyPrefix, "add_dummy_prefix"
		case 4:
			flag, name = &n.removeExtraWhitespaces, "remove_extra_whitespaces"
		case 5:
			flag, name = &n.escapeWhitespaces, "escape_whitespaces"
		default:
			return nil
		}
		if err := f.want(msg, name, protowire.VarintType); err != nil {
			return err
		}
		*flag = f.v != 0
		return nil
	})
}
