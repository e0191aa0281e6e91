package tensor

import "fmt"

// DType is an element type, named as safetensors names it.
type DType uint8

const (
	Invalid DType = iota
	F32
	F16
	BF16
	F64
	I64
	I32
	I16
	I8
	U8
	Bool
)

var dtypeInfo = [...]struct {
	name string
	size int
}{
	Invalid: {"INVALID", 0},
	F32:     {"F32", 4},
	F16:     {"F16", 2},
	BF16:    {"BF16", 2},
	F64:     {"F64", 8},
	I64:     {"I64", 8},
	I32:     {"I32", 4},
	I16:     {"I16", 2},
	I8:      {"I8", 1},
	U8:      {"U8", 1},
	Bool:    {"BOOL", 1},
}

// Size is the number of bytes one element occupies.
func (d DType) Size() int {
	if int(d) >= len(dtypeInfo) {
		return 0
	}
	return dtypeInfo[d].size
}

// String is the safetensors name of the type ("F32", "BF16", "BOOL", ...).
func (d DType) String() string {
	if int(d) >= len(dtypeInfo) {
		return fmt.Sprintf("DType(%d)", uint8(d))
	}
	return dtypeInfo[d].name
}

// IsFloat reports whether d is one of the floating-point types.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

// ParseDType maps a safetensors dtype name to a DType. Names are case-sensitive,
// as in the format.
func ParseDType(s string) (DType, bool) {
	for d := F32; int(d) < len(dtypeInfo); d++ {
		if dtypeInfo[d].name == s {
			return d, true
		}
	}
	return Invalid, false
}
