package vq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/avq/avq/backend/cpu"
)

var frameErrKinds = []error{
	ErrFrameTooShort, ErrMagic, ErrVersion, ErrFlags, ErrCRC, ErrCodebookSize,
	ErrTokenCount, ErrFingerprint, ErrBits, ErrLength, ErrIndex, ErrPadding, ErrStats,
}

// FuzzParseFrame feeds arbitrary bytes to ParseFrame and to DecodeFrame of
// the block1_ln2 module. The seed corpus (testdata/fuzz/FuzzParseFrame)
// holds the reference frames, every bad frame of the fixtures, a frame with
// token statistics and a K = 1 frame. Properties: no panic; a refusal is a
// *FrameError of a known kind; an accepted frame re-encodes to exactly the
// input (the format has one encoding per content); DecodeFrame accepts only
// what ParseFrame accepts, with the same content.
func FuzzParseFrame(f *testing.F) {
	b := cpu.New(1)
	defer b.Close()
	m := loadFixture(f, b, "block1_ln2")
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := ParseFrame(in)
		if err != nil {
			var fe *FrameError
			if fr != nil || !errors.As(err, &fe) || !slices.Contains(frameErrKinds, fe.Kind) {
				t.Fatalf("refusal %v (%T) is not a *FrameError of a known kind", err, err)
			}
		} else {
			enc, err := fr.Encode()
			if err != nil {
				t.Fatalf("accepted frame does not encode: %v", err)
			}
			if !bytes.Equal(enc, in) {
				t.Fatalf("accepted frame re-encodes to other bytes")
			}
		}
		n := 577
		if len(in) >= 16 {
			n = int(binary.LittleEndian.Uint32(in[12:]))
		}
		dec, derr := m.DecodeFrame(in, n)
		if derr == nil && (err != nil || !reflect.DeepEqual(dec, fr)) {
			t.Fatalf("DecodeFrame accepted what ParseFrame refused (%v) or decoded it differently", err)
		}
	})
}
