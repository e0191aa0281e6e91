package asm

import "math"

// Dot returns Σ x[i]·y[i], accumulated in fp32. It panics if the lengths
// differ.
func Dot(x, y []float32) float32 {
	if len(x) != len(y) {
		panic("asm: Dot length mismatch")
	}
	return use.Load().dot(x, y)
}

// Axpy computes y[i] += a·x[i]. It panics if the lengths differ.
func Axpy(a float32, x, y []float32) {
	if len(x) != len(y) {
		panic("asm: Axpy length mismatch")
	}
	use.Load().axpy(a, x, y)
}

// WidenF16 converts IEEE binary16 values to float32. Every number converts
// exactly; a NaN stays a NaN of the same sign, though the assembly versions
// quiet a signalling NaN (as the hardware conversions do).
func WidenF16(dst []float32, src []uint16) {
	if len(dst) != len(src) {
		panic("asm: WidenF16 length mismatch")
	}
	use.Load().widenF16(dst, src)
}

// WidenBF16 converts bfloat16 values to float32, exactly.
func WidenBF16(dst []float32, src []uint16) {
	if len(dst) != len(src) {
		panic("asm: WidenBF16 length mismatch")
	}
	use.Load().widenBF16(dst, src)
}

// GemvF16 computes y[r] = Σ_k w[r·ld + k]·x[k] for r < len(y), k < len(x):
// the product of a binary16 matrix (rows of stride ld) with an fp32 vector,
// reading the fp16 weights directly. It is the one-token decoding step of a
// Linear layer, limited by memory bandwidth, not arithmetic.
func GemvF16(y []float32, w []uint16, ld int, x []float32) {
	if len(y) > 0 && (ld < len(x) || len(w) < (len(y)-1)*ld+len(x)) {
		panic("asm: GemvF16 matrix too short")
	}
	if len(y) == 0 {
		return
	}
	use.Load().gemvF16(y, w, ld, x)
}

// GemvF32 is GemvF16 for fp32 weights.
func GemvF32(y, w []float32, ld int, x []float32) {
	if len(y) > 0 && (ld < len(x) || len(w) < (len(y)-1)*ld+len(x)) {
		panic("asm: GemvF32 matrix too short")
	}
	if len(y) == 0 {
		return
	}
	use.Load().gemvF32(y, w, ld, x)
}

// GemvT accumulates a transposed GEMV: y[c] += Σ_j p[j]·w[j·ld + c] for
// c < len(y), j < len(p) (y += Wᵀ·p over rows of stride ld). It is
// attention's p·v for one query, one call per head instead of an axpy per key.
func GemvT(y, w []float32, ld int, p []float32) {
	if len(p) > 0 && (ld < len(y) || len(w) < (len(p)-1)*ld+len(y)) {
		panic("asm: GemvT matrix too short")
	}
	use.Load().gemvT(y, w, ld, p)
}

// dotGeneric accumulates in four interleaved fp32 partial sums
// (s_j = Σ x[4i+j]·y[4i+j]), then adds them as (s0+s1)+(s2+s3), then the tail.
func dotGeneric(x, y []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(x) &^ 3
	y = y[:len(x)]
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

func axpyGeneric(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

func widenF16Generic(dst []float32, src []uint16) {
	t := &f16Table
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(t[h])
	}
}

func widenBF16Generic(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// gemvF16Generic widens a block of each row and dots it with x, block by
// block, through the kernel set in use (so an assembly dot and widening serve
// a set without its own GEMV).
func gemvF16Generic(y []float32, w []uint16, ld int, x []float32) {
	const block = 256
	var buf [block]float32
	k := use.Load()
	for r := range y {
		row := w[r*ld : r*ld+len(x)]
		var s float32
		for k0 := 0; k0 < len(x); k0 += block {
			k1 := min(k0+block, len(x))
			b := buf[:k1-k0]
			k.widenF16(b, row[k0:k1])
			s += k.dot(b, x[k0:k1])
		}
		y[r] = s
	}
}

// gemvF32Generic is a dot product per row, through the kernel set in use.
func gemvF32Generic(y, w []float32, ld int, x []float32) {
	k := use.Load()
	for r := range y {
		y[r] = k.dot(w[r*ld:r*ld+len(x)], x)
	}
}

// gemvTGeneric is an axpy per row, through the kernel set in use.
func gemvTGeneric(y, w []float32, ld int, p []float32) {
	k := use.Load()
	for j, pj := range p {
		k.axpy(pj, w[j*ld:j*ld+len(y)], y)
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
