package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/avq/avq/tensor"
)

// Entry is one named tensor to write: T, or, when T is nil, a tensor that
// Lazy produces at the moment it is written, so that a large checkpoint can be
// converted one tensor at a time. A lazy entry declares its DType and Shape
// for the header, and Lazy must return exactly that.
type Entry struct {
	Name string
	T    *tensor.Tensor

	DType tensor.DType
	Shape tensor.Shape
	Lazy  func() (*tensor.Tensor, error)
}

func (e *Entry) dtype() tensor.DType {
	if e.T != nil {
		return e.T.DType()
	}
	return e.DType
}

func (e *Entry) shape() tensor.Shape {
	if e.T != nil {
		return e.T.Shape()
	}
	return e.Shape
}

// Write writes a safetensors file holding entries, in the given order, and
// metadata as __metadata__ (omitted when empty). The header is padded with
// spaces to a multiple of 8 bytes, as the reference writer does (tensor.rs
// prepare), so the data section starts 8-byte aligned; tensors follow each
// other without gaps, so a tensor is aligned only if the ones before it are
// multiples of its element size (put the widest dtypes first to guarantee it).
func Write(w io.Writer, entries []Entry, metadata map[string]string) error {
	hdr, err := encodeHeader(entries, metadata)
	if err != nil {
		return err
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(hdr)))
	if _, err := w.Write(prefix[:]); err != nil {
		return &Error{Kind: err, Detail: err.Error()}
	}
	if _, err := w.Write(hdr); err != nil {
		return &Error{Kind: err, Detail: err.Error()}
	}
	for _, e := range entries {
		t := e.T
		if t == nil {
			if t, err = e.Lazy(); err != nil {
				return &Error{Tensor: e.Name, Kind: err, Detail: err.Error()}
			}
			if t.DType() != e.DType || !t.Shape().Equal(e.Shape) {
				return newError(ErrShapeMismatch, e.Name, "produced %v%v, declared %v%v", t.DType(), t.Shape(), e.DType, e.Shape)
			}
		}
		if _, err := w.Write(t.Bytes()); err != nil {
			return &Error{Tensor: e.Name, Kind: err, Detail: err.Error()}
		}
	}
	return nil
}

// encodeHeader builds the padded JSON header, refusing anything the reader
// would refuse.
func encodeHeader(entries []Entry, metadata map[string]string) ([]byte, error) {
	hdr := []byte{'{'}
	if len(metadata) > 0 {
		hdr = appendJSONString(hdr, metadataKey)
		hdr = append(hdr, ":{"...)
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			v := metadata[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, newError(ErrInvalidMetadata, "", "%s[%q] is not valid UTF-8", metadataKey, k)
			}
			if i > 0 {
				hdr = append(hdr, ',')
			}
			hdr = appendJSONString(hdr, k)
			hdr = append(hdr, ':')
			hdr = appendJSONString(hdr, v)
		}
		hdr = append(hdr, '}')
	}
	seen := make(map[string]bool, len(entries))
	var offset int64
	for i, e := range entries {
		switch {
		case e.Name == metadataKey:
			return nil, newError(ErrInvalidHeader, e.Name, "the name is reserved for metadata")
		case !utf8.ValidString(e.Name):
			return nil, newError(ErrInvalidHeader, e.Name, "name is not valid UTF-8")
		case seen[e.Name]:
			return nil, newError(ErrDuplicateName, e.Name, "name appears twice in the entries")
		case e.T == nil && e.Lazy == nil:
			return nil, newError(ErrInvalidHeader, e.Name, "nil tensor")
		case e.dtype().Size() == 0:
			return nil, newError(ErrUnsupportedDType, e.Name, "dtype %v cannot be stored", e.dtype())
		}
		seen[e.Name] = true
		if len(metadata) > 0 || i > 0 {
			hdr = append(hdr, ',')
		}
		for _, d := range e.shape() {
			if d < 0 {
				return nil, newError(ErrInvalidHeader, e.Name, "negative dimension in %v", e.shape())
			}
		}
		end := offset + int64(e.shape().Numel()*e.dtype().Size())
		hdr = appendJSONString(hdr, e.Name)
		hdr = append(hdr, `:{"dtype":"`...)
		hdr = append(hdr, e.dtype().String()...)
		hdr = append(hdr, `","shape":[`...)
		for j, d := range e.shape() {
			if j > 0 {
				hdr = append(hdr, ',')
			}
			hdr = strconv.AppendInt(hdr, int64(d), 10)
		}
		hdr = append(hdr, `],"data_offsets":[`...)
		hdr = strconv.AppendInt(hdr, offset, 10)
		hdr = append(hdr, ',')
		hdr = strconv.AppendInt(hdr, end, 10)
		hdr = append(hdr, "]}"...)
		offset = end
	}
	hdr = append(hdr, '}')
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	if len(hdr) > MaxHeaderSize {
		return nil, newError(ErrHeaderTooLarge, "", "header of %d bytes exceeds the %d-byte limit", len(hdr), MaxHeaderSize)
	}
	return hdr, nil
}

// appendJSONString appends s as a JSON string literal. s is valid UTF-8
// (checked by the caller), so json.Marshal cannot fail or alter it.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// WriteFile writes entries to path atomically: into a temporary file in the
// same directory, synced, then renamed over path, so a reader never sees a
// partial checkpoint.
func WriteFile(path string, entries []Entry, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return withPath(err, path)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = withPath(err, path)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Write(bw, entries, metadata); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
