package ptfile

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
)

// source is what an archive reads from: a memory-mapped file in Open, bytes
// in memory in the fuzz test. Slice returns a view when it can.
type source interface {
	io.ReaderAt
	Size() int64
	Slice(off, n int64) ([]byte, error)
}

// maxInflate bounds how much all deflated records of one file may expand
// to, as a multiple of the file size, so a zip bomb cannot make us allocate
// more than that. torch.save never compresses, so real files never come near.
const maxInflate = 32

// legacyMagic is how the pre-1.6 format starts: PROTO 2, then LONG1 of
// torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c (torch/serialization.py).
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// archive is a torch.save zip: records live under one prefix directory,
// named by the first entry of the central directory, as torch's
// PyTorchStreamReader (caffe2/serialize/inline_container.cc) does.
type archive struct {
	path     string
	src      source
	prefix   string
	files    map[string]*zip.File // record name without the prefix
	inflated int64                // bytes promised to deflated records so far
}

// record is one archive entry whose position has been checked against the
// file. Stored records are read in place; deflated ones are inflated once.
type record struct {
	name   string // without the prefix
	file   *zip.File
	off    int64 // data offset in the file (stored records)
	size   int64 // uncompressed size
	stored bool

	once     sync.Once
	inflated []byte
	err      error
}

func (a *archive) fail(kind error, rec string, format string, args ...any) *Error {
	return &Error{Path: a.path, Record: rec, Offset: -1, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

func openArchive(path string, src source) (*archive, error) {
	a := &archive{path: path, src: src}
	size := src.Size()
	if size == 0 {
		return nil, a.fail(ErrEmpty, "", "0 bytes")
	}
	zr, err := zip.NewReader(src, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are only looked up, never used as paths
		return nil, a.sniff(err)
	}
	if len(zr.File) == 0 {
		return nil, a.fail(ErrNotZip, "", "the zip archive has no entries")
	}
	prefix, _, ok := strings.Cut(zr.File[0].Name, "/")
	if !ok {
		return nil, a.fail(ErrNotZip, "", "first zip entry %s is not in a directory, as torch.save writes", printable(zr.File[0].Name))
	}
	a.prefix = prefix
	a.files = make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		name, ok := strings.CutPrefix(f.Name, prefix+"/")
		if !ok {
			continue
		}
		if _, dup := a.files[name]; dup {
			return nil, a.fail(ErrRecord, name, "the archive holds this record twice")
		}
		a.files[name] = f
	}
	if err := a.checkByteOrder(); err != nil {
		return nil, err
	}
	return a, nil
}

// sniff explains why a file is not a zip archive.
func (a *archive) sniff(zipErr error) error {
	head := make([]byte, 32)
	n, _ := a.src.ReadAt(head, 0)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("version https://git-lfs")):
		return a.fail(ErrNotZip, "", "a Git LFS pointer, not the checkpoint (fetch it with git lfs pull)")
	case bytes.HasPrefix(head, legacyMagic):
		return a.fail(ErrLegacyFormat, "", "pre-1.6 torch.save stream (pickled magic number); re-save it with torch.save's default zip format")
	case bytes.HasPrefix(head, []byte{0x80}):
		return a.fail(ErrNotZip, "", "a bare pickle stream, not a torch.save zip archive")
	case bytes.HasPrefix(head, []byte("PK")):
		e := a.fail(ErrNotZip, "", "zip archive without a readable central directory (truncated?)")
		e.Err = zipErr
		return e
	}
	if len(head) > 8 {
		head = head[:8]
	}
	e := a.fail(ErrNotZip, "", "starts with %q", head)
	e.Err = zipErr
	return e
}

// checkByteOrder refuses big-endian archives: torch ≥ 2.1 writes a
// "byteorder" record, and storages are raw native-endian bytes.
func (a *archive) checkByteOrder() error {
	if _, ok := a.files["byteorder"]; !ok {
		return nil
	}
	rec, err := a.record("byteorder")
	if err != nil {
		return err
	}
	b, err := a.bytes(rec, 0, rec.size)
	if err != nil {
		return err
	}
	if string(b) != "little" {
		return a.fail(ErrByteOrder, "byteorder", "byte order %s; only little-endian files can be read", printable(string(b)))
	}
	return nil
}

// record locates a record and checks its extent against the file. It does
// not read the data.
func (a *archive) record(name string) (*record, error) {
	f, ok := a.files[name]
	if !ok {
		return nil, a.fail(ErrMissingRecord, "", "the archive has no record %s/%s", printable(a.prefix), printable(name))
	}
	size := a.src.Size()
	if f.Flags&1 != 0 {
		return nil, a.fail(ErrRecord, name, "record is encrypted")
	}
	if f.UncompressedSize64 > math.MaxInt64 || f.CompressedSize64 > uint64(size) {
		return nil, a.fail(ErrRecord, name, "record of %d bytes (%d compressed) in a %d-byte file", f.UncompressedSize64, f.CompressedSize64, size)
	}
	off, err := f.DataOffset()
	if err != nil {
		e := a.fail(ErrRecord, name, "unreadable local file header")
		e.Err = err
		return nil, e
	}
	if off < 0 || off > size || int64(f.CompressedSize64) > size-off {
		return nil, a.fail(ErrRecord, name, "data [%d, +%d) lies outside the %d-byte file", off, f.CompressedSize64, size)
	}
	r := &record{name: name, file: f, off: off, size: int64(f.UncompressedSize64)}
	switch f.Method {
	case zip.Store:
		if f.CompressedSize64 != f.UncompressedSize64 {
			return nil, a.fail(ErrRecord, name, "stored record with compressed size %d and size %d", f.CompressedSize64, f.UncompressedSize64)
		}
		r.stored = true
	case zip.Deflate:
		budget := int64(math.MaxInt64)
		if size <= math.MaxInt64/maxInflate {
			budget = maxInflate * size
		}
		if r.size > budget-a.inflated {
			return nil, a.fail(ErrTooLarge, name, "deflated records would expand to more than %d times the %d-byte file", maxInflate, size)
		}
		a.inflated += r.size
	default:
		return nil, a.fail(ErrRecord, name, "unsupported compression method %d", f.Method)
	}
	return r, nil
}

// bytes returns bytes [off, off+n) of a record's uncompressed data: a view
// on the file for a stored record when the source is mapped, else a copy or
// a slice of the record inflated on first use.
func (a *archive) bytes(r *record, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > r.size || n > r.size-off {
		panic("ptfile: record range outside a validated record")
	}
	if r.stored {
		b, err := a.src.Slice(r.off+off, n)
		if err != nil {
			e := a.fail(ErrRecord, r.name, "read failed")
			e.Err = err
			return nil, e
		}
		return b, nil
	}
	r.once.Do(func() {
		rc, err := r.file.Open()
		if err == nil {
			r.inflated, err = io.ReadAll(io.LimitReader(rc, r.size+1))
			rc.Close()
		}
		if err == nil && int64(len(r.inflated)) != r.size {
			err = fmt.Errorf("inflated to %d bytes, header says %d", len(r.inflated), r.size)
		}
		if err != nil {
			r.inflated = nil
			e := a.fail(ErrRecord, r.name, "cannot inflate record")
			e.Err = err
			r.err = e
		}
	})
	if r.err != nil {
		return nil, r.err
	}
	return r.inflated[off : off+n : off+n], nil
}
