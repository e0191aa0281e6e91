package mmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSliceMappedAndFallback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	want := []byte("0123456789abcdef")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, off := range []bool{false, true} {
		disabled = off
		m, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if m.Mapped() == off {
			t.Fatalf("disabled=%v but Mapped()=%v", off, m.Mapped())
		}
		got, err := m.Slice(4, 6)
		if err != nil || !bytes.Equal(got, want[4:10]) {
			t.Fatalf("Slice = %q, %v", got, err)
		}
		if _, err := m.Slice(10, 7); err == nil {
			t.Fatal("range past the end was accepted")
		}
		if _, err := m.Slice(-1, 2); err == nil {
			t.Fatal("negative offset was accepted")
		}
		m.Close()
	}
	disabled = false
}
