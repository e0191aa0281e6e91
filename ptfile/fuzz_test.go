package ptfile

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// allocLimit is what opening n bytes may allocate in all: Open's promise is
// memory proportional to the input. The factor covers Go's cost of the
// object a one-byte opcode makes (EMPTY_LIST: a 24-byte list and a 16-byte
// stack slot, twice over while the stack grows); the constant covers
// archive/zip's fixed buffers.
func allocLimit(n int) uint64 { return 64*uint64(n) + 1<<20 }

// openCounting opens data from memory and reports the bytes allocated.
func openCounting(data []byte) (*File, error, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := openSource("fuzz.bin", memSource(data))
	runtime.ReadMemStats(&after)
	return f, err, after.TotalAlloc - before.TotalAlloc
}

// FuzzOpen feeds whole files to the reader: it must return a *Error or a
// File whose every tensor reads back with the size its Info promises, and
// it must stay within allocLimit.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err, alloc := openCounting(data)
		if alloc > allocLimit(len(data)) {
			t.Fatalf("opening %d bytes allocated %d", len(data), alloc)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind == nil {
				t.Fatalf("untyped error %v", err)
			}
			_ = e.Error()
			return
		}
		for _, name := range file.Names() {
			info, ok := file.Info(name)
			if !ok {
				t.Fatalf("%s listed but has no Info", name)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			tt, err := file.Tensor(name)
			runtime.ReadMemStats(&after)
			// A copy of at most the storage, or inflating deflated records.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxInflate*uint64(len(data))+1<<20 {
				t.Fatalf("%s: Tensor allocated %d for a %d-byte file", name, alloc, len(data))
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrRecord) {
					t.Fatalf("%s: %v", name, err)
				}
				continue // a deflated record that does not inflate
			}
			if tt.DType() != info.DType || !tt.Shape().Equal(info.Shape) || len(tt.Bytes()) != info.Shape.Numel()*info.DType.Size() {
				t.Fatalf("%s: tensor %v, info %+v", name, tt, info)
			}
		}
	})
}

// TestOpenAllocationBound runs inputs built to make a reader amplify memory:
// long runs of the cheapest allocating opcodes, memo flooding, many names
// for one tensor, long nested prefixes.
func TestOpenAllocationBound(t *testing.T) {
	repeat := func(head []byte, body []byte, n int, tail ...byte) []byte {
		p := append([]byte{opProto, 4}, head...)
		for range n {
			p = append(p, body...)
		}
		return append(p, tail...)
	}
	const n = 50000
	longKey := make([]byte, 0, 1<<16)
	for range 1 << 16 {
		longKey = append(longKey, 'k')
	}
	nested := &pickler{}
	nested.op(opProto, 4, opEmptyDict).str(string(longKey)).op(opEmptyDict, opMark)
	nested.str("x").tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1}).op(opBinPut, 0)
	for i := range n / 4 {
		nested.op(opShortBinUnicode, 4).WriteString(fmt.Sprintf("%04x", i))
		nested.op(opBinGet, 0)
	}
	nested.op(opSetItems, opSetItem, opStop)
	for _, tc := range []struct {
		name string
		pkl  []byte
	}{
		{"dicts", repeat(nil, []byte{opEmptyDict}, n)},
		{"lists", repeat(nil, []byte{opEmptyList}, n)},
		{"tuples", repeat(nil, []byte{opEmptyTuple, opTuple1}, n)},
		{"ints", repeat(nil, []byte{opBinInt, 0, 1, 2, 3}, n)},
		{"memo", repeat([]byte{opNone}, []byte{opMemoize}, n)},
		{"marks", repeat(nil, []byte{opMark}, n)},
		{"nested names", nested.Bytes()},
	} {
		data := oneStorage(tc.pkl, 4)
		_, _, alloc := openCounting(data)
		t.Logf("%s: %d bytes in, %d allocated (%.1fx)", tc.name, len(data), alloc, float64(alloc)/float64(len(data)))
		if alloc > allocLimit(len(data)) {
			t.Errorf("%s: %d bytes allocated for %d in", tc.name, alloc, len(data))
		}
	}
}

// pickleArchive is the archive FuzzPickle runs data.pkl programs against:
// storages data/0 (16 bytes), data/1 (64 bytes), data/2 (64 bytes,
// deflated) and data/3 (empty).
var pickleArchive = sync.OnceValue(func() []byte {
	return buildZip([]byte{opProto, 2, opEmptyDict, opStop}, "data/0", "data/1", "data/2!deflate", "data/3")(
		f32Bytes(4), f32Bytes(16), f32Bytes(16), nil)
})

// FuzzPickle runs data.pkl programs directly, so that mutations explore the
// unpickler instead of breaking the zip around it. The seeds are the
// fixtures' data.pkl records and crafted programs.
func FuzzPickle(f *testing.F) {
	f.Fuzz(func(t *testing.T, pkl []byte) {
		zb := pickleArchive()
		arch, err := openArchive("fuzz.bin", memSource(zb))
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		file, err := load("fuzz.bin", memSource(zb), arch, pkl)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > allocLimit(len(pkl)) {
			t.Fatalf("a %d-byte pickle allocated %d", len(pkl), alloc)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind == nil {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, name := range file.Names() {
			info, _ := file.Info(name)
			tt, err := file.Tensor(name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if tt.DType() != info.DType || !tt.Shape().Equal(info.Shape) || len(tt.Bytes()) != info.Shape.Numel()*info.DType.Size() {
				t.Fatalf("%s: tensor %v, info %+v", name, tt, info)
			}
		}
	})
}
