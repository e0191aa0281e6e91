package jpeg

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func corpusFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/corpus/" + name + ".jpg")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// segmentEnd returns the offset just past the first marker segment with the
// given code, which must exist.
func segmentEnd(t *testing.T, b []byte, code byte) (start, end int) {
	t.Helper()
	p := 2
	for p+4 <= len(b) {
		if b[p] != 0xff {
			t.Fatalf("no marker at %d", p)
		}
		n := int(b[p+2])<<8 | int(b[p+3])
		if b[p+1] == code {
			return p, p + 2 + n
		}
		if b[p+1] == 0xda {
			break
		}
		p += 2 + n
	}
	t.Fatalf("no marker 0x%02X", code)
	return 0, 0
}

func TestHostileInput(t *testing.T) {
	base := corpusFile(t, "c-420-q75")
	_, sosEnd := segmentEnd(t, base, 0xda)
	sofStart, _ := segmentEnd(t, base, 0xc0)
	huge := bytes.Clone(base)
	huge[sofStart+5], huge[sofStart+6] = 0xff, 0x00 // height 65280
	huge[sofStart+7], huge[sofStart+8] = 0xff, 0x00 // width 65280

	restart := corpusFile(t, "c-restart-row")
	rst := bytes.Index(restart, []byte{0xff, 0xd0})
	if rst < 0 {
		t.Fatal("c-restart-row has no RST0")
	}
	noRST := append(bytes.Clone(restart[:rst]), restart[rst+2:]...)
	wrongRST := bytes.Clone(restart)
	wrongRST[rst+1] = 0xd3

	prog := corpusFile(t, "c-progressive")
	sosStart, _ := segmentEnd(t, prog, 0xda)
	secondSOS := sosStart + bytes.Index(prog[sosStart+2:], []byte{0xff, 0xda}) + 2
	repeated := append(bytes.Clone(prog[:secondSOS]), prog[sosStart:]...)

	cases := []struct {
		name string
		b    []byte
		opt  Options
		want string
	}{
		{"empty", nil, Options{}, "no SOI"},
		{"not jpeg", []byte("GIF89a"), Options{}, "no SOI"},
		{"soi only", base[:2], Options{}, "truncated"},
		{"header cut", base[:sosEnd-3], Options{}, "truncated"},
		{"scan cut", base[:sosEnd+(len(base)-sosEnd)/2], Options{}, "truncated"},
		{"no EOI", base[:len(base)-2], Options{}, "truncated"},
		{"scan ends at EOI early", append(bytes.Clone(base[:sosEnd+(len(base)-sosEnd)/2]), 0xff, 0xd9), Options{}, "before its last block"},
		{"invalid Huffman code", append(append(bytes.Clone(base[:sosEnd]), bytes.Repeat([]byte{0xff, 0}, 64)...), 0xff, 0xd9), Options{}, "invalid Huffman code"},
		{"over the pixel limit", base, Options{MaxPixels: 1000}, "pixels allowed"},
		{"huge dimensions", huge, Options{MaxPixels: 100_000_000}, "pixels allowed"},
		{"restart marker missing", noRST, Options{}, "corrupt data"},
		{"wrong restart marker", wrongRST, Options{}, "RST0 is due"},
		{"scan repeated", repeated, Options{}, "a second time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(c.b, c.opt)
			if err == nil {
				t.Fatalf("decoded a %dx%d image; want an error about %q", img.Width, img.Height, c.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %q is not a *FormatError", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// TestHugeDimensionsAllocateNothing: the pixel limit applies before the
// planes are made, so a tiny file that claims 65280x65280 costs nothing.
func TestHugeDimensionsAllocateNothing(t *testing.T) {
	b := corpusFile(t, "c-420-q75")
	sof, _ := segmentEnd(t, b, 0xc0)
	b[sof+5], b[sof+6], b[sof+7], b[sof+8] = 0xff, 0, 0xff, 0
	cfg, err := DecodeConfig(b)
	if err != nil || cfg.Width != 65280 || cfg.Height != 65280 {
		t.Fatalf("DecodeConfig = %+v, %v", cfg, err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := Decode(b, Options{MaxPixels: 1 << 20}); err == nil {
			t.Fatal("decoded")
		}
	})
	if allocs > 64 {
		t.Errorf("%v allocations before refusing the size", allocs)
	}
}
