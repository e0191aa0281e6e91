package safetensors

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/avq/avq/tensor"
)

var allDTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.F64, tensor.I64,
	tensor.I32, tensor.I16, tensor.I8, tensor.U8, tensor.Bool}

// patterned is a tensor whose bytes are all distinct-ish, so a misplaced range
// shows. BOOL gets 0/1 only.
func patterned(dt tensor.DType, seed int, shape ...int) *tensor.Tensor {
	t := tensor.New(dt, shape...)
	for i := range t.Bytes() {
		v := byte(i*7 + seed*13 + 1)
		if dt == tensor.Bool {
			v &= 1
		}
		t.Bytes()[i] = v
	}
	return t
}

func roundTripEntries() []Entry {
	var entries []Entry
	for i, dt := range allDTypes {
		entries = append(entries,
			Entry{Name: dt.String() + ".matrix", T: patterned(dt, i, 2, 3)},
			Entry{Name: dt.String() + ".scalar", T: patterned(dt, i+1)},        // 0-dim: one element
			Entry{Name: dt.String() + ".empty", T: patterned(dt, i, 0)},        // no elements
			Entry{Name: dt.String() + ".empty3", T: patterned(dt, i, 3, 0, 2)}, // no elements, rank 3
			Entry{Name: dt.String() + ".odd", T: patterned(dt, i+2, 5)},        // misaligns what follows
		)
	}
	return entries
}

func TestWriteRoundTrip(t *testing.T) {
	entries := roundTripEntries()
	md := map[string]string{"format": "pt", "note": "quotes \" and <html> & unicode é"}
	path := filepath.Join(t.TempDir(), "all.safetensors")
	if err := WriteFile(path, entries, md); err != nil {
		t.Fatal(err)
	}
	for _, mapped := range []bool{true, false} {
		var f *File
		var err error
		if mapped {
			f, err = Open(path)
		} else {
			f, err = openSource(path, openReadAt(t, path))
		}
		if err != nil {
			t.Fatalf("mapped=%v: %v", mapped, err)
		}
		if f.HeaderSize()%8 != 0 {
			t.Errorf("header size %d is not a multiple of 8", f.HeaderSize())
		}
		if got := f.Metadata(); len(got) != len(md) || got["format"] != md["format"] || got["note"] != md["note"] {
			t.Errorf("metadata = %q, want %q", got, md)
		}
		names := f.Names()
		if len(names) != len(entries) {
			t.Fatalf("%d names, want %d", len(names), len(entries))
		}
		for i, e := range entries {
			if names[i] != e.Name {
				t.Errorf("name %d = %q, want %q (write order)", i, names[i], e.Name)
			}
			got, err := f.Tensor(e.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got.DType() != e.T.DType() || !got.Shape().Equal(e.T.Shape()) || !bytes.Equal(got.Bytes(), e.T.Bytes()) {
				t.Errorf("mapped=%v %s: got %v % x, want %v % x", mapped, e.Name, got, got.Bytes(), e.T, e.T.Bytes())
			}
			info, ok := f.Info(e.Name)
			if !ok || info.DType != e.T.DType() || !info.Shape.Equal(e.T.Shape()) || info.End-info.Begin != int64(len(e.T.Bytes())) {
				t.Errorf("Info(%s) = %+v, %v", e.Name, info, ok)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("WriteFile left temporary files %v", left)
	}
}

// The reference writer's own test vectors (huggingface/safetensors
// safetensors/src/tensor.rs, test_empty and
// test_serialization_forced_alignement): same bytes, padding included.
func TestWriteMatchesReference(t *testing.T) {
	cases := []struct {
		name    string
		entries []Entry
		md      map[string]string
		want    []byte
	}{
		{"empty", nil, nil, []byte{8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32}},
		{"empty with metadata", nil, map[string]string{"framework": "pt"}, []byte{
			40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
			95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
			116, 34, 125, 125, 32, 32, 32, 32, 32}},
		{"forced alignment", []Entry{{Name: "attn0", T: tensor.FromF32([]float32{0, 1, 2, 3, 4, 5}, 1, 1, 2, 3)}}, nil, []byte{
			72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
			121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
			91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
			115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
			32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
			160, 64}},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		if err := Write(&buf, c.entries, c.md); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(buf.Bytes(), c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, buf.Bytes(), c.want)
		}
		if _, _, _, err := ParseHeader(buf.Bytes(), int64(buf.Len())); err != nil {
			t.Errorf("%s: reading it back: %v", c.name, err)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	x := tensor.FromF32([]float32{1}, 1)
	cases := []struct {
		name    string
		entries []Entry
		md      map[string]string
		kind    error
		tensor  string
	}{
		{"duplicate", []Entry{{Name: "a", T: x}, {Name: "a", T: x}}, nil, ErrDuplicateName, "a"},
		{"reserved", []Entry{{Name: metadataKey, T: x}}, nil, ErrInvalidHeader, metadataKey},
		{"bad utf-8 name", []Entry{{Name: "a\xff", T: x}}, nil, ErrInvalidHeader, "a\xff"},
		{"nil tensor", []Entry{{Name: "n", T: nil}}, nil, ErrInvalidHeader, "n"},
		{"bad utf-8 metadata", nil, map[string]string{"k": "\xfe"}, ErrInvalidMetadata, ""},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "w.safetensors")
		err := WriteFile(path, c.entries, c.md)
		checkErr(t, err, c.kind, path, c.tensor)
		if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
			t.Errorf("%s: failed WriteFile left %d files", c.name, len(ents))
		}
	}
}

func TestWriteLazyEntries(t *testing.T) {
	a := tensor.FromF32([]float32{1, 2, 3, 4}, 2, 2)
	calls := 0
	entries := []Entry{
		{Name: "eager", T: a},
		{Name: "lazy", DType: tensor.F32, Shape: tensor.Shape{4}, Lazy: func() (*tensor.Tensor, error) {
			calls++
			return tensor.FromF32([]float32{5, 6, 7, 8}, 4), nil
		}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, entries, nil); err != nil {
		t.Fatal(err)
	}
	infos, _, start, err := ParseHeader(buf.Bytes(), int64(buf.Len()))
	if err != nil || calls != 1 || len(infos) != 2 {
		t.Fatalf("infos %v, calls %d, err %v", infos, calls, err)
	}
	got := buf.Bytes()[start+infos[1].Begin : start+infos[1].End]
	if !bytes.Equal(got, tensor.FromF32([]float32{5, 6, 7, 8}, 4).Bytes()) {
		t.Fatal("lazy tensor bytes differ")
	}
	entries[1].Shape = tensor.Shape{5}
	if err := Write(io.Discard, entries, nil); !errors.Is(err, ErrShapeMismatch) {
		t.Fatalf("a lazy tensor that disagrees with its declaration: %v", err)
	}
}
