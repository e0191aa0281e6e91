package ptfile

import (
	"fmt"
	"io"
	"slices"

	"github.com/avq/avq/internal/mmap"
	"github.com/avq/avq/tensor"
)

// Info describes one tensor of a checkpoint as stored.
type Info struct {
	Name       string
	DType      tensor.DType
	Shape      tensor.Shape
	Strides    []int64 // in elements, as torch's stride()
	Offset     int64   // storage offset, in elements
	Storage    string  // storage key: the record is data/<Storage>
	Contiguous bool    // Tensor returns a view on the file, not a copy
}

// File is one opened torch.save file. Its tensors are views on the mapped
// file and stay valid until Close. Its methods other than Close are safe
// for concurrent use.
type File struct {
	path    string
	src     source
	arch    *archive
	names   []string // in the order of the pickled dict
	tensors map[string]*tensorRef
}

// Open reads a torch.save zip file: it maps it, unpickles data.pkl with the
// restricted unpickler and validates every tensor before returning.
func Open(path string) (*File, error) {
	m, err := mmap.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Offset: -1, Kind: ErrOpen, Err: err}
	}
	f, err := openSource(path, m)
	if err != nil {
		m.Close()
		return nil, err
	}
	return f, nil
}

func openSource(path string, src source) (*File, error) {
	arch, err := openArchive(path, src)
	if err != nil {
		return nil, err
	}
	pkl, err := arch.record("data.pkl")
	if err != nil {
		return nil, err
	}
	data, err := arch.bytes(pkl, 0, pkl.size)
	if err != nil {
		return nil, err
	}
	return load(path, src, arch, data)
}

// load unpickles data.pkl (data) against the archive's storage records.
func load(path string, src source, arch *archive, data []byte) (*File, error) {
	u := &unpickler{path: path, data: data, torch: &torchState{arch: arch, storages: make(map[string]*storage)}}
	obj, err := u.run()
	if err != nil {
		return nil, err
	}
	f := &File{path: path, src: src, arch: arch, tensors: make(map[string]*tensorRef)}
	top, ok := obj.(*dict)
	if !ok {
		return nil, &Error{Path: path, Record: "data.pkl", Offset: -1, Kind: ErrStructure,
			Detail: fmt.Sprintf("the pickled object is a %s, not a dict of tensors", typeName(obj))}
	}
	fl := flattener{f: f, seen: make(map[*dict]bool), budget: 2*int64(len(data)) + 1<<16}
	if err := fl.walk(top, "", 0); err != nil {
		return nil, err
	}
	return f, nil
}

// flattener turns nested dicts of tensors into dotted names. Each dict may
// be reached once (no cycles, no exponential sharing), nesting is shallow,
// and the names may not total more than twice the pickle's size: that
// keeps the names' memory proportional to the input.
type flattener struct {
	f      *File
	seen   map[*dict]bool
	budget int64 // bytes of names still allowed
}

const maxNesting = 16

func (fl *flattener) walk(d *dict, prefix string, depth int) error {
	fail := func(name, format string, args ...any) error {
		return &Error{Path: fl.f.path, Record: "data.pkl", Offset: -1, Tensor: name, Kind: ErrStructure, Detail: fmt.Sprintf(format, args...)}
	}
	if depth > maxNesting {
		return fail(prefix, "dicts nested more than %d deep", maxNesting)
	}
	if fl.seen[d] {
		return fail(prefix, "the same dict appears twice in the state dict")
	}
	fl.seen[d] = true
	for _, it := range d.entries() {
		k, name := it.key, it.key
		if prefix != "" {
			if int64(len(prefix))+1+int64(len(k)) > fl.budget {
				return fail(printable(prefix), "nested names are more bytes than the pickle")
			}
			name = prefix + "." + k
		}
		fl.budget -= int64(len(name))
		switch v := it.val.(type) {
		case *tensorRef:
			if _, dup := fl.f.tensors[name]; dup {
				return &Error{Path: fl.f.path, Record: "data.pkl", Offset: -1, Tensor: name, Kind: ErrDuplicate, Detail: "name occurs twice after flattening nested dicts"}
			}
			fl.f.tensors[name] = v
			fl.f.names = append(fl.f.names, name)
		case *dict:
			if err := fl.walk(v, name, depth+1); err != nil {
				return err
			}
		default:
			return fail(name, "value is a %s, not a tensor", typeName(v))
		}
	}
	return nil
}

// Names lists the tensors in the order the state dict holds them.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info describes a tensor without reading its data.
func (f *File) Info(name string) (Info, bool) {
	t, ok := f.tensors[name]
	if !ok {
		return Info{}, false
	}
	return Info{Name: name, DType: t.st.dtype, Shape: t.intShape(), Strides: slices.Clone(t.strides),
		Offset: t.offset, Storage: t.st.key, Contiguous: t.contiguous}, true
}

// Tensor returns a tensor's values in row-major order. A contiguous tensor
// is a view on the mapped file (valid until Close); a strided one is copied.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, &Error{Path: f.path, Offset: -1, Tensor: name, Kind: ErrNotFound, Detail: "no such tensor"}
	}
	isz := int64(t.st.dtype.Size())
	shape := t.intShape()
	if t.numel == 0 {
		return tensor.FromBytes(t.st.dtype, shape, nil)
	}
	// Only the storage elements [offset, last] are read.
	b, err := f.arch.bytes(t.st.rec, t.offset*isz, (t.last-t.offset+1)*isz)
	if err != nil {
		return nil, err
	}
	if t.contiguous {
		return tensor.FromBytes(t.st.dtype, shape, b)
	}
	out := tensor.New(t.st.dtype, shape...)
	gather(out.Bytes(), b, t.shape, t.strides, int(isz))
	return out, nil
}

// gather copies a strided view (src starts at the view's first element)
// into dst in row-major order.
func gather(dst, src []byte, shape, strides []int64, isz int) {
	nd := len(shape)
	inner, innerStride := shape[nd-1], strides[nd-1]
	idx := make([]int64, nd-1)
	for d := 0; d < len(dst); {
		base := int64(0)
		for i, x := range idx {
			base += x * strides[i]
		}
		if innerStride == 1 {
			n := int(inner) * isz
			copy(dst[d:d+n], src[base*int64(isz):])
			d += n
		} else {
			for j := int64(0); j < inner; j++ {
				s := (base + j*innerStride) * int64(isz)
				copy(dst[d:d+isz], src[s:s+int64(isz)])
				d += isz
			}
		}
		for i := nd - 2; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
}

// Close releases the file. Views returned by Tensor become invalid.
func (f *File) Close() error {
	if c, ok := f.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
