package ptfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// memSource is a source over bytes in memory: the fuzz target and the
// crafted-file tests open archives through it.
type memSource []byte

func (m memSource) Size() int64 { return int64(len(m)) }

func (m memSource) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m memSource) Slice(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > int64(len(m)) || n > int64(len(m))-off {
		return nil, fmt.Errorf("range [%d, +%d) outside %d bytes", off, n, len(m))
	}
	return m[off : off+n : off+n], nil
}

// pickler assembles pickle programs for crafted test files.
type pickler struct{ bytes.Buffer }

func (p *pickler) op(b ...byte) *pickler { p.Write(b); return p }

func (p *pickler) str(s string) *pickler {
	p.WriteByte(opBinUnicode)
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pickler) int(v int64) *pickler {
	p.WriteByte(opLong1)
	p.WriteByte(8)
	binary.Write(p, binary.LittleEndian, v)
	return p
}

func (p *pickler) global(module, name string) *pickler {
	p.WriteByte(opGlobal)
	p.WriteString(module + "\n" + name + "\n")
	return p
}

func (p *pickler) ints(v ...int64) *pickler {
	p.op(opMark)
	for _, x := range v {
		p.int(x)
	}
	return p.op(opTuple)
}

// tensor emits _rebuild_tensor_v2(('storage', torch.<st>, key, 'cpu',
// numel), offset, size, stride, False, OrderedDict()).
func (p *pickler) tensor(st, key string, numel, offset int64, size, stride []int64) *pickler {
	p.global("torch._utils", "_rebuild_tensor_v2").op(opMark)
	p.op(opMark).str("storage").global("torch", st).str(key).str("cpu").int(numel).op(opTuple, opBinPersID)
	p.int(offset).ints(size...).ints(stride...).op(opNewFalse)
	p.global("collections", "OrderedDict").op(opEmptyTuple, opReduce)
	return p.op(opTuple, opReduce)
}

// buildZip writes a torch-style archive: data.pkl first (it names the
// prefix), then the records in the order given. Records whose name ends in
// "!deflate" are deflated (the suffix is dropped).
func buildZip(pkl []byte, records ...string) func(data ...[]byte) []byte {
	return func(data ...[]byte) []byte {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		add := func(name string, b []byte) {
			method := zip.Store
			if n, ok := bytes.CutSuffix([]byte(name), []byte("!deflate")); ok {
				name, method = string(n), zip.Deflate
			}
			f, err := w.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: method})
			if err != nil {
				panic(err) // writing to memory does not fail
			}
			f.Write(b)
		}
		add("data.pkl", pkl)
		for i, r := range records {
			add(r, data[i])
		}
		add("version", []byte("3\n"))
		if err := w.Close(); err != nil {
			panic(err)
		}
		return buf.Bytes()
	}
}

// f32Bytes is 0, 1, ..., n-1 as little-endian float32.
func f32Bytes(n int) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(i)))
	}
	return b
}
