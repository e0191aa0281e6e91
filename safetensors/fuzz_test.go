package safetensors

import (
	"bytes"
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"github.com/avq/avq/tensor"
)

var errorKinds = []error{ErrHeaderTooLarge, ErrInvalidHeader, ErrInvalidOffset, ErrOverflow,
	ErrUnsupportedDType, ErrDuplicateName, ErrTruncated, ErrInvalidMetadata, ErrShapeMismatch}

// FuzzParseHeader feeds arbitrary bytes as a whole file. A refusal must be an
// *Error of a known kind, and opening the same bytes must refuse them the same
// way. An accepted file must satisfy every layout rule, every tensor must
// read, and writing the tensors back must give a file that parses to the same
// header. Seeds: testdata/fuzz/FuzzParseHeader plus the malformed files of
// TestMalformed.
func FuzzParseHeader(f *testing.F) {
	f.Add(validFile(f))
	for _, c := range malformedFiles(f) {
		f.Add(c.file)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		infos, md, dataStart, err := ParseHeader(b, int64(len(b)))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !knownKind(e.Kind) {
				t.Fatalf("error %v (%T) is not an *Error of a known kind", err, err)
			}
			if _, openErr := openSource("fuzz", bytesSource(b)); !errors.Is(openErr, e.Kind) {
				t.Fatalf("ParseHeader: %v; Open: %v", err, openErr)
			}
			return
		}
		var end int64
		for _, info := range infos {
			numel, _ := tensor.NumelChecked(shape64(info.Shape))
			if info.Begin != end || info.End-info.Begin != numel*int64(info.DType.Size()) {
				t.Fatalf("accepted %+v after offset %d", info, end)
			}
			end = info.End
		}
		if dataStart+end != int64(len(b)) {
			t.Fatalf("data ends at %d+%d, file has %d bytes", dataStart, end, len(b))
		}
		file, err := openSource("fuzz", bytesSource(b))
		if err != nil {
			t.Fatalf("ParseHeader accepted what Open refuses: %v", err)
		}
		var entries []Entry
		for _, info := range infos {
			x, err := file.Tensor(info.Name)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, Entry{Name: info.Name, T: x})
		}
		var buf bytes.Buffer
		if err := Write(&buf, entries, md); err != nil {
			t.Fatalf("rewriting an accepted file: %v", err)
		}
		infos2, md2, _, err := ParseHeader(buf.Bytes(), int64(buf.Len()))
		if err != nil {
			t.Fatalf("rewritten file refused: %v", err)
		}
		if !maps.Equal(md, md2) || len(infos) != len(infos2) {
			t.Fatalf("rewritten header differs: %v %v vs %v %v", md, infos, md2, infos2)
		}
		for i := range infos {
			a, b := infos[i], infos2[i]
			if a.Name != b.Name || a.DType != b.DType || !a.Shape.Equal(b.Shape) || a.Begin != b.Begin || a.End != b.End {
				t.Fatalf("rewritten entry %d: %+v, was %+v", i, b, a)
			}
		}
	})
}

func knownKind(kind error) bool {
	for _, k := range errorKinds {
		if kind == k {
			return true
		}
	}
	return false
}

func shape64(s tensor.Shape) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// FuzzParseIndex feeds arbitrary bytes as model.safetensors.index.json. A
// refusal must be an *Error of an index kind; an accepted index lists each
// tensor once, with a shard path inside the index's directory.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":44,"nested":{"a":[1,2]}},"weight_map":{"a":"x.safetensors","b":"sub/y.safetensors"}}`))
	for _, c := range badIndexes {
		f.Add([]byte(c.text))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		weightMap, _, err := parseIndex(b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Kind != ErrInvalidIndex && e.Kind != ErrDuplicateName) {
				t.Fatalf("error %v (%T) is not an index *Error", err, err)
			}
			return
		}
		seen := make(map[string]bool)
		for _, wm := range weightMap {
			if seen[wm.tensor] || !filepath.IsLocal(filepath.FromSlash(wm.shard)) {
				t.Fatalf("accepted %+v", weightMap)
			}
			seen[wm.tensor] = true
		}
		if len(weightMap) == 0 {
			t.Fatal("accepted an empty weight_map")
		}
	})
}
