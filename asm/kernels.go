package asm

import "math"

// Dot returns Σ x[i]·y[i]. It panics if the lengths differ.
func Dot(x, y []float32) float32 {
	if len(x) != len(y) {
		panic("asm: Dot length mismatch")
	}
	return dotGeneric(x, y)
}

// dotGeneric accumulates in four interleaved fp32 partial sums
// (s_j = Σ x[4i+j]·y[4i+j]), then adds them as (s0+s1)+(s2+s3), then the tail.
func dotGeneric(x, y []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(x) &^ 3
	for i := 0; i < n; i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	s := (s0 + s1) + (s2 + s3)
	for i := n; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}

// Axpy computes y[i] += a·x[i]. It panics if the lengths differ.
func Axpy(a float32, x, y []float32) {
	if len(x) != len(y) {
		panic("asm: Axpy length mismatch")
	}
	for i, v := range x {
		y[i] += a * v
	}
}

// WidenF16 converts IEEE binary16 values to float32, exactly.
func WidenF16(dst []float32, src []uint16) {
	if len(dst) != len(src) {
		panic("asm: WidenF16 length mismatch")
	}
	t := &f16Table
	for i, h := range src {
		dst[i] = math.Float32frombits(t[h])
	}
}

// WidenBF16 converts bfloat16 values to float32, exactly.
func WidenBF16(dst []float32, src []uint16) {
	if len(dst) != len(src) {
		panic("asm: WidenBF16 length mismatch")
	}
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// f16Table maps every binary16 bit pattern to its float32 bits. 256 KiB,
// filled once; a lookup beats the branchy bit manipulation in pure Go.
var f16Table = func() (t [1 << 16]uint32) {
	for i := range t {
		t[i] = f16ToF32Bits(uint16(i))
	}
	return
}()

// f16ToF32Bits is the exact binary16 -> binary32 conversion (the same rule as
// tensor.F16ToF32, which asm may not import).
func f16ToF32Bits(h uint16) uint32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return sign | 0x7f800000 | man<<13
	case exp != 0:
		return sign | (exp+112)<<23 | man<<13
	case man == 0:
		return sign
	}
	e := uint32(113)
	for man&0x400 == 0 {
		man <<= 1
		e--
	}
	return sign | e<<23 | (man&0x3ff)<<13
}
