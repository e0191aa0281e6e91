package ptfile

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; every *Error's Kind is one of them, so callers test with
// errors.Is(err, ptfile.ErrForbiddenGlobal) and so on.
var (
	ErrOpen            = errors.New("cannot open file")
	ErrEmpty           = errors.New("empty file")
	ErrNotZip          = errors.New("not a torch.save zip archive")
	ErrLegacyFormat    = errors.New("pre-1.6 torch.save format")
	ErrMissingRecord   = errors.New("missing archive record")
	ErrRecord          = errors.New("bad archive record")
	ErrByteOrder       = errors.New("unsupported byte order")
	ErrTooLarge        = errors.New("too large")
	ErrOpcode          = errors.New("unsupported pickle opcode")
	ErrTruncated       = errors.New("truncated pickle")
	ErrForbiddenGlobal = errors.New("forbidden global")
	ErrMemo            = errors.New("bad memo reference")
	ErrStackUnderflow  = errors.New("pickle stack underflow")
	ErrStructure       = errors.New("unexpected object structure")
	ErrMissingStorage  = errors.New("missing storage record")
	ErrStorageSize     = errors.New("storage record size mismatch")
	ErrNegative        = errors.New("negative size, stride or offset")
	ErrOverflow        = errors.New("integer overflow")
	ErrOutOfBounds     = errors.New("tensor out of storage bounds")
	ErrOverlap         = errors.New("overlapping tensor view")
	ErrDuplicate       = errors.New("duplicate name")
	ErrNotFound        = errors.New("tensor not found")
	ErrIndex           = errors.New("bad shard index")
)

// Error describes why a checkpoint was refused. Offset is a byte offset in
// Record (data.pkl for pickle errors), or -1 when no offset applies.
type Error struct {
	Path   string // the file as the caller named it
	Record string // archive record without the prefix ("data.pkl", "data/3"), if any
	Offset int64  // byte offset in Record, -1 if none
	Tensor string // tensor name, if any
	Kind   error  // one of the Err* sentinels
	Detail string // what exactly was wrong
	Err    error  // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("ptfile: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Record != "" {
		b.WriteString(e.Record)
		if e.Offset >= 0 {
			fmt.Fprintf(&b, " offset %d", e.Offset)
		}
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	if e.Detail != "" {
		b.WriteString(e.Detail)
	} else {
		b.WriteString(e.Kind.Error())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the sentinel Kind and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// printable renders a name read from a file for an error message: as is when
// it is plain text, quoted otherwise, and cut short so a hostile name cannot
// bloat the message.
func printable(s string) string {
	const max = 200
	clean := len(s) <= max
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
