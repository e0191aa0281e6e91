package cpu

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// CPU is the host backend. Its Tensors are *tensor.Tensor.
type CPU struct {
	pool *pool
}

var _ backend.Backend = (*CPU)(nil)

// New returns a CPU backend running on the given number of threads; 0 means
// GOMAXPROCS.
func New(threads int) *CPU {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return &CPU{pool: newPool(threads)}
}

// Close stops the worker goroutines. The backend must not be used afterwards.
func (c *CPU) Close() { c.pool.close() }

// Threads is the number of threads ops run on.
func (c *CPU) Threads() int { return c.pool.threads }

func (c *CPU) Name() string { return fmt.Sprintf("cpu(%d threads)", c.pool.threads) }

func host(t backend.Tensor) *tensor.Tensor {
	h, ok := t.(*tensor.Tensor)
	if !ok {
		panic("backend: tensor does not belong to the CPU backend")
	}
	return h
}

// f32 returns the elements of an F32 tensor.
func f32(t backend.Tensor) []float32 {
	h := host(t)
	if h.DType() != tensor.F32 {
		panic("backend: " + h.DType().String() + " tensor where F32 is required")
	}
	return h.F32()
}

func (c *CPU) Load(w *tensor.Tensor) (backend.Tensor, error) {
	switch w.DType() {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		return nil, fmt.Errorf("backend: cpu: cannot use a %v tensor as a weight", w.DType())
	}
	if len(w.Shape()) <= 1 && w.DType() != tensor.F32 {
		return tensor.FromF32(w.ToF32(), w.Shape()...), nil
	}
	return w, nil
}

func (c *CPU) New(shape ...int) backend.Tensor { return tensor.New(tensor.F32, shape...) }

func (c *CPU) Rows(t backend.Tensor, lo, hi int) backend.Tensor { return host(t).Rows(lo, hi) }

func (c *CPU) Reshape(t backend.Tensor, shape ...int) backend.Tensor {
	return host(t).Reshape(shape...)
}

func (c *CPU) Write(dst backend.Tensor, src []float32) {
	d := f32(dst)
	if len(d) != len(src) {
		mismatch("Write", fmt.Sprintf("%d host values", len(src)), "dst", dst)
	}
	copy(d, src)
}

func (c *CPU) Read(dst []float32, src backend.Tensor) {
	s := host(src)
	if s.Numel() != len(dst) {
		mismatch("Read", fmt.Sprintf("%d host values", len(dst)), "src", src)
	}
	widen(dst, s)
}

func (c *CPU) Copy(dst backend.Tensor, row0 int, src backend.Tensor) {
	d, s := f32(dst), host(src)
	row := lastDimRow(dst)
	off := row0 * row
	if row0 < 0 || s.Numel()%max(row, 1) != 0 || off+s.Numel() > len(d) {
		mismatch("Copy", fmt.Sprintf("src does not fit dst from row %d", row0), "dst", dst, "src", src)
	}
	widen(d[off:off+s.Numel()], s)
}

// mismatch panics for an op called with shapes that disagree, naming the
// op, each operand's shape and the reason: "backend: MatMul x [577 1024],
// w [4096 1000], dst [577 4096]: inner dimensions disagree". named
// alternates operand names and tensors; a nil tensor is shown as nil.
func mismatch(op, why string, named ...any) {
	var b strings.Builder
	b.WriteString("backend: " + op)
	for i := 0; i+1 < len(named); i += 2 {
		sep := ", "
		if i == 0 {
			sep = " "
		}
		t, _ := named[i+1].(backend.Tensor)
		if t == nil || reflect.ValueOf(t).IsNil() {
			fmt.Fprintf(&b, "%s%v nil", sep, named[i])
			continue
		}
		fmt.Fprintf(&b, "%s%v %v%v", sep, named[i], t.DType(), []int(t.Shape()))
	}
	panic(b.String() + ": " + why)
}

// lastDimRow is the element count of one row of t's leading dimension.
func lastDimRow(t backend.Tensor) int {
	s := t.Shape()
	if len(s) == 0 {
		return 1
	}
	return s[1:].Numel()
}

// widen copies a float tensor's elements into dst as float32.
func widen(dst []float32, src *tensor.Tensor) {
	switch src.DType() {
	case tensor.F32:
		copy(dst, src.F32())
	case tensor.F16:
		asm.WidenF16(dst, src.U16())
	case tensor.BF16:
		asm.WidenBF16(dst, src.U16())
	default:
		panic("backend: cannot read a " + src.DType().String() + " tensor as float")
	}
}

// rowOf widens row r of a [R, C] float tensor into buf (len C) and returns the
// row; for F32 it returns the row in place and leaves buf alone.
func rowOf(t *tensor.Tensor, r, cols int, buf []float32) []float32 {
	switch t.DType() {
	case tensor.F32:
		return t.F32()[r*cols : (r+1)*cols]
	case tensor.F16:
		asm.WidenF16(buf, t.U16()[r*cols:(r+1)*cols])
	case tensor.BF16:
		asm.WidenBF16(buf, t.U16()[r*cols:(r+1)*cols])
	default:
		panic("backend: cannot read a " + t.DType().String() + " tensor as float")
	}
	return buf
}

func (c *CPU) Embed(dst, table backend.Tensor, ids []int32) {
	d, tb := f32(dst), host(table)
	if len(tb.Shape()) != 2 || host(dst).Numel() != len(ids)*tb.Dim(1) {
		mismatch("Embed", fmt.Sprintf("%d ids", len(ids)), "dst", dst, "table", table)
	}
	cols := tb.Dim(1)
	for i, id := range ids {
		out := d[i*cols : (i+1)*cols]
		if row := rowOf(tb, int(id), cols, out); &row[0] != &out[0] {
			copy(out, row)
		}
	}
}
