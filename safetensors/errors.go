package safetensors

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of failure. Every error this package returns is an *Error whose Kind is
// one of these (or an I/O error from the operating system), so callers test
// with errors.Is.
var (
	ErrHeaderTooLarge   = errors.New("safetensors: header too large")
	ErrInvalidHeader    = errors.New("safetensors: invalid header")
	ErrInvalidOffset    = errors.New("safetensors: invalid data offsets")
	ErrOverflow         = errors.New("safetensors: size overflows")
	ErrUnsupportedDType = errors.New("safetensors: unsupported dtype")
	ErrTensorNotFound   = errors.New("safetensors: tensor not found")
	ErrDuplicateName    = errors.New("safetensors: duplicate name")
	ErrTruncated        = errors.New("safetensors: file truncated")
	ErrInvalidMetadata  = errors.New("safetensors: invalid metadata")
	ErrShapeMismatch    = errors.New("safetensors: shape and dtype disagree with the byte range")
	ErrInvalidIndex     = errors.New("safetensors: invalid checkpoint index")
	ErrNoCheckpoint     = errors.New("safetensors: no checkpoint found")
	ErrClosed           = errors.New("safetensors: file already closed")
)

// Error is a failure tied to a file and, where there is one, a tensor.
type Error struct {
	Path   string // file (or index, or directory) being read or written
	Tensor string // tensor name; empty when the failure is not about one tensor
	Kind   error  // one of the Err* values, or an underlying I/O error
	Detail string // what exactly was wrong, with the offending values
}

// Error reads e.g. `safetensors: model.safetensors: tensor "x.weight":
// offsets [0,8) overlap previous tensor "y"`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	switch {
	case e.Detail != "":
		b.WriteString(e.Detail)
	case e.Kind != nil:
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "safetensors: "))
	}
	return b.String()
}

// Unwrap returns Kind, so errors.Is(err, ErrInvalidOffset) works.
func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, tensor, format string, args ...any) *Error {
	return &Error{Tensor: tensor, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// withPath fills in the path of an *Error made below the file level, or wraps
// a foreign error (I/O) as one.
func withPath(err error, path string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Path == "" {
			e.Path = path
		}
		return e
	}
	return &Error{Path: path, Kind: err, Detail: err.Error()}
}
