package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/avq/avq/tensor"
)

// MaxHeaderSize is the largest header accepted, as in the reference reader
// (tensor.rs MAX_HEADER_SIZE): it bounds the JSON parse on hostile input.
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header key holding the free-form string map.
const metadataKey = "__metadata__"

// Info describes one tensor as the header declares it.
type Info struct {
	Name       string
	DType      tensor.DType
	Shape      tensor.Shape
	Begin, End int64 // byte range within the data section (after the 8-byte length and the header)
}

// ParseHeader validates a safetensors header. b holds the start of the file:
// the 8-byte length prefix and at least the header it announces (the whole
// file is fine); fileSize is the size of the whole file. It returns the tensors
// sorted by data offset, the __metadata__ map (nil when absent) and the file
// offset where the data section starts. It reads no tensor data: the byte
// ranges are checked against fileSize only.
func ParseHeader(b []byte, fileSize int64) (infos []Info, metadata map[string]string, dataStart int64, err error) {
	if len(b) < 8 {
		return nil, nil, 0, newError(ErrTruncated, "", "%d bytes is too short for the 8-byte header length", len(b))
	}
	n, err := headerLen([8]byte(b[:8]), fileSize)
	if err != nil {
		return nil, nil, 0, err
	}
	if int64(len(b)-8) < n {
		return nil, nil, 0, newError(ErrTruncated, "", "header of %d bytes but only %d bytes given", n, len(b)-8)
	}
	infos, metadata, err = parseHeaderJSON(b[8:8+n], fileSize-8-n)
	if err != nil {
		return nil, nil, 0, err
	}
	return infos, metadata, 8 + n, nil
}

// headerLen decodes and bounds the length prefix before anything is read or
// allocated for the header.
func headerLen(prefix [8]byte, fileSize int64) (int64, error) {
	if fileSize < 8 {
		return 0, newError(ErrTruncated, "", "file of %d bytes is too short for the 8-byte header length", fileSize)
	}
	u := binary.LittleEndian.Uint64(prefix[:])
	if u > MaxHeaderSize {
		return 0, newError(ErrHeaderTooLarge, "", "header length %d exceeds the %d-byte limit", u, MaxHeaderSize)
	}
	n := int64(u)
	if n > fileSize-8 {
		return 0, newError(ErrTruncated, "", "header length %d exceeds the %d bytes after the length prefix", n, fileSize-8)
	}
	return n, nil
}

// parseHeaderJSON parses the header text and checks every entry against a
// data section of dataSize bytes.
func parseHeaderJSON(hdr []byte, dataSize int64) ([]Info, map[string]string, error) {
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, newError(ErrInvalidHeader, "", "header does not start with '{'")
	}
	if !utf8.Valid(hdr) {
		return nil, nil, newError(ErrInvalidHeader, "", "header is not valid UTF-8")
	}
	// A full syntax check first: the token walk below then only has to judge
	// structure, and whatever follows the object can only be whitespace (the
	// reference accepts trailing spaces as padding).
	if err := json.Unmarshal(hdr, &struct{}{}); err != nil {
		return nil, nil, newError(ErrInvalidHeader, "", "header is not valid JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{' checked above
		return nil, nil, newError(ErrInvalidHeader, "", "header: %v", err)
	}
	var (
		infos    []Info
		metadata map[string]string
		seen     = make(map[string]bool)
	)
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, nil, newError(ErrInvalidHeader, "", "header key: %v", err)
		}
		// encoding/json, like serde, would silently keep the last of two equal
		// keys; the format forbids them, so the token walk checks.
		if seen[key] {
			return nil, nil, newError(ErrDuplicateName, key, "name appears twice in the header")
		}
		seen[key] = true
		if key == metadataKey {
			if metadata, err = parseMetadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		info, err := parseEntry(dec, key)
		if err != nil {
			return nil, nil, err
		}
		infos = append(infos, info)
	}
	if err := checkLayout(infos, dataSize); err != nil {
		return nil, nil, err
	}
	return infos, metadata, nil
}

// parseMetadata reads the __metadata__ value: an object of string values, or
// null (which serde reads as an absent map).
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, newError(ErrInvalidMetadata, "", "%s: %v", metadataKey, err)
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, newError(ErrInvalidMetadata, "", "%s is %s, not an object", metadataKey, describe(tok))
	}
	md := make(map[string]string)
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, newError(ErrInvalidMetadata, "", "%s key: %v", metadataKey, err)
		}
		if _, dup := md[key]; dup {
			return nil, newError(ErrInvalidMetadata, "", "%s key %q appears twice", metadataKey, key)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, newError(ErrInvalidMetadata, "", "%s[%q]: %v", metadataKey, key, err)
		}
		s, ok := tok.(string)
		if !ok {
			return nil, newError(ErrInvalidMetadata, "", "%s[%q] is %s, not a string", metadataKey, key, describe(tok))
		}
		md[key] = s
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, newError(ErrInvalidMetadata, "", "%s: %v", metadataKey, err)
	}
	return md, nil
}

// parseEntry reads one tensor's {"dtype", "shape", "data_offsets"} object and
// checks it on its own: known dtype, sizes that do not overflow, and a byte
// range exactly as long as shape × dtype size. Unknown fields are skipped, as
// serde does; repeated fields are refused, as serde's derive does.
func parseEntry(dec *json.Decoder, name string) (Info, error) {
	info := Info{Name: name}
	tok, err := dec.Token()
	if err != nil {
		return info, newError(ErrInvalidHeader, name, "%v", err)
	}
	if tok != json.Delim('{') {
		return info, newError(ErrInvalidHeader, name, "entry is %s, not an object", describe(tok))
	}
	var dtypeName string
	var dims, offsets []int64
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		field, err := stringToken(dec)
		if err != nil {
			return info, newError(ErrInvalidHeader, name, "field: %v", err)
		}
		var dup bool
		switch field {
		case "dtype":
			dup, haveDType = haveDType, true
			if !dup {
				tok, err := dec.Token()
				s, ok := tok.(string)
				if err != nil || !ok {
					return info, newError(ErrInvalidHeader, name, "dtype is %s, not a string", describe(tok))
				}
				dtypeName = s
			}
		case "shape":
			dup, haveShape = haveShape, true
			if !dup {
				if dims, err = intArray(dec, name, "shape"); err != nil {
					return info, err
				}
			}
		case "data_offsets":
			dup, haveOffsets = haveOffsets, true
			if !dup {
				if offsets, err = intArray(dec, name, "data_offsets"); err != nil {
					return info, err
				}
			}
		default:
			if err := skipValue(dec); err != nil {
				return info, newError(ErrInvalidHeader, name, "field %q: %v", field, err)
			}
		}
		if dup {
			return info, newError(ErrInvalidHeader, name, "field %q appears twice", field)
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return info, newError(ErrInvalidHeader, name, "%v", err)
	}
	switch {
	case !haveDType:
		return info, newError(ErrInvalidHeader, name, "missing dtype")
	case !haveShape:
		return info, newError(ErrInvalidHeader, name, "missing shape")
	case !haveOffsets:
		return info, newError(ErrInvalidHeader, name, "missing data_offsets")
	case len(offsets) != 2:
		return info, newError(ErrInvalidOffset, name, "data_offsets has %d values, want 2", len(offsets))
	}
	info.Begin, info.End = offsets[0], offsets[1]
	if info.End < info.Begin {
		return info, newError(ErrInvalidOffset, name, "data_offsets [%d,%d) end before they begin", info.Begin, info.End)
	}
	dt, ok := tensor.ParseDType(dtypeName)
	if !ok {
		return info, newError(ErrUnsupportedDType, name, "dtype %q is not supported", dtypeName)
	}
	info.DType = dt
	numel, ok := tensor.NumelChecked(dims)
	size := int64(dt.Size())
	if !ok || numel > math.MaxInt64/size {
		return info, newError(ErrOverflow, name, "shape %v of %v overflows the element or byte count", dims, dt)
	}
	nbytes := numel * size
	if int64(int(nbytes)) != nbytes {
		return info, newError(ErrOverflow, name, "%d bytes of %v%v do not fit this platform's int", nbytes, dt, dims)
	}
	info.Shape = make(tensor.Shape, len(dims))
	for i, d := range dims {
		info.Shape[i] = int(d)
		if int64(info.Shape[i]) != d {
			return info, newError(ErrOverflow, name, "shape %v does not fit this platform's int", dims)
		}
	}
	if got := info.End - info.Begin; got != nbytes {
		return info, newError(ErrShapeMismatch, name, "%v%v needs %d bytes but data_offsets [%d,%d) hold %d",
			dt, info.Shape, nbytes, info.Begin, info.End, got)
	}
	return info, nil
}

// checkLayout sorts infos by offset, as the reference does (older writers
// ordered entries by name), and checks that the ranges tile the data section
// [0, dataSize) with no gap, no overlap and nothing after the last tensor —
// the format's guard against polyglot files.
func checkLayout(infos []Info, dataSize int64) error {
	slices.SortStableFunc(infos, func(a, b Info) int {
		if c := compareInt64(a.Begin, b.Begin); c != 0 {
			return c
		}
		return compareInt64(a.End, b.End)
	})
	var end int64
	for i, info := range infos {
		switch {
		case info.Begin < end:
			return newError(ErrInvalidOffset, info.Name, "offsets [%d,%d) overlap previous tensor %q, which ends at %d",
				info.Begin, info.End, infos[i-1].Name, end)
		case info.Begin > end && i == 0:
			return newError(ErrInvalidOffset, info.Name, "offsets [%d,%d) leave bytes [0,%d) of the data section unused",
				info.Begin, info.End, info.Begin)
		case info.Begin > end:
			return newError(ErrInvalidOffset, info.Name, "offsets [%d,%d) leave a gap [%d,%d) after previous tensor %q",
				info.Begin, info.End, end, info.Begin, infos[i-1].Name)
		}
		end = info.End
	}
	last := ""
	if len(infos) > 0 {
		last = infos[len(infos)-1].Name
	}
	switch {
	case end > dataSize:
		return newError(ErrTruncated, last, "tensor data ends at %d but the data section holds only %d bytes", end, dataSize)
	case end < dataSize:
		return newError(ErrInvalidOffset, last, "%d trailing bytes after the last tensor's data (which ends at %d)", dataSize-end, end)
	}
	return nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// intArray reads an array of non-negative JSON integers. It bounds nothing
// itself: the array lives in a header of at most MaxHeaderSize bytes.
func intArray(dec *json.Decoder, name, field string) ([]int64, error) {
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return nil, newError(ErrInvalidHeader, name, "%s is %s, not an array", field, describe(tok))
	}
	vals := []int64{}
	for dec.More() {
		tok, err := dec.Token()
		num, ok := tok.(json.Number)
		if err != nil || !ok {
			return nil, newError(ErrInvalidHeader, name, "%s[%d] is %s, not an integer", field, len(vals), describe(tok))
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange) && num[0] != '-':
			return nil, newError(ErrOverflow, name, "%s[%d] = %s does not fit in 64 bits", field, len(vals), num)
		case err != nil || num[0] == '-':
			return nil, newError(ErrInvalidHeader, name, "%s[%d] = %s is not a non-negative integer", field, len(vals), num)
		}
		vals = append(vals, v)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, newError(ErrInvalidHeader, name, "%s: %v", field, err)
	}
	return vals, nil
}

// stringToken reads an object key.
func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("expected a string key, got %s", describe(tok))
	}
	return s, nil
}

// skipValue consumes one JSON value of any depth token by token, so unknown
// fields cost no allocation beyond their tokens.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// describe names a JSON token's kind for error messages.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + string(v)
	case string:
		return "a string"
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		if v == '[' {
			return "an array"
		}
	}
	return fmt.Sprintf("%v", tok)
}
