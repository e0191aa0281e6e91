package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxLineBytes bounds one line of a JSON-lines file. LLaVA's question lines
// are a few hundred bytes; the cap keeps a corrupt file from growing one line
// without limit.
const maxLineBytes = 8 << 20

var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLineBytes)

// lineReader yields the lines of a file with their numbers and where they
// end, without holding more than one line.
type lineReader struct {
	br   *bufio.Reader
	buf  []byte
	num  int   // number of the line last returned, from 1
	used int64 // bytes consumed through the end of that line
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its "\n" (or "\r\n"), and whether it was
// terminated by one; an unterminated line can only be the last. It returns
// io.EOF when nothing is left. The slice is valid until the next call.
func (lr *lineReader) next() (line []byte, terminated bool, err error) {
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.br.ReadSlice('\n')
		lr.buf = append(lr.buf, chunk...)
		if len(lr.buf) > maxLineBytes {
			return nil, false, fmt.Errorf("line %d: %w", lr.num+1, errLineTooLong)
		}
		switch {
		case err == nil:
			lr.num++
			lr.used += int64(len(lr.buf))
			return bytes.TrimSuffix(lr.buf[:len(lr.buf)-1], []byte("\r")), true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(lr.buf) == 0 {
				return nil, false, io.EOF
			}
			lr.num++
			lr.used += int64(len(lr.buf))
			return lr.buf, false, nil
		default:
			return nil, false, err
		}
	}
}

// readJSONLines decodes every non-blank line of a JSON-lines stream into a
// fresh T and passes it to fn with its line number. Errors name the stream and
// the line.
func readJSONLines[T any](r io.Reader, name string, fn func(num int, v *T) error) error {
	lr := newLineReader(r)
	for {
		line, _, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("eval: %s: %w", name, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		v := new(T)
		if err := json.Unmarshal(line, v); err != nil {
			return fmt.Errorf("eval: %s:%d: %w", name, lr.num, err)
		}
		if err := fn(lr.num, v); err != nil {
			return fmt.Errorf("eval: %s:%d: %w", name, lr.num, err)
		}
	}
}

// jsonID is a question id written either as a JSON string or as a JSON
// integer (VQAv2, POPE and TextVQA use numbers, GQA strings); it keeps the
// text form. null leaves it empty, which callers reject as missing.
type jsonID string

func (id *jsonID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = jsonID(s)
		return nil
	}
	digits := b
	if len(digits) > 1 && digits[0] == '-' {
		digits = digits[1:]
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return fmt.Errorf("id %s is neither a string nor an integer", b)
		}
	}
	if len(digits) == 0 {
		return fmt.Errorf("id %q is neither a string nor an integer", b)
	}
	*id = jsonID(b)
	return nil
}

// The official question files are single JSON documents of up to a few
// hundred megabytes (v2_mscoco_val2014_annotations.json); they are walked
// token by token so only one record at a time is decoded.

// forEachKey walks the object at the decoder's position, calling fn with each
// key; fn must consume the key's value (decode it or skipValue).
func forEachKey(dec *json.Decoder, fn func(key string) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key is %v", tok)
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

// forEachElem walks the array at the decoder's position, calling fn with each
// index; fn must consume the element.
func forEachElem(dec *json.Decoder, fn func(i int) error) error {
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for i := 0; dec.More(); i++ {
		if err := fn(i); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("found %v where %q was expected", tok, want)
	}
	return nil
}

func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	return dec.Decode(&raw)
}

// decodeDocument walks one JSON document: fn consumes the top-level value,
// and nothing but white space may follow it.
func decodeDocument(r io.Reader, name string, fn func(dec *json.Decoder) error) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	if err := fn(dec); err != nil {
		return fmt.Errorf("eval: %s: near byte %d: %w", name, dec.InputOffset(), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("eval: %s: data after the JSON document (offset %d)", name, dec.InputOffset())
	}
	return nil
}

// withFile opens path and hands it to fn.
func withFile(path string, fn func(r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	return fn(f)
}
