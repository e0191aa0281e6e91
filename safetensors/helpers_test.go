package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readAtSource is the unmapped path: every Slice is a ReadAt into a fresh
// buffer, and the bytes read are counted so tests can see what Open touches.
type readAtSource struct {
	f     *os.File
	size  int64
	bytes int64 // total bytes returned by Slice
}

func openReadAt(t testing.TB, path string) *readAtSource {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return &readAtSource{f: f, size: st.Size()}
}

func (s *readAtSource) Size() int64 { return s.size }

func (s *readAtSource) Slice(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > s.size || n > s.size-off {
		return nil, fmt.Errorf("range [%d, %d) outside %d bytes", off, off+n, s.size)
	}
	b := make([]byte, n)
	if _, err := s.f.ReadAt(b, off); err != nil && n > 0 {
		return nil, err
	}
	s.bytes += n
	return b, nil
}

func (s *readAtSource) Close() error { return s.f.Close() }

// bytesSource serves a file held in memory (the fuzz target opens through it).
type bytesSource []byte

func (s bytesSource) Size() int64 { return int64(len(s)) }

func (s bytesSource) Slice(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > int64(len(s)) || n > int64(len(s))-off {
		return nil, fmt.Errorf("range [%d, %d) outside %d bytes", off, off+n, len(s))
	}
	return s[off : off+n : off+n], nil
}

func (bytesSource) Close() error { return nil }

// rawFile assembles a file from a header text and data bytes, with no checks
// and no padding: the tests' tool for byte surgery.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkErr asserts err is an *Error of the given kind whose message names the
// path and, when tensor is not empty, the tensor.
func checkErr(t *testing.T, err, kind error, path, tensor string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %q is a %T, not *Error", err, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "safetensors: ") {
		t.Errorf("message %q lacks the package prefix", msg)
	}
	if path != "" && !strings.Contains(msg, path) {
		t.Errorf("message %q does not name the file %s", msg, path)
	}
	if tensor != "" && (e.Tensor != tensor || !strings.Contains(msg, fmt.Sprintf("tensor %q", tensor))) {
		t.Errorf("message %q (Tensor %q) does not name tensor %q", msg, e.Tensor, tensor)
	}
}
