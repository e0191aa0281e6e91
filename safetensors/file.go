package safetensors

import (
	"maps"

	"github.com/avq/avq/internal/mmap"
	"github.com/avq/avq/tensor"
)

// source is what File reads through: *mmap.File in production. Tests
// substitute an unmapped reader to cover the ReadAt path and to count the
// bytes that Open touches.
type source interface {
	Size() int64
	// Slice returns bytes [off, off+n): a view when mapped, a fresh copy
	// otherwise.
	Slice(off, n int64) ([]byte, error)
	Close() error
}

// File is one open, validated safetensors file. Its methods may be called
// concurrently, except Close, after which tensors that viewed the mapping must
// no longer be used.
type File struct {
	path      string
	src       source
	infos     []Info // sorted by data offset
	index     map[string]int
	metadata  map[string]string
	dataStart int64
	closed    bool
}

// Open opens and validates path. It reads only the header: tensor bytes are
// mapped (or, where mapping fails, read on demand by Tensor).
func Open(path string) (*File, error) {
	m, err := mmap.Open(path)
	if err != nil {
		return nil, withPath(err, path)
	}
	return openSource(path, m)
}

// openSource validates the header read through src and takes ownership of
// src: it is closed on error.
func openSource(path string, src source) (*File, error) {
	f, err := readHeader(path, src)
	if err != nil {
		src.Close()
		return nil, withPath(err, path)
	}
	return f, nil
}

func readHeader(path string, src source) (*File, error) {
	size := src.Size()
	if size < 8 {
		return nil, newError(ErrTruncated, "", "file of %d bytes is too short for the 8-byte header length", size)
	}
	prefix, err := src.Slice(0, 8)
	if err != nil {
		return nil, err
	}
	// The length is bounded (≤ MaxHeaderSize and ≤ the file) before the
	// header is read, so a hostile prefix cannot size an allocation.
	n, err := headerLen([8]byte(prefix), size)
	if err != nil {
		return nil, err
	}
	hdr, err := src.Slice(8, n)
	if err != nil {
		return nil, err
	}
	infos, metadata, err := parseHeaderJSON(hdr, size-8-n)
	if err != nil {
		return nil, err
	}
	index := make(map[string]int, len(infos))
	for i, info := range infos {
		index[info.Name] = i
	}
	return &File{path: path, src: src, infos: infos, index: index, metadata: metadata, dataStart: 8 + n}, nil
}

// Path is the path the file was opened with.
func (f *File) Path() string { return f.path }

// Metadata is a copy of the header's __metadata__ map; nil when the header
// has none.
func (f *File) Metadata() map[string]string { return maps.Clone(f.metadata) }

// Names lists the tensors in data-offset order.
func (f *File) Names() []string {
	names := make([]string, len(f.infos))
	for i, info := range f.infos {
		names[i] = info.Name
	}
	return names
}

// Info describes the named tensor; ok is false when the file has no such
// tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.index[name]
	if !ok {
		return Info{}, false
	}
	info := f.infos[i]
	info.Shape = info.Shape.Clone()
	return info, true
}

// HeaderSize is the offset of the data section: 8 plus the header length.
func (f *File) HeaderSize() int64 { return f.dataStart }

// Tensor returns the named tensor. On a mapped file it is a zero-copy view on
// the mapping, valid until Close (copied only when its offset is not aligned
// to the element size); otherwise its bytes are read now.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	i, ok := f.index[name]
	if !ok {
		return nil, &Error{Path: f.path, Tensor: name, Kind: ErrTensorNotFound, Detail: "no such tensor in the file"}
	}
	if f.closed {
		return nil, &Error{Path: f.path, Tensor: name, Kind: ErrClosed}
	}
	info := f.infos[i]
	b, err := f.src.Slice(f.dataStart+info.Begin, info.End-info.Begin)
	if err != nil {
		return nil, &Error{Path: f.path, Tensor: name, Kind: err, Detail: err.Error()}
	}
	t, err := tensor.FromBytes(info.DType, info.Shape, b)
	if err != nil {
		return nil, &Error{Path: f.path, Tensor: name, Kind: ErrShapeMismatch, Detail: err.Error()}
	}
	return t, nil
}

// Close releases the file and its mapping. Closing twice is a no-op.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if err := f.src.Close(); err != nil {
		return &Error{Path: f.path, Kind: err, Detail: err.Error()}
	}
	return nil
}
