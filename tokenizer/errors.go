package tokenizer

import (
	"errors"
	"fmt"
)

// Kinds of failure. Every error Load returns is an *Error whose Kind is one of
// these, so callers test with errors.Is.
var (
	// ErrMalformed: a file is not what its format says (bad protobuf wire
	// data, invalid JSON, a vocabulary that sentencepiece itself would refuse).
	ErrMalformed = errors.New("tokenizer: malformed file")
	// ErrUnsupported: a well-formed file asks for behaviour this package does
	// not implement (a unigram model, a precompiled normaliser, ...). It is
	// refused rather than silently approximated.
	ErrUnsupported = errors.New("tokenizer: unsupported feature")
	// ErrIO: a file could not be read.
	ErrIO = errors.New("tokenizer: cannot read file")
)

// Error is a failure tied to one file of a checkpoint folder.
type Error struct {
	Path   string // file being read; empty while the parser does not know it yet
	Kind   error  // ErrMalformed, ErrUnsupported or ErrIO
	Detail string // what exactly was wrong: field, byte offset, value
	Err    error  // underlying cause (protowire, encoding/json, os), or nil
}

// Error reads e.g. `tokenizer: x/tokenizer.model: pieces[7]: field 3 at byte
// 120: unexpected EOF`.
func (e *Error) Error() string {
	s := "tokenizer: "
	if e.Path != "" {
		s += e.Path + ": "
	}
	s += e.Detail
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is match both the kind and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func malformed(cause error, format string, args ...any) *Error {
	return &Error{Kind: ErrMalformed, Detail: fmt.Sprintf(format, args...), Err: cause}
}

func unsupported(format string, args ...any) *Error {
	return &Error{Kind: ErrUnsupported, Detail: fmt.Sprintf(format, args...)}
}

// inFile sets the path of err when it is an *Error that lacks one.
func inFile(path string, err error) error {
	var e *Error
	if errors.As(err, &e) && e.Path == "" {
		e.Path = path
		return e
	}
	return err
}
