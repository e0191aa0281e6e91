package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/avq/avq/tensor"
)

// validFile is a small well-formed file: "a" F32 [2] at [0,8), "b" U8 [4] at
// [8,12), with metadata.
func validFile(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := Write(&buf, []Entry{
		{Name: "a", T: tensor.FromF32([]float32{1.5, -2}, 2)},
		{Name: "b", T: patterned(tensor.U8, 0, 4)},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type malformedCase struct {
	name   string
	file   []byte
	kind   error
	tensor string // the tensor the error must name; "" when not about one
}

// entry is one header entry in JSON.
func entry(name, dtype, shape, offsets string) string {
	return `"` + name + `":{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offsets + `}`
}

// malformedFiles builds every damaged file the reader must refuse, by byte
// surgery on Write's output or from a hand-written header.
func malformedFiles(t testing.TB) []malformedCase {
	good := validFile(t)
	withLen := func(n uint64, rest []byte) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	data12 := make([]byte, 12)
	a := entry("a", "F32", "[2]", "[0,8]")
	return []malformedCase{
		{"empty file", nil, ErrTruncated, ""},
		{"shorter than the length prefix", good[:7], ErrTruncated, ""},
		{"truncated data", good[:len(good)-1], ErrTruncated, "b"},
		{"header longer than the file", withLen(uint64(len(good)), good[8:]), ErrTruncated, ""},
		{"header over 100 MB", withLen(MaxHeaderSize+1, good[8:]), ErrHeaderTooLarge, ""},
		{"header length 2^64-1", withLen(1<<64-1, good[8:]), ErrHeaderTooLarge, ""},
		{"empty header", rawFile("", nil), ErrInvalidHeader, ""},
		{"header not JSON", rawFile(`{"a":`, nil), ErrInvalidHeader, ""},
		{"header is a JSON array", rawFile(`[]`, nil), ErrInvalidHeader, ""},
		{"header starts with a space", rawFile(` {}`, nil), ErrInvalidHeader, ""},
		{"header with trailing garbage", rawFile(`{}  x`, nil), ErrInvalidHeader, ""},
		{"header with two objects", rawFile(`{} {}`, nil), ErrInvalidHeader, ""},
		{"header not UTF-8", rawFile("{\"a\xff\":{}}", nil), ErrInvalidHeader, ""},
		{"overlapping offsets", rawFile(`{`+a+`,`+entry("b", "F32", "[2]", "[4,12]")+`}`, data12), ErrInvalidOffset, "b"},
		{"same range twice", rawFile(`{`+a+`,`+entry("b", "F32", "[2]", "[0,8]")+`}`, data12[:8]), ErrInvalidOffset, "b"},
		{"gap between tensors", rawFile(`{`+a+`,`+entry("b", "U8", "[2]", "[10,12]")+`}`, data12), ErrInvalidOffset, "b"},
		{"gap before the first tensor", rawFile(`{`+entry("a", "U8", "[4]", "[8,12]")+`}`, data12), ErrInvalidOffset, "a"},
		{"trailing bytes after the data", append(good[:len(good):len(good)], 0), ErrInvalidOffset, "b"},
		{"data but no tensors", rawFile(`{}`, data12), ErrInvalidOffset, ""},
		{"end before begin", rawFile(`{`+entry("a", "U8", "[0]", "[8,0]")+`}`, nil), ErrInvalidOffset, "a"},
		{"one offset", rawFile(`{`+entry("a", "U8", "[0]", "[0]")+`}`, nil), ErrInvalidOffset, "a"},
		{"three offsets", rawFile(`{`+entry("a", "U8", "[0]", "[0,0,0]")+`}`, nil), ErrInvalidOffset, "a"},
		{"dtype disagrees with range", rawFile(`{`+entry("a", "F64", "[2]", "[0,8]")+`}`, data12[:8]), ErrShapeMismatch, "a"},
		{"shape disagrees with range", rawFile(`{`+entry("a", "F32", "[3]", "[0,8]")+`}`, data12[:8]), ErrShapeMismatch, "a"},
		{"unknown dtype F8_E4M3", rawFile(`{`+entry("a", "F8_E4M3", "[8]", "[0,8]")+`}`, data12[:8]), ErrUnsupportedDType, "a"},
		{"unknown dtype U32", rawFile(`{`+entry("a", "U32", "[2]", "[0,8]")+`}`, data12[:8]), ErrUnsupportedDType, "a"},
		{"lower-case dtype", rawFile(`{`+entry("a", "f32", "[2]", "[0,8]")+`}`, data12[:8]), ErrUnsupportedDType, "a"},
		{"duplicate name", rawFile(`{`+a+`,`+a+`}`, data12[:8]), ErrDuplicateName, "a"},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), ErrDuplicateName, metadataKey},
		{"number in metadata", rawFile(`{"__metadata__":{"k":1}}`, nil), ErrInvalidMetadata, ""},
		{"object in metadata", rawFile(`{"__metadata__":{"k":{"x":"y"}}}`, nil), ErrInvalidMetadata, ""},
		{"metadata is an array", rawFile(`{"__metadata__":["k"]}`, nil), ErrInvalidMetadata, ""},
		{"metadata is a string", rawFile(`{"__metadata__":"k"}`, nil), ErrInvalidMetadata, ""},
		{"metadata key twice", rawFile(`{"__metadata__":{"k":"1","k":"2"}}`, nil), ErrInvalidMetadata, ""},
		{"negative shape", rawFile(`{`+entry("a", "U8", "[-1]", "[0,0]")+`}`, nil), ErrInvalidHeader, "a"},
		{"float shape", rawFile(`{`+entry("a", "U8", "[2.0]", "[0,2]")+`}`, data12[:2]), ErrInvalidHeader, "a"},
		{"exponent shape", rawFile(`{`+entry("a", "U8", "[2e0]", "[0,2]")+`}`, data12[:2]), ErrInvalidHeader, "a"},
		{"string shape", rawFile(`{`+entry("a", "U8", `["2"]`, "[0,2]")+`}`, data12[:2]), ErrInvalidHeader, "a"},
		{"shape not an array", rawFile(`{`+entry("a", "U8", `2`, "[0,2]")+`}`, data12[:2]), ErrInvalidHeader, "a"},
		{"negative offset", rawFile(`{`+entry("a", "U8", "[2]", "[-2,0]")+`}`, nil), ErrInvalidHeader, "a"},
		{"float offset", rawFile(`{`+entry("a", "U8", "[2]", "[0,2.5]")+`}`, data12[:2]), ErrInvalidHeader, "a"},
		{"offset beyond 64 bits", rawFile(`{`+entry("a", "U8", "[2]", "[0,99999999999999999999]")+`}`, nil), ErrOverflow, "a"},
		{"dimension beyond 64 bits", rawFile(`{`+entry("a", "U8", "[18446744073709551616]", "[0,0]")+`}`, nil), ErrOverflow, "a"},
		{"element count overflows", rawFile(`{`+entry("a", "U8", "[4294967296,4294967296,4]", "[0,0]")+`}`, nil), ErrOverflow, "a"},
		{"byte count overflows", rawFile(`{`+entry("a", "F64", "[2305843009213693952]", "[0,0]")+`}`, nil), ErrOverflow, "a"},
		{"offsets far past the file", rawFile(`{`+entry("a", "U8", "[2000000000]", "[0,2000000000]")+`}`, nil), ErrTruncated, "a"},
		{"entry not an object", rawFile(`{"a":[1,2]}`, nil), ErrInvalidHeader, "a"},
		{"missing dtype", rawFile(`{"a":{"shape":[0],"data_offsets":[0,0]}}`, nil), ErrInvalidHeader, "a"},
		{"missing shape", rawFile(`{"a":{"dtype":"U8","data_offsets":[0,0]}}`, nil), ErrInvalidHeader, "a"},
		{"missing offsets", rawFile(`{"a":{"dtype":"U8","shape":[0]}}`, nil), ErrInvalidHeader, "a"},
		{"dtype twice", rawFile(`{"a":{"dtype":"U8","dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, nil), ErrInvalidHeader, "a"},
		{"dtype not a string", rawFile(`{"a":{"dtype":4,"shape":[0],"data_offsets":[0,0]}}`, nil), ErrInvalidHeader, "a"},
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range malformedFiles(t) {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.safetensors", c.file)
			_, err := Open(path)
			checkErr(t, err, c.kind, path, c.tensor)
			_, err = openSource(path, openReadAt(t, path))
			checkErr(t, err, c.kind, path, c.tensor)
			_, _, _, err = ParseHeader(c.file, int64(len(c.file)))
			checkErr(t, err, c.kind, "", c.tensor)
		})
	}
}

// Accepted variations: the reader is strict, but not stricter than the format.
func TestHeaderVariations(t *testing.T) {
	cases := []struct {
		name   string
		header string
		data   []byte
		names  []string
	}{
		{"no tensors", `{}`, nil, nil},
		{"trailing spaces", `{}      `, nil, nil},
		{"trailing newline", "{}\n", nil, nil},
		{"null metadata", `{"__metadata__":null}`, nil, nil},
		{"entries out of offset order", `{` + entry("b", "U8", "[2]", "[2,4]") + `,` + entry("a", "U8", "[2]", "[0,2]") + `}`,
			[]byte{1, 2, 3, 4}, []string{"a", "b"}},
		{"unknown field skipped", `{"a":{"x":{"y":[1,{"z":null}]},"dtype":"U8","shape":[],"data_offsets":[0,1]}}`, []byte{7}, []string{"a"}},
		{"whitespace inside", "{ \"a\" : { \"dtype\" : \"BOOL\" ,\n\"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 1 ] } }", []byte{1}, []string{"a"}},
		{"empty name", `{` + entry("", "U8", "[1]", "[0,1]") + `}`, []byte{1}, []string{""}},
		{"escaped name", `{` + entry(`a\"b\u00e9`, "U8", "[1]", "[0,1]") + `}`, []byte{1}, []string{"a\"bé"}},
		{"zero-size tensors share an offset", `{` + entry("a", "U8", "[0]", "[0,0]") + `,` + entry("b", "F32", "[0,5]", "[0,0]") + `,` +
			entry("c", "U8", "[1]", "[0,1]") + `}`, []byte{1}, []string{"a", "b", "c"}},
		{"zero dimension beside a huge one", `{` + entry("a", "U8", "[0,2147483647]", "[0,0]") + `}`, nil, []string{"a"}},
	}
	for _, c := range cases {
		b := rawFile(c.header, c.data)
		infos, _, dataStart, err := ParseHeader(b, int64(len(b)))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if dataStart != int64(8+len(c.header)) {
			t.Errorf("%s: data starts at %d, want %d", c.name, dataStart, 8+len(c.header))
		}
		var names []string
		for _, info := range infos {
			names = append(names, info.Name)
		}
		if strings.Join(names, "|") != strings.Join(c.names, "|") {
			t.Errorf("%s: names %q, want %q", c.name, names, c.names)
		}
	}
}

func TestParseHeaderShortBuffer(t *testing.T) {
	good := validFile(t)
	// Only the header is needed, not the data.
	_, md, dataStart, err := ParseHeader(good[:len(good)-12], int64(len(good)))
	if err != nil || md["format"] != "pt" || dataStart != int64(len(good)-12) {
		t.Fatalf("header-only buffer: md %v, dataStart %d, %v", md, dataStart, err)
	}
	_, _, _, err = ParseHeader(good[:20], int64(len(good)))
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("buffer shorter than the header: %v", err)
	}
}
