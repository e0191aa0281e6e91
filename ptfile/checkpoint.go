package ptfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/avq/avq/tensor"
)

// The file names transformers gives a pickle checkpoint (WEIGHTS_NAME and
// WEIGHTS_INDEX_NAME in transformers/utils/__init__.py).
const (
	weightsName      = "pytorch_model.bin"
	weightsIndexName = "pytorch_model.bin.index.json"
)

// maxIndexBytes bounds the index JSON read into memory; a 7B model's index
// is about 30 KB.
const maxIndexBytes = 64 << 20

// Checkpoint is a model's weights, in one torch.save file or sharded over
// several with an index. Tensor names are unique across shards.
type Checkpoint struct {
	files []*File
	names []string         // sorted
	where map[string]*File // tensor name -> the file holding it
}

// OpenCheckpoint opens a directory holding pytorch_model.bin.index.json or
// pytorch_model.bin, an index file (*.json), or a single .bin file. A
// sharded checkpoint must agree with its index: every name the weight_map
// lists is in the shard it names, and every tensor of a shard is listed
// there.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Path: path, Offset: -1, Kind: ErrOpen, Err: err}
	}
	if st.IsDir() {
		index := filepath.Join(path, weightsIndexName)
		if _, err := os.Stat(index); err == nil {
			return openIndex(index)
		}
		single := filepath.Join(path, weightsName)
		if _, err := os.Stat(single); err != nil {
			return nil, &Error{Path: path, Offset: -1, Kind: ErrOpen, Err: fs.ErrNotExist,
				Detail: fmt.Sprintf("directory has neither %s nor %s", weightsIndexName, weightsName)}
		}
		path = single
	} else if strings.HasSuffix(path, ".json") {
		return openIndex(path)
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{files: []*File{f}, names: slices.Sorted(slices.Values(f.names)), where: make(map[string]*File, len(f.names))}
	for _, n := range f.names {
		c.where[n] = f
	}
	return c, nil
}

// shardIndex is the JSON transformers writes next to sharded weights.
type shardIndex struct {
	Metadata  json.RawMessage   `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

func openIndex(path string) (*Checkpoint, error) {
	fail := func(format string, args ...any) *Error {
		return &Error{Path: path, Offset: -1, Kind: ErrIndex, Detail: fmt.Sprintf(format, args...)}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Path: path, Offset: -1, Kind: ErrOpen, Err: err}
	}
	if st.Size() > maxIndexBytes {
		return nil, &Error{Path: path, Offset: -1, Kind: ErrTooLarge, Detail: fmt.Sprintf("index of %d bytes", st.Size())}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Path: path, Offset: -1, Kind: ErrOpen, Err: err}
	}
	var idx shardIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		e := fail("not a shard index")
		e.Err = err
		return nil, e
	}
	if len(idx.WeightMap) == 0 {
		return nil, fail("no weight_map entries")
	}
	shards := make(map[string]bool)
	for name, shard := range idx.WeightMap {
		// A shard is a file next to the index; never follow a path elsewhere.
		if shard == "" || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) || filepath.IsAbs(shard) {
			return nil, fail("weight_map[%q] = %s is not a file name in the index's directory", printable(name), printable(shard))
		}
		shards[shard] = true
	}
	c := &Checkpoint{where: make(map[string]*File, len(idx.WeightMap))}
	dir := filepath.Dir(path)
	for _, shard := range slices.Sorted(maps.Keys(shards)) {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.files = append(c.files, f)
		for _, n := range f.names {
			if idx.WeightMap[n] != shard {
				c.Close()
				return nil, fail("shard %s holds tensor %q, which the weight_map puts in %q", shard, printable(n), printable(idx.WeightMap[n]))
			}
			c.where[n] = f
		}
	}
	for name, shard := range idx.WeightMap {
		if _, ok := c.where[name]; !ok {
			c.Close()
			return nil, fail("weight_map puts tensor %q in %s, which does not hold it", printable(name), shard)
		}
	}
	c.names = slices.Sorted(maps.Keys(c.where))
	return c, nil
}

// Names lists every tensor, sorted.
func (c *Checkpoint) Names() []string { return slices.Clone(c.names) }

// Info describes a tensor without reading its data.
func (c *Checkpoint) Info(name string) (Info, bool) {
	f, ok := c.where[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Tensor returns a tensor's values; see File.Tensor.
func (c *Checkpoint) Tensor(name string) (*tensor.Tensor, error) {
	f, ok := c.where[name]
	if !ok {
		return nil, &Error{Offset: -1, Tensor: name, Kind: ErrNotFound, Detail: "no such tensor in the checkpoint"}
	}
	return f.Tensor(name)
}

// Close closes every file of the checkpoint.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
