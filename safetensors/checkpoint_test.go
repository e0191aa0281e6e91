package safetensors

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/avq/avq/tensor"
)

// shardedDir writes two shards and an index naming every tensor, and returns
// the directory and the tensors by name.
func shardedDir(t *testing.T) (string, map[string]*tensor.Tensor) {
	t.Helper()
	dir := t.TempDir()
	want := map[string]*tensor.Tensor{
		"model.b.weight": patterned(tensor.F32, 1, 3, 2),
		"model.a.weight": patterned(tensor.F16, 2, 4),
		"lm_head.weight": patterned(tensor.BF16, 3, 2, 2),
	}
	writeShard(t, dir, "model-00001-of-00002.safetensors", want, "model.b.weight", "model.a.weight")
	writeShard(t, dir, "model-00002-of-00002.safetensors", want, "lm_head.weight")
	writeIndex(t, dir, map[string]string{
		"model.b.weight": "model-00001-of-00002.safetensors",
		"model.a.weight": "model-00001-of-00002.safetensors",
		"lm_head.weight": "model-00002-of-00002.safetensors",
	})
	return dir, want
}

func writeShard(t *testing.T, dir, name string, tensors map[string]*tensor.Tensor, names ...string) {
	t.Helper()
	var entries []Entry
	for _, n := range names {
		entries = append(entries, Entry{Name: n, T: tensors[n]})
	}
	if err := WriteFile(filepath.Join(dir, name), entries, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

func writeIndex(t *testing.T, dir string, weightMap map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"metadata":   map[string]any{"total_size": 44, "format": "pt", "nested": map[string]any{"a": []int{1, 2}}},
		"weight_map": weightMap,
	})
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, filepath.Join(dir, IndexFileName), string(b))
}

func writeRaw(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestShardedCheckpoint(t *testing.T) {
	dir, want := shardedDir(t)
	for _, path := range []string{dir, filepath.Join(dir, IndexFileName)} {
		c, err := OpenCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, wantNames := c.Names(), slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantNames) {
			t.Errorf("Names = %q, want %q", got, wantNames)
		}
		if len(c.files) != 2 {
			t.Errorf("%d shards opened, want 2 (one per distinct file)", len(c.files))
		}
		for name, w := range want {
			got, err := c.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			if got.DType() != w.DType() || !got.Shape().Equal(w.Shape()) || !bytes.Equal(got.Bytes(), w.Bytes()) {
				t.Errorf("%s: got %v, want %v", name, got, w)
			}
			info, ok := c.Info(name)
			if !ok || info.DType != w.DType() {
				t.Errorf("Info(%s) = %+v, %v", name, info, ok)
			}
		}
		if got := c.FileOf("lm_head.weight"); got != filepath.Join(dir, "model-00002-of-00002.safetensors") {
			t.Errorf("FileOf(lm_head.weight) = %s", got)
		}
		if got := c.FileOf("missing"); got != "" {
			t.Errorf("FileOf(missing) = %q", got)
		}
		wantMD := map[string]string{"total_size": "44", "format": "pt", "nested": `{"a":[1,2]}`}
		if got := c.Metadata(); !maps.Equal(got, wantMD) {
			t.Errorf("Metadata = %q, want %q", got, wantMD)
		}
		_, err = c.Tensor("missing")
		checkErr(t, err, ErrTensorNotFound, path, "missing")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A shard may hold tensors the index does not list; they belong to the
// checkpoint.
func TestShardWithUnlistedTensor(t *testing.T) {
	dir, want := shardedDir(t)
	want["extra"] = patterned(tensor.U8, 4, 3)
	writeShard(t, dir, "model-00002-of-00002.safetensors", want, "lm_head.weight", "extra")
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Tensor("extra"); err != nil {
		t.Fatal(err)
	}
	if len(c.Names()) != 4 {
		t.Errorf("Names = %q", c.Names())
	}
}

func TestShardedCheckpointErrors(t *testing.T) {
	index := func(dir string) string { return filepath.Join(dir, IndexFileName) }
	t.Run("index names a tensor its shard lacks", func(t *testing.T) {
		dir, want := shardedDir(t)
		writeShard(t, dir, "model-00001-of-00002.safetensors", want, "model.b.weight")
		writeShard(t, dir, "model-00002-of-00002.safetensors", want, "lm_head.weight", "model.a.weight")
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrTensorNotFound, index(dir), "model.a.weight")
		checkErr(t, err, ErrTensorNotFound, "model-00001-of-00002.safetensors", "") // the shard the index names
		checkErr(t, err, ErrTensorNotFound, "model-00002-of-00002.safetensors", "") // the shard that has it
	})
	t.Run("index names a tensor no shard holds", func(t *testing.T) {
		dir, want := shardedDir(t)
		writeShard(t, dir, "model-00001-of-00002.safetensors", want, "model.b.weight")
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrTensorNotFound, index(dir), "model.a.weight")
		checkErr(t, err, ErrTensorNotFound, "model-00001-of-00002.safetensors", "")
	})
	t.Run("tensor in two shards", func(t *testing.T) {
		dir, want := shardedDir(t)
		writeShard(t, dir, "model-00002-of-00002.safetensors", want, "lm_head.weight", "model.a.weight")
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrDuplicateName, index(dir), "model.a.weight")
		checkErr(t, err, ErrDuplicateName, "model-00001-of-00002.safetensors", "")
		checkErr(t, err, ErrDuplicateName, "model-00002-of-00002.safetensors", "")
	})
	t.Run("damaged shard", func(t *testing.T) {
		dir, _ := shardedDir(t)
		shard := filepath.Join(dir, "model-00002-of-00002.safetensors")
		b, _ := os.ReadFile(shard)
		writeRaw(t, shard, string(b[:len(b)-1]))
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, ErrTruncated, shard, "lm_head.weight")
	})
	t.Run("missing shard", func(t *testing.T) {
		dir, _ := shardedDir(t)
		shard := filepath.Join(dir, "model-00002-of-00002.safetensors")
		os.Remove(shard)
		_, err := OpenCheckpoint(dir)
		checkErr(t, err, os.ErrNotExist, shard, "")
	})
	for _, c := range badIndexes {
		path := filepath.Join(t.TempDir(), IndexFileName)
		writeRaw(t, path, c.text)
		_, err := OpenCheckpoint(path)
		t.Run(c.name, func(t *testing.T) { checkErr(t, err, c.kind, path, c.tensor) })
	}
}

var badIndexes = []struct {
	name, text string
	kind       error
	tensor     string
}{
	{"not JSON", `{"weight_map":`, ErrInvalidIndex, ""},
	{"array", `[]`, ErrInvalidIndex, ""},
	{"null", `null`, ErrInvalidIndex, ""},
	{"no weight_map", `{"metadata":{}}`, ErrInvalidIndex, ""},
	{"empty weight_map", `{"weight_map":{}}`, ErrInvalidIndex, ""},
	{"weight_map twice", `{"weight_map":{"a":"x.safetensors"},"weight_map":{"b":"x.safetensors"}}`, ErrInvalidIndex, ""},
	{"tensor listed twice", `{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}`, ErrDuplicateName, "a"},
	{"shard not a string", `{"weight_map":{"a":1}}`, ErrInvalidIndex, "a"},
	{"shard outside the directory", `{"weight_map":{"a":"../x.safetensors"}}`, ErrInvalidIndex, "a"},
	{"absolute shard path", `{"weight_map":{"a":"/etc/x.safetensors"}}`, ErrInvalidIndex, "a"},
	{"metadata not an object", `{"metadata":[1],"weight_map":{"a":"x.safetensors"}}`, ErrInvalidIndex, ""},
	{"not UTF-8", "{\"weight_map\":{\"a\xff\":\"x.safetensors\"}}", ErrInvalidIndex, ""},
}

func TestCheckpointDirectoryChoice(t *testing.T) {
	x := map[string]*tensor.Tensor{"x": patterned(tensor.F32, 0, 2)}

	c, err := OpenCheckpoint("../testdata/tiny-llava")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Names()) != 96 || c.Metadata()["format"] != "pt" || c.FileOf("language_model.lm_head.weight") != tinyLlava {
		t.Errorf("tiny-llava: %d names, metadata %q, lm_head in %q", len(c.Names()), c.Metadata(), c.FileOf("language_model.lm_head.weight"))
	}
	c.Close()

	// A directory with one differently named file (a PEFT adapter) uses it.
	one := t.TempDir()
	writeShard(t, one, "adapter_model.safetensors", x, "x")
	if c, err := OpenCheckpoint(one); err != nil || c.FileOf("x") != filepath.Join(one, "adapter_model.safetensors") {
		t.Fatalf("single other file: %v", err)
	} else {
		c.Close()
	}
	// model.safetensors wins over other files.
	writeShard(t, one, SingleFileName, map[string]*tensor.Tensor{"y": x["x"]}, "y")
	if c, err := OpenCheckpoint(one); err != nil || c.FileOf("y") == "" {
		t.Fatalf("model.safetensors beside another file: %v", err)
	} else {
		c.Close()
	}
	// Two candidates and nothing to choose between them.
	two := t.TempDir()
	writeShard(t, two, "a.safetensors", x, "x")
	writeShard(t, two, "b.safetensors", x, "x")
	_, err = OpenCheckpoint(two)
	checkErr(t, err, ErrNoCheckpoint, two, "")
	_, err = OpenCheckpoint(t.TempDir())
	checkErr(t, err, ErrNoCheckpoint, "", "")
	// A single file path.
	if c, err := OpenCheckpoint(alignedVQ); err != nil || c.Metadata()["format"] != "alignedvq" || c.Path() != alignedVQ {
		t.Fatalf("single file: %v", err)
	} else {
		c.Close()
	}
}

// Two spellings of one shard open it once, so its tensors are not "in two
// shards".
func TestShardSpelledTwoWays(t *testing.T) {
	dir, _ := shardedDir(t)
	writeIndex(t, dir, map[string]string{
		"model.b.weight": "model-00001-of-00002.safetensors",
		"model.a.weight": "./model-00001-of-00002.safetensors",
		"lm_head.weight": "model-00002-of-00002.safetensors",
	})
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.files) != 2 {
		t.Errorf("%d shards opened, want 2", len(c.files))
	}
}
