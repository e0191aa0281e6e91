package ptfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

const maliciousDir = "../testdata/original/malicious"

type safeReaderCase struct {
	File            string `json:"file"`
	Expect          string `json:"expect"`
	ReasonKind      string `json:"reason_kind"`
	ReferenceReader string `json:"reference_reader"`
}

func loadCases(t *testing.T) []safeReaderCase {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(maliciousDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []safeReaderCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Cases
}

// reasonSentinel maps the oracle reader's reason_kind to our sentinel.
var reasonSentinel = map[string]error{
	"forbidden_global":        ErrForbiddenGlobal,
	"memo_missing":            ErrMemo,
	"stack_underflow":         ErrStackUnderflow,
	"bad_zip":                 ErrNotZip,
	"not_zip":                 ErrNotZip,
	"missing_storage":         ErrMissingStorage,
	"tensor_out_of_bounds":    ErrOutOfBounds,
	"storage_size_mismatch":   ErrStorageSize,
	"negative_size_or_stride": ErrNegative,
	"size_overflow":           ErrOverflow,
	"empty":                   ErrEmpty,
	"legacy_format":           ErrLegacyFormat,
}

func TestSafeReaderCases(t *testing.T) {
	cases := loadCases(t)
	expected := readSafetensors(t, filepath.Join(maliciousDir, "expected.safetensors"))

	// Every .bin in the directory is a listed case.
	bins, _ := filepath.Glob(filepath.Join(maliciousDir, "*.bin"))
	for _, b := range bins {
		if !slices.ContainsFunc(cases, func(c safeReaderCase) bool { return c.File == filepath.Base(b) }) {
			t.Errorf("%s is not in cases.json", b)
		}
	}

	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			marker := "/tmp/llava_safe_reader_FAILED_" + c.File
			os.Remove(marker) // a leftover from some other reader must not fail us, nor hide a new one
			path := filepath.Join(maliciousDir, c.File)
			f, err := Open(path)
			if _, statErr := os.Stat(marker); statErr == nil {
				t.Fatalf("payload ran: %s exists", marker)
			}
			if f != nil {
				defer f.Close()
			}
			switch {
			case c.Expect == "refuse" || c.ReasonKind == "legacy_format": // we refuse the legacy format
				checkRefusal(t, c, path, err)
			case c.Expect == "accept" || c.Expect == "refuse_or_load": // we load protocol 4
				if err != nil {
					t.Fatalf("refused a legal file: %v", err)
				}
				checkTensors(t, f, c.File, expected)
			default:
				t.Fatalf("unknown expectation %q", c.Expect)
			}
		})
	}
}

func checkRefusal(t *testing.T, c safeReaderCase, path string, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	t.Log(err)
	want, ok := reasonSentinel[c.ReasonKind]
	if !ok {
		t.Fatalf("no sentinel for reason_kind %q", c.ReasonKind)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q is not %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Path != path {
		t.Fatalf("error %q is not an *Error for %s", err, path)
	}
	if !strings.HasPrefix(err.Error(), "ptfile: "+path+": ") {
		t.Errorf("message %q does not start with the package and file", err)
	}
	// The reference reader's reason names the global or memo index; ours must too.
	switch c.ReasonKind {
	case "forbidden_global", "memo_missing", "missing_storage":
		detail := c.ReferenceReader[strings.LastIndex(c.ReferenceReader, ": ")+2:]
		detail = strings.TrimPrefix(detail, "LONG_BINGET ")
		if !strings.Contains(err.Error(), detail) {
			t.Errorf("message %q does not name %q", err, detail)
		}
		if e.Record != "data.pkl" || e.Offset < 0 {
			t.Errorf("error does not locate the opcode in data.pkl: record %q offset %d", e.Record, e.Offset)
		}
	}
}

// checkTensors compares a file's tensors with <file>/<name> in expected.
func checkTensors(t *testing.T, f *File, file string, expected map[string]stTensor) {
	t.Helper()
	var want []string
	for k := range expected {
		if name, ok := strings.CutPrefix(k, file+"/"); ok {
			want = append(want, name)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(f.Names()))
	if !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	for _, name := range want {
		exp := expected[file+"/"+name]
		tt, err := f.Tensor(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tt.DType().String() != exp.DType || !slices.Equal([]int(tt.Shape()), exp.Shape) {
			t.Errorf("%s: %v%v, want %s%v", name, tt.DType(), tt.Shape(), exp.DType, exp.Shape)
		}
		if !bytes.Equal(tt.Bytes(), exp.Data) {
			t.Errorf("%s: bytes differ", name)
		}
	}
}

func TestSharedStorageViews(t *testing.T) {
	f, err := Open(filepath.Join(maliciousDir, "good_shared_storage.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.Names(), []string{"embed.weight", "lm_head.weight", "tail", "even_rows"}; !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v (file order)", got, want)
	}
	embed, _ := f.Tensor("embed.weight")
	head, _ := f.Tensor("lm_head.weight")
	tail, _ := f.Tensor("tail")
	if unsafe.SliceData(embed.Bytes()) != unsafe.SliceData(head.Bytes()) {
		t.Error("tied weights are not views on the same bytes")
	}
	if &embed.Bytes()[8*4] != &tail.Bytes()[0] {
		t.Error("the view at storage offset 8 is not in place")
	}
	info, _ := f.Info("even_rows")
	if info.Contiguous || !slices.Equal(info.Strides, []int64{8, 1}) || info.Storage != "0" {
		t.Errorf("even_rows info %+v", info)
	}
	info, _ = f.Info("tail")
	if !info.Contiguous || info.Offset != 8 {
		t.Errorf("tail info %+v", info)
	}
}

func TestNonContiguousInfo(t *testing.T) {
	f, err := Open(filepath.Join(maliciousDir, "good_noncontiguous.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, ok := f.Info("transposed")
	if !ok || info.Contiguous || !slices.Equal(info.Strides, []int64{1, 4}) || !info.Shape.Equal([]int{4, 3}) {
		t.Errorf("info %+v", info)
	}
	if _, ok := f.Info("missing"); ok {
		t.Error("Info of a missing name")
	}
	if _, err := f.Tensor("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tensor of a missing name: %v", err)
	}
}
