package safetensors

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unsafe"

	"github.com/avq/avq/internal/mmap"
	"github.com/avq/avq/tensor"
)

const (
	tinyLlava    = "../testdata/tiny-llava/model.safetensors"
	tinyLlavaF16 = "../testdata/tiny-llava-f16/model.safetensors"
	alignedVQ    = "../testdata/vq/block0_ln1/alignedvq.safetensors"
	loraAdapter  = "../testdata/lora/adapter_model.safetensors"
)

// Every fixture opens, through the mapping and through ReadAt, with the
// tensor count and metadata FIXTURES.md gives, and both paths return the same
// bytes for every tensor.
func TestFixtures(t *testing.T) {
	cases := []struct {
		path    string
		tensors int
		dtype   tensor.DType
		md      map[string]string
	}{
		{tinyLlava, 96, tensor.F32, map[string]string{"format": "pt"}},
		{tinyLlavaF16, 96, tensor.F16, map[string]string{"format": "pt"}},
		{alignedVQ, 9, tensor.F32, map[string]string{"format": "alignedvq", "version": "1", "block": "0", "site": "ln1"}},
		{loraAdapter, 28, tensor.F32, map[string]string{"format": "pt"}},
	}
	for _, c := range cases {
		mapped, err := Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		unmapped, err := openSource(c.path, openReadAt(t, c.path))
		if err != nil {
			t.Fatal(err)
		}
		if !mapped.src.(*mmap.File).Mapped() {
			t.Errorf("%s: Open did not map the file", c.path)
		}
		if got := mapped.Metadata(); !maps.Equal(got, c.md) {
			t.Errorf("%s: metadata %q, want %q", c.path, got, c.md)
		}
		names := mapped.Names()
		if len(names) != c.tensors {
			t.Errorf("%s: %d tensors, want %d", c.path, len(names), c.tensors)
		}
		var prevEnd int64
		for _, name := range names {
			info, _ := mapped.Info(name)
			if info.Begin != prevEnd {
				t.Errorf("%s: %s begins at %d, previous ends at %d: Names not in offset order", c.path, name, info.Begin, prevEnd)
			}
			prevEnd = info.End
			a, err := mapped.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := unmapped.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			if a.DType() != c.dtype || !a.Shape().Equal(info.Shape) || !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Errorf("%s: %s: mapped %v, unmapped %v, info %v%v", c.path, name, a, b, info.DType, info.Shape)
			}
		}
		mapped.Close()
		unmapped.Close()
	}
}

// tiny-llava-f16 holds tiny-llava's weights rounded to F16 (FIXTURES.md), so
// reading both must give exactly F32ToF16 of the F32 values.
func TestF16FixtureIsRoundedF32(t *testing.T) {
	f32, err := Open(tinyLlava)
	if err != nil {
		t.Fatal(err)
	}
	defer f32.Close()
	f16, err := Open(tinyLlavaF16)
	if err != nil {
		t.Fatal(err)
	}
	defer f16.Close()
	for _, name := range f32.Names() {
		a, err := f32.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := f16.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Shape().Equal(h.Shape()) {
			t.Fatalf("%s: shapes %v and %v", name, a.Shape(), h.Shape())
		}
		bits := h.U16()
		for i, v := range a.F32() {
			if want := tensor.F32ToF16(v); bits[i] != want {
				t.Fatalf("%s[%d]: f16 bits %#04x, want %#04x (from %g)", name, i, bits[i], want, v)
			}
		}
	}
}

// The AlignedVQ module stores F32 tensors at offsets that are 4 but not 8
// aligned; they still read in place.
func TestAlignedVQFixture(t *testing.T) {
	f, err := Open(alignedVQ)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cb, err := f.Tensor("codebook")
	if err != nil {
		t.Fatal(err)
	}
	if !cb.Shape().Equal(tensor.Shape{256, 64}) {
		t.Errorf("codebook shape %v", cb.Shape())
	}
	info, _ := f.Info("dlp_in.weight")
	if (f.HeaderSize()+info.Begin)%8 == 0 {
		t.Fatalf("fixture changed: dlp_in.weight is 8-byte aligned now")
	}
	w, err := f.Tensor("dlp_in.weight")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := f.src.Slice(f.HeaderSize()+info.Begin, info.End-info.Begin)
	if &w.Bytes()[0] != &raw[0] {
		t.Error("a 4-byte aligned F32 tensor was copied instead of viewed")
	}
	g, _ := f.Tensor("dlp_in.gamma")
	if got := g.F32(); len(got) != 1 || got[0] != 0.3 {
		t.Errorf("dlp_in.gamma = %v, want [0.3]", got)
	}
}

func TestMappedTensorIsZeroCopy(t *testing.T) {
	for _, mapped := range []bool{true, false} {
		var f *File
		var err error
		if mapped {
			f, err = Open(tinyLlava)
		} else {
			f, err = openSource(tinyLlava, openReadAt(t, tinyLlava))
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "language_model.lm_head.weight"
		a, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := f.Tensor(name)
		if same := &a.Bytes()[0] == &b.Bytes()[0]; same != mapped {
			t.Errorf("mapped=%v: two Tensor calls share memory: %v", mapped, same)
		}
		if p := uintptr(unsafe.Pointer(&a.Bytes()[0])); p%4 != 0 {
			t.Errorf("mapped=%v: F32 data at %#x is misaligned", mapped, p)
		}
		f.Close()
	}
}

// sparseCheckpoint writes a file whose first tensor is size bytes of holes:
// large on paper, nothing on disk.
func sparseCheckpoint(t testing.TB, size int64) string {
	t.Helper()
	header := `{"big":{"dtype":"U8","shape":[` + itoa(size) + `],"data_offsets":[0,` + itoa(size) + `]},` +
		`"small":{"dtype":"F32","shape":[2],"data_offsets":[` + itoa(size) + `,` + itoa(size+8) + `]}}`
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := os.WriteFile(path, rawFile(header, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(8+len(header))+size+8); err != nil {
		t.Fatal(err)
	}
	return path
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// Open reads the 8-byte prefix and the header, nothing of the data; Tensor
// reads exactly the tensor asked for.
func TestOpenReadsOnlyHeader(t *testing.T) {
	path := sparseCheckpoint(t, 1<<30)
	src := openReadAt(t, path)
	f, err := openSource(path, src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if src.bytes != f.HeaderSize() {
		t.Fatalf("Open read %d bytes, want the %d of the prefix and header", src.bytes, f.HeaderSize())
	}
	if _, err := f.Tensor("small"); err != nil {
		t.Fatal(err)
	}
	if src.bytes != f.HeaderSize()+8 {
		t.Fatalf("after Tensor(small): %d bytes read, want %d", src.bytes, f.HeaderSize()+8)
	}
}

func BenchmarkOpenLargeFile(b *testing.B) {
	path := sparseCheckpoint(b, 1<<30)
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func TestTensorErrors(t *testing.T) {
	f, err := Open(alignedVQ)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Tensor("nope")
	checkErr(t, err, ErrTensorNotFound, alignedVQ, "nope")
	if _, ok := f.Info("nope"); ok {
		t.Error("Info of a missing tensor reports ok")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = f.Tensor("codebook")
	checkErr(t, err, ErrClosed, alignedVQ, "codebook")

	missing := filepath.Join(t.TempDir(), "missing.safetensors")
	_, err = Open(missing)
	checkErr(t, err, fs.ErrNotExist, missing, "")
	var e *Error
	if !errors.As(err, &e) || e.Path != missing {
		t.Errorf("open error %v does not carry the path", err)
	}
}
