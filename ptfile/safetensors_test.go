package ptfile

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"testing"
)

// stTensor is one tensor of a safetensors file, read by readSafetensors.
type stTensor struct {
	DType string
	Shape []int
	Data  []byte
}

// readSafetensors is a minimal reader for the reference files (there is no
// safetensors package in the repo to use from a leaf package's tests): an
// 8-byte little-endian header length, a JSON header, then the data.
func readSafetensors(t *testing.T, path string) map[string]stTensor {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 8 {
		t.Fatalf("%s: %d bytes", path, len(raw))
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > uint64(len(raw)-8) {
		t.Fatalf("%s: header of %d bytes", path, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data := raw[8+n:]
	out := make(map[string]stTensor)
	for name, h := range header {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType       string   `json:"dtype"`
			Shape       []int    `json:"shape"`
			DataOffsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(h, &e); err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) {
			t.Fatalf("%s: %s: offsets %v", path, name, e.DataOffsets)
		}
		out[name] = stTensor{DType: e.DType, Shape: e.Shape, Data: data[lo:hi]}
	}
	return out
}
