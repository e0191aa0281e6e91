package ptfile

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// stateDict wraps entries in EMPTY_DICT MARK ... SETITEMS STOP.
func stateDict(entries func(p *pickler)) []byte {
	p := &pickler{}
	p.op(opProto, 2, opEmptyDict, opMark)
	entries(p)
	p.op(opSetItems, opStop)
	return p.Bytes()
}

// oneStorage is an archive whose data.pkl is pkl and whose only storage
// record data/0 holds n float32s 0..n-1.
func oneStorage(pkl []byte, n int) []byte {
	return buildZip(pkl, "data/0")(f32Bytes(n))
}

func TestCraftedRefusals(t *testing.T) {
	vec := func(p *pickler) { p.tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1}) }
	for _, tc := range []struct {
		name string
		pkl  []byte
		want error
		msg  string // a part of the message
	}{
		{"INST", []byte{opProto, 2, 'i', 'o', 's', '\n', 's', 'y', 's', '\n', opStop}, ErrOpcode, "INST (0x69)"},
		{"NEWOBJ", []byte{opProto, 2, opEmptyTuple, opEmptyTuple, 0x81, opStop}, ErrOpcode, "offset 4: opcode NEWOBJ"},
		{"BINBYTES", []byte{opProto, 3, 'B', 0, 0, 0, 0, opStop}, ErrOpcode, "BINBYTES"},
		{"unknown opcode", []byte{opProto, 2, 0xff}, ErrOpcode, "unknown opcode 0xff"},
		{"protocol 6", []byte{opProto, 6, opEmptyDict, opStop}, ErrOpcode, "protocol 6"},
		{"no STOP", []byte{opProto, 2, opEmptyDict}, ErrTruncated, "without STOP"},
		{"string past end", []byte{opProto, 2, opBinUnicode, 0xff, 0xff, 0xff, 0x7f, 'a'}, ErrTruncated, "BINUNICODE"},
		{"BINUNICODE8 huge", []byte{opProto, 4, opBinUnicode8, 0, 0, 0, 0, 0, 0, 0, 0x80}, ErrTruncated, "BINUNICODE8"},
		{"FRAME past end", []byte{opProto, 4, opFrame, 0xff, 0, 0, 0, 0, 0, 0, 0}, ErrTruncated, "FRAME"},
		{"GLOBAL without newline", []byte{opProto, 2, opGlobal, 'o', 's'}, ErrTruncated, "newline"},
		{"LONG1 too wide", []byte{opProto, 2, opLong1, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9}, ErrOverflow, "LONG1"},
		{"bad UTF-8", []byte{opProto, 2, opShortBinUnicode, 1, 0xff}, ErrStructure, "UTF-8"},
		{"STACK_GLOBAL forbidden", (&pickler{}).op(opProto, 4).str("subprocess").str("Popen").op(opStackGlobal, opStop).Bytes(), ErrForbiddenGlobal, "subprocess.Popen"},
		{"STACK_GLOBAL of ints", (&pickler{}).op(opProto, 4).int(1).int(2).op(opStackGlobal, opStop).Bytes(), ErrStructure, "STACK_GLOBAL"},
		{"newline in global name", (&pickler{}).op(opProto, 4).str("os\nx").str("system").op(opStackGlobal, opStop).Bytes(), ErrForbiddenGlobal, `"os\nx.system"`},
		{"pop below MARK", []byte{opProto, 2, opEmptyDict, opMark, opBinPut, 0, opStop}, ErrStackUnderflow, "BINPUT"},
		{"TUPLE without MARK", []byte{opProto, 2, opTuple, opStop}, ErrStackUnderflow, "MARK"},
		{"STOP on empty stack", []byte{opProto, 2, opStop}, ErrStackUnderflow, "STOP"},
		{"BINGET missing", []byte{opProto, 2, opBinGet, 3, opStop}, ErrMemo, "BINGET (0x68) 3"},
		{"odd SETITEMS", (&pickler{}).op(opProto, 2, opEmptyDict, opMark).str("a").op(opSetItems, opStop).Bytes(), ErrStructure, "odd"},
		{"SETITEM on a list", (&pickler{}).op(opProto, 2, opEmptyList).str("a").str("b").op(opSetItem, opStop).Bytes(), ErrStructure, "not a dict"},
		{"APPEND on a dict", []byte{opProto, 2, opEmptyDict, opNone, opAppend, opStop}, ErrStructure, "not a list"},
		{"int key", (&pickler{}).op(opProto, 2, opEmptyDict).int(1).op(opNone, opSetItem, opStop).Bytes(), ErrStructure, "dict key"},
		{"top is a list", []byte{opProto, 2, opEmptyList, opStop}, ErrStructure, "a list, not a dict"},
		{"top is a tensor", func() []byte {
			p := (&pickler{}).op(opProto, 2)
			vec(p)
			return p.op(opStop).Bytes()
		}(), ErrStructure, "a tensor, not a dict"},
		{"non-tensor value", stateDict(func(p *pickler) { p.str("epoch").int(3) }), ErrStructure, `tensor "epoch": value is a int`},
		{"list value", stateDict(func(p *pickler) { p.str("l").op(opEmptyList, opNone, opAppend) }), ErrStructure, "value is a list"},
		{"REDUCE on a storage type", stateDict(func(p *pickler) { p.str("s").global("torch", "FloatStorage").op(opEmptyTuple, opReduce) }), ErrStructure, "not a function"},
		{"REDUCE on a string", stateDict(func(p *pickler) { p.str("s").str("f").op(opEmptyTuple, opReduce) }), ErrStructure, "REDUCE calls a str"},
		{"OrderedDict with args", stateDict(func(p *pickler) {
			p.str("d").global("collections", "OrderedDict").op(opMark, opNone, opTuple, opReduce)
		}), ErrStructure, "1 arguments"},
		{"rebuild with 2 args", stateDict(func(p *pickler) {
			p.str("t").global("torch._utils", "_rebuild_tensor_v2").op(opNone, opNone, opTuple2, opReduce)
		}), ErrStructure, "2 arguments"},
		{"parameter of a str", stateDict(func(p *pickler) {
			p.str("t").global("torch._utils", "_rebuild_parameter").str("x").op(opNewTrue, opEmptyDict, opTuple3, opReduce)
		}), ErrStructure, "_rebuild_parameter(str"},
		{"BUILD on a dict", []byte{opProto, 2, opEmptyDict, opEmptyDict, opBuild, opStop}, ErrStructure, "BUILD on a dict"},
		{"BUILD with other state", (&pickler{}).op(opProto, 2).global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opEmptyDict).str("__class__").op(opNone, opSetItem, opBuild, opStop).Bytes(), ErrStructure, "BUILD on a OrderedDict"},
		{"persistent id not storage", stateDict(func(p *pickler) { p.str("t").str("x").op(opBinPersID) }), ErrStructure, "persistent id"},
		{"location mps", stateDict(func(p *pickler) {
			p.str("t").op(opMark).str("storage").global("torch", "FloatStorage").str("0").str("mps").int(4).op(opTuple, opBinPersID)
		}), ErrStructure, "location mps"},
		{"storage retyped", stateDict(func(p *pickler) {
			vec(p.str("a"))
			p.str("b").tensor("IntStorage", "0", 4, 0, []int64{4}, []int64{1})
		}), ErrStructure, `storage "0" used as 4 x F32 and as 4 x I32`},
		{"negative numel", stateDict(func(p *pickler) { p.str("t").tensor("FloatStorage", "0", -4, 0, []int64{4}, []int64{1}) }), ErrNegative, "numel -4"},
		{"negative offset", stateDict(func(p *pickler) { p.str("t").tensor("FloatStorage", "0", 4, -1, []int64{4}, []int64{1}) }), ErrNegative, "offset -1"},
		{"size and stride lengths", stateDict(func(p *pickler) { p.str("t").tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1, 1}) }), ErrStructure, "differ in length"},
		{"last element overflows", stateDict(func(p *pickler) {
			p.str("t").tensor("FloatStorage", "0", 4, 0, []int64{2, 2}, []int64{math.MaxInt64, math.MaxInt64})
		}), ErrOverflow, "overflows int64"},
		{"offset past the end", stateDict(func(p *pickler) { p.str("t").tensor("FloatStorage", "0", 4, 1, []int64{4}, []int64{1}) }), ErrOutOfBounds, "needs element 4"},
		{"expanded view", stateDict(func(p *pickler) { p.str("t").tensor("FloatStorage", "0", 4, 0, []int64{8}, []int64{0}) }), ErrOverlap, "8 elements"},
		{"self-containing dict", (&pickler{}).op(opProto, 2, opEmptyDict, opBinPut, 0).str("me").op(opBinGet, 0, opSetItem, opStop).Bytes(), ErrStructure, "twice"},
		{"duplicate after flattening", stateDict(func(p *pickler) {
			vec(p.str("a.b"))
			p.op(opBinPut, 9).str("a").op(opEmptyDict).str("b").op(opBinGet, 9, opSetItem)
		}), ErrDuplicate, `"a.b"`},
		{"deep nesting", func() []byte {
			p := (&pickler{}).op(opProto, 2)
			for range 40 {
				p.op(opEmptyDict).str("d")
			}
			p.op(opEmptyDict)
			for range 40 {
				p.op(opSetItem)
			}
			return p.op(opStop).Bytes()
		}(), ErrStructure, "nested more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openSource("crafted.bin", memSource(oneStorage(tc.pkl, 4)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestNestedDictsFlatten(t *testing.T) {
	pkl := stateDict(func(p *pickler) {
		p.str("model").op(opEmptyDict, opMark)
		p.str("w").tensor("FloatStorage", "0", 6, 0, []int64{2, 3}, []int64{3, 1})
		p.str("inner").op(opEmptyDict).str("b").tensor("FloatStorage", "0", 6, 4, []int64{2}, []int64{1}).op(opSetItem)
		p.op(opSetItems)
		p.str("empty").op(opEmptyDict)
	})
	f, err := openSource("nested.bin", memSource(oneStorage(pkl, 6)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Names(), []string{"model.w", "model.inner.b"}; !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	b, err := f.Tensor("model.inner.b")
	if err != nil || !slices.Equal(b.F32(), []float32{4, 5}) {
		t.Fatalf("model.inner.b = %v, %v", b, err)
	}
}

// TestGather checks a permuted 3-D view against indexing the storage.
func TestGather(t *testing.T) {
	size, stride := []int64{3, 2, 4}, []int64{1, 12, 3} // a permute of a [2, 4, 3] tensor
	const offset = 5
	pkl := stateDict(func(p *pickler) { p.str("p").tensor("FloatStorage", "0", 29, offset, size, stride) })
	f, err := openSource("perm.bin", memSource(oneStorage(pkl, 29)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Tensor("p")
	if err != nil {
		t.Fatal(err)
	}
	var want []float32
	for i := range size[0] {
		for j := range size[1] {
			for k := range size[2] {
				want = append(want, float32(offset+i*stride[0]+j*stride[1]+k*stride[2]))
			}
		}
	}
	if !slices.Equal(got.F32(), want) || !got.Shape().Equal([]int{3, 2, 4}) {
		t.Fatalf("got %v %v, want %v", got.Shape(), got.F32(), want)
	}
}

func TestDeflatedStorage(t *testing.T) {
	pkl := stateDict(func(p *pickler) {
		p.str("a").tensor("FloatStorage", "0", 6, 0, []int64{2, 3}, []int64{3, 1})
		p.str("b").tensor("FloatStorage", "0", 6, 0, []int64{3, 2}, []int64{1, 3})
	})
	f, err := openSource("deflated.bin", memSource(buildZip(pkl, "data/0!deflate")(f32Bytes(6))))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Tensor("a")
	if err != nil || !slices.Equal(a.F32(), []float32{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("a = %v, %v", a, err)
	}
	b, err := f.Tensor("b")
	if err != nil || !slices.Equal(b.F32(), []float32{0, 3, 1, 4, 2, 5}) {
		t.Fatalf("b = %v, %v", b, err)
	}

	// Concurrent first uses inflate the record once and agree.
	f, _ = openSource("deflated.bin", memSource(buildZip(pkl, "data/0!deflate")(f32Bytes(6))))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if b, err := f.Tensor("b"); err != nil || !slices.Equal(b.F32(), []float32{0, 3, 1, 4, 2, 5}) {
				t.Errorf("concurrent b = %v, %v", b, err)
			}
		})
	}
	wg.Wait()

	// A record that would inflate far beyond the file is refused unread.
	const n = 1 << 20
	bomb := stateDict(func(p *pickler) { p.str("z").tensor("FloatStorage", "0", n, 0, []int64{n}, []int64{1}) })
	_, err = openSource("bomb.bin", memSource(buildZip(bomb, "data/0!deflate")(make([]byte, 4*n))))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("zip bomb: %v", err)
	}

	// A deflated data.pkl works too, and a corrupt stream fails cleanly.
	pkl = stateDict(func(p *pickler) {})
	zb := buildZip(pkl)()
	if _, err := openSource("empty-dict.bin", memSource(zb)); err != nil {
		t.Fatal(err)
	}
	pkl = stateDict(func(p *pickler) { p.str("a").tensor("FloatStorage", "0", 6, 0, []int64{6}, []int64{1}) })
	corrupt := buildZip(pkl, "data/0!deflate")(f32Bytes(6))
	i := bytes.LastIndex(corrupt, []byte("archive/data/0"))
	corrupt[i-46+16] ^= 0xff // the central directory's CRC of data/0
	f, err = openSource("corrupt.bin", memSource(corrupt))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Tensor("a"); !errors.Is(err, ErrRecord) {
		t.Fatalf("bad CRC: %v", err)
	}
}

func TestArchiveChecks(t *testing.T) {
	pkl := stateDict(func(p *pickler) { p.str("a").tensor("FloatStorage", "0", 2, 0, []int64{2}, []int64{1}) })
	for _, tc := range []struct {
		name    string
		records []string
		data    [][]byte
		want    error
	}{
		{"little endian", []string{"data/0", "byteorder"}, [][]byte{f32Bytes(2), []byte("little")}, nil},
		{"big endian", []string{"data/0", "byteorder"}, [][]byte{f32Bytes(2), []byte("big")}, ErrByteOrder},
		{"duplicate record", []string{"data/0", "data/0"}, [][]byte{f32Bytes(2), f32Bytes(2)}, ErrRecord},
		{"missing storage", []string{"data/1"}, [][]byte{f32Bytes(2)}, ErrMissingStorage},
	} {
		_, err := openSource(tc.name, memSource(buildZip(pkl, tc.records...)(tc.data...)))
		if (tc.want == nil && err != nil) || !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// No data.pkl under the prefix.
	z := buildZip(pkl)()
	z = bytes.ReplaceAll(z, []byte("archive/data.pkl"), []byte("archive/data.pkX"))
	if _, err := openSource("nopkl", memSource(z)); !errors.Is(err, ErrMissingRecord) || !strings.Contains(err.Error(), "archive/data.pkl") {
		t.Errorf("missing data.pkl: %v", err)
	}
	// A bare pickle is not a torch.save file.
	if _, err := openSource("bare", memSource(pkl)); !errors.Is(err, ErrNotZip) || !strings.Contains(err.Error(), "bare pickle") {
		t.Errorf("bare pickle: %v", err)
	}
}
