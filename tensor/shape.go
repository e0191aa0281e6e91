package tensor

import (
	"fmt"
	"math/bits"
	"strings"
)

// Shape lists dimension sizes, outermost first. A scalar has an empty shape.
type Shape []int

// Numel is the element count. It panics on negative dimensions; use NumelChecked
// for shapes that come from files.
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		if d < 0 {
			panic("tensor: negative dimension")
		}
		n *= d
	}
	return n
}

// NumelChecked is the element count of a shape read from untrusted input. It
// reports false when a dimension is negative or the product overflows int64.
func NumelChecked(dims []int64) (int64, bool) {
	n := uint64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, false
		}
		n = lo
	}
	return int64(n), true
}

// Equal reports whether two shapes have the same dimensions.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy that does not share memory with s.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

// String formats the shape as [a, b, c].
func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
