package tensor

import (
	"fmt"
	"unsafe"
)

// Tensor is a dtype, a shape and contiguous row-major bytes. It is a view: the
// bytes may belong to a memory-mapped file, and Rows shares them.
type Tensor struct {
	dtype DType
	shape Shape
	data  []byte
}

// New allocates a zeroed tensor. The backing memory is 8-byte aligned, so every
// typed accessor works on it.
func New(dt DType, shape ...int) *Tensor {
	n := Shape(shape).Numel() * dt.Size()
	words := make([]uint64, (n+7)/8)
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
	}
	return &Tensor{dtype: dt, shape: Shape(shape).Clone(), data: b}
}

// FromBytes makes a tensor that uses b in place. b must hold exactly
// numel(shape)·size(dt) bytes. When b is not aligned to the element size (a
// safetensors file may place a tensor at any byte offset) the bytes are copied
// once into aligned memory, so that typed accessors never see a misaligned
// pointer; every checkpoint writer we know of aligns tensors, so this is rare.
func FromBytes(dt DType, shape Shape, b []byte) (*Tensor, error) {
	if dt.Size() == 0 {
		return nil, fmt.Errorf("tensor: invalid dtype %v", dt)
	}
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("tensor: negative dimension in shape %v", shape)
		}
	}
	want := shape.Numel() * dt.Size()
	if len(b) != want {
		return nil, fmt.Errorf("tensor: %v %v needs %d bytes, got %d", dt, shape, want, len(b))
	}
	if len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%uintptr(dt.Size()) != 0 {
		t := New(dt, shape...)
		copy(t.data, b)
		return t, nil
	}
	return &Tensor{dtype: dt, shape: shape.Clone(), data: b}, nil
}

// FromF32 wraps an F32 slice (no copy). It panics if len(v) disagrees with shape.
func FromF32(v []float32, shape ...int) *Tensor {
	if len(v) != Shape(shape).Numel() {
		panic("tensor: FromF32 length does not match shape")
	}
	var b []byte
	if len(v) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	return &Tensor{dtype: F32, shape: Shape(shape).Clone(), data: b}
}

// FromI32 wraps an I32 slice (no copy). It panics if len(v) disagrees with shape.
func FromI32(v []int32, shape ...int) *Tensor {
	if len(v) != Shape(shape).Numel() {
		panic("tensor: FromI32 length does not match shape")
	}
	var b []byte
	if len(v) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	return &Tensor{dtype: I32, shape: Shape(shape).Clone(), data: b}
}

func (t *Tensor) DType() DType  { return t.dtype }
func (t *Tensor) Shape() Shape  { return t.shape }
func (t *Tensor) Numel() int    { return t.shape.Numel() }
func (t *Tensor) Bytes() []byte { return t.data }

// Dim is the size of dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// F32 returns the elements of an F32 tensor, sharing memory.
func (t *Tensor) F32() []float32 {
	t.mustBe(F32)
	return view[float32](t.data)
}

// U16 returns the raw 16-bit elements of an F16 or BF16 tensor, sharing memory.
func (t *Tensor) U16() []uint16 {
	if t.dtype != F16 && t.dtype != BF16 {
		panic("tensor: U16 of " + t.dtype.String() + " tensor")
	}
	return view[uint16](t.data)
}

// I32 returns the elements of an I32 tensor, sharing memory.
func (t *Tensor) I32() []int32 {
	t.mustBe(I32)
	return view[int32](t.data)
}

// I64 returns the elements of an I64 tensor, sharing memory.
func (t *Tensor) I64() []int64 {
	t.mustBe(I64)
	return view[int64](t.data)
}

// ToF32 returns the elements of a floating-point tensor widened to float32 in a
// new slice (F32 is copied too). Use it for small tensors and tests, never for
// weights on a hot path.
func (t *Tensor) ToF32() []float32 {
	out := make([]float32, t.Numel())
	switch t.dtype {
	case F32:
		copy(out, t.F32())
	case F16:
		for i, h := range t.U16() {
			out[i] = F16ToF32(h)
		}
	case BF16:
		for i, h := range t.U16() {
			out[i] = BF16ToF32(h)
		}
	case F64:
		for i, v := range view[float64](t.data) {
			out[i] = float32(v)
		}
	default:
		panic("tensor: ToF32 of " + t.dtype.String() + " tensor")
	}
	return out
}

// Rows is a view on rows [lo, hi) of the leading dimension.
func (t *Tensor) Rows(lo, hi int) *Tensor {
	if len(t.shape) == 0 || lo < 0 || hi < lo || hi > t.shape[0] {
		panic("tensor: Rows out of range")
	}
	row := t.shape[1:].Numel() * t.dtype.Size()
	s := t.shape.Clone()
	s[0] = hi - lo
	return &Tensor{dtype: t.dtype, shape: s, data: t.data[lo*row : hi*row]}
}

// Reshape is a view with another shape of the same element count.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	if Shape(shape).Numel() != t.Numel() {
		panic("tensor: Reshape changes the element count")
	}
	return &Tensor{dtype: t.dtype, shape: Shape(shape).Clone(), data: t.data}
}

func (t *Tensor) String() string { return fmt.Sprintf("%v%v", t.dtype, t.shape) }

func (t *Tensor) mustBe(d DType) {
	if t.dtype != d {
		panic("tensor: " + d.String() + " access to " + t.dtype.String() + " tensor")
	}
}

func view[T any](b []byte) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size)
}

// Convert returns the tensor in another floating-point dtype (rounding to
// nearest even when narrowing), or t itself when it already has it. It
// panics on non-float dtypes.
func (t *Tensor) Convert(dt DType) *Tensor {
	if dt == t.dtype {
		return t
	}
	v := t.ToF32()
	out := New(dt, t.shape...)
	switch dt {
	case F32:
		copy(out.F32(), v)
	case F16:
		for i, x := range v {
			out.U16()[i] = F32ToF16(x)
		}
	case BF16:
		for i, x := range v {
			out.U16()[i] = F32ToBF16(x)
		}
	case F64:
		for i, x := range v {
			view[float64](out.data)[i] = float64(x)
		}
	default:
		panic("tensor: Convert to " + dt.String())
	}
	return out
}
