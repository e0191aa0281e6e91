package mmap

import (
	"fmt"
	"io"
	"os"
)

// File is an open, read-only file. When it is mapped, Slice returns views on
// the mapping (zero copy, paged in lazily by the kernel); otherwise Slice reads
// the range into a new buffer.
type File struct {
	f    *os.File
	size int64
	data []byte // the mapping, nil when not mapped
}

// Open opens path and maps it when the platform allows. An empty file is
// opened without a mapping.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	m := &File{f: f, size: st.Size()}
	if m.size > 0 && !disabled {
		if data, err := mapFile(f, m.size); err == nil {
			m.data = data
		}
	}
	return m, nil
}

// disabled forces the ReadAt path; tests flip it to cover the fallback.
var disabled = false

// Size is the file size in bytes.
func (m *File) Size() int64 { return m.size }

// Mapped reports whether the file is memory-mapped.
func (m *File) Mapped() bool { return m.data != nil }

// Name is the path the file was opened with.
func (m *File) Name() string { return m.f.Name() }

// Slice returns bytes [off, off+n). Mapped files return a view that stays
// valid until Close; unmapped files return a fresh copy.
func (m *File) Slice(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > m.size || n > m.size-off {
		return nil, fmt.Errorf("%s: range [%d, %d) outside the file's %d bytes", m.f.Name(), off, off+n, m.size)
	}
	if m.data != nil {
		return m.data[off : off+n : off+n], nil
	}
	b := make([]byte, n)
	if _, err := m.f.ReadAt(b, off); err != nil && !(err == io.EOF && n == 0) {
		return nil, fmt.Errorf("%s: read [%d, %d): %w", m.f.Name(), off, off+n, err)
	}
	return b, nil
}

// ReadAt implements io.ReaderAt without touching the mapping's lifetime rules.
func (m *File) ReadAt(p []byte, off int64) (int, error) {
	if m.data != nil {
		if off < 0 {
			return 0, fmt.Errorf("%s: negative offset", m.f.Name())
		}
		if off >= m.size {
			return 0, io.EOF
		}
		n := copy(p, m.data[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	return m.f.ReadAt(p, off)
}

// Close unmaps and closes the file. Views returned by Slice become invalid.
func (m *File) Close() error {
	var err error
	if m.data != nil {
		err = unmap(m.data)
		m.data = nil
	}
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}
