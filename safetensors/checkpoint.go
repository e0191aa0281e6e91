package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/avq/avq/tensor"
)

// File names a Hugging Face model directory uses (transformers
// SAFE_WEIGHTS_NAME and SAFE_WEIGHTS_INDEX_NAME).
const (
	IndexFileName  = "model.safetensors.index.json"
	SingleFileName = "model.safetensors"
)

// Checkpoint is one file or a sharded set behind model.safetensors.index.json.
// Every shard is opened and its header validated up front; tensor bytes stay
// in the mappings until asked for.
type Checkpoint struct {
	path     string
	files    []*File          // distinct shards, in the order the index first names them
	owner    map[string]*File // tensor name → the shard holding it
	names    []string         // sorted
	metadata map[string]string
}

// OpenCheckpoint opens path, which is a directory (model.safetensors.index.json,
// else model.safetensors, else its only *.safetensors file), an index .json,
// or one .safetensors file.
//
// For an index, every tensor it lists must be in the shard it names, and no
// tensor may be in two shards. A shard may hold tensors the index does not
// list (transformers loads whole shards, so it tolerates them); they are part
// of the checkpoint.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, withPath(err, path)
	}
	switch {
	case st.IsDir():
		if path, err = findCheckpoint(path); err != nil {
			return nil, err
		}
	case !st.Mode().IsRegular():
		return nil, &Error{Path: path, Kind: ErrNoCheckpoint, Detail: "not a directory or a regular file"}
	}
	if strings.HasSuffix(path, ".json") {
		return openIndex(path)
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{path: path, files: []*File{f}, owner: make(map[string]*File), metadata: f.metadata}
	for _, info := range f.infos {
		c.owner[info.Name] = f
	}
	c.names = slices.Sorted(maps.Keys(c.owner))
	return c, nil
}

// findCheckpoint picks the checkpoint file of a model directory.
func findCheckpoint(dir string) (string, error) {
	for _, name := range []string{IndexFileName, SingleFileName} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", withPath(err, dir)
	}
	var found []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".safetensors") && e.Type().IsRegular() {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 1:
		return filepath.Join(dir, found[0]), nil
	case 0:
		return "", &Error{Path: dir, Kind: ErrNoCheckpoint, Detail: "no " + IndexFileName + ", " + SingleFileName + " or other .safetensors file"}
	}
	return "", &Error{Path: dir, Kind: ErrNoCheckpoint,
		Detail: fmt.Sprintf("%d .safetensors files (%s) and no %s to say how they go together", len(found), strings.Join(found, ", "), IndexFileName)}
}

// openIndex opens the shards an index names and checks that they agree with it.
func openIndex(path string) (_ *Checkpoint, err error) {
	weightMap, metadata, err := readIndex(path)
	if err != nil {
		return nil, withPath(err, path)
	}
	c := &Checkpoint{path: path, owner: make(map[string]*File), metadata: metadata}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	dir := filepath.Dir(path)
	shards := make(map[string]*File) // cleaned shard path → file, so each opens once
	shardOf := make([]*File, len(weightMap))
	for i, wm := range weightMap {
		p := filepath.Join(dir, filepath.FromSlash(wm.shard))
		f, ok := shards[p]
		if !ok {
			if f, err = Open(p); err != nil {
				return nil, err
			}
			shards[p] = f
			c.files = append(c.files, f)
		}
		shardOf[i] = f
	}
	for _, f := range c.files {
		for _, info := range f.infos {
			if prev, dup := c.owner[info.Name]; dup {
				return nil, &Error{Path: path, Tensor: info.Name, Kind: ErrDuplicateName,
					Detail: fmt.Sprintf("held by both shard %s and shard %s", prev.path, f.path)}
			}
			c.owner[info.Name] = f
		}
	}
	for i, wm := range weightMap {
		f := shardOf[i]
		if holder := c.owner[wm.tensor]; holder != f {
			detail := fmt.Sprintf("the index puts it in shard %s, which does not hold it", f.path)
			if holder != nil {
				detail += " (shard " + holder.path + " does)"
			}
			return nil, &Error{Path: path, Tensor: wm.tensor, Kind: ErrTensorNotFound, Detail: detail}
		}
	}
	c.names = slices.Sorted(maps.Keys(c.owner))
	return c, nil
}

type weightMapEntry struct{ tensor, shard string }

// readIndex parses {"metadata": {...}, "weight_map": {tensor: shard file}}.
// Unknown top-level keys are ignored, as transformers ignores them.
func readIndex(path string) ([]weightMapEntry, map[string]string, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	// Same bound as a safetensors header: an index names each tensor once.
	b, err := io.ReadAll(io.LimitReader(fd, MaxHeaderSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > MaxHeaderSize {
		return nil, nil, newError(ErrInvalidIndex, "", "index exceeds %d bytes", MaxHeaderSize)
	}
	return parseIndex(b)
}

// parseIndex is readIndex's parser proper, on the index's bytes.
func parseIndex(b []byte) ([]weightMapEntry, map[string]string, error) {
	if !utf8.Valid(b) {
		return nil, nil, newError(ErrInvalidIndex, "", "index is not valid UTF-8")
	}
	if err := json.Unmarshal(b, &struct{}{}); err != nil {
		return nil, nil, newError(ErrInvalidIndex, "", "index is not a JSON object: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.Token() // '{': Unmarshal into a struct accepted it
	var (
		weightMap []weightMapEntry
		metadata  map[string]string
		seen      = make(map[string]bool)
	)
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, nil, newError(ErrInvalidIndex, "", "key: %v", err)
		}
		if seen[key] {
			return nil, nil, newError(ErrInvalidIndex, "", "key %q appears twice", key)
		}
		seen[key] = true
		switch key {
		case "weight_map":
			weightMap, err = parseWeightMap(dec)
		case "metadata":
			metadata, err = parseIndexMetadata(dec)
		default:
			err = skipValue(dec)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if !seen["weight_map"] || len(weightMap) == 0 {
		return nil, nil, newError(ErrInvalidIndex, "", "no weight_map or an empty one")
	}
	return weightMap, metadata, nil
}

func parseWeightMap(dec *json.Decoder) ([]weightMapEntry, error) {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, newError(ErrInvalidIndex, "", "weight_map is %s, not an object", describe(tok))
	}
	var entries []weightMapEntry
	seen := make(map[string]bool)
	for dec.More() {
		name, err := stringToken(dec)
		if err != nil {
			return nil, newError(ErrInvalidIndex, "", "weight_map key: %v", err)
		}
		if seen[name] {
			return nil, newError(ErrDuplicateName, name, "weight_map lists it twice")
		}
		seen[name] = true
		tok, err := dec.Token()
		shard, ok := tok.(string)
		if err != nil || !ok {
			return nil, newError(ErrInvalidIndex, name, "weight_map value is %s, not a file name", describe(tok))
		}
		// Shards live next to the index: a path that leaves the directory is
		// refused rather than followed.
		if !filepath.IsLocal(filepath.FromSlash(shard)) {
			return nil, newError(ErrInvalidIndex, name, "shard %q is not a file name inside the index's directory", shard)
		}
		entries = append(entries, weightMapEntry{name, shard})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, newError(ErrInvalidIndex, "", "weight_map: %v", err)
	}
	return entries, nil
}

// parseIndexMetadata reads the index's free-form "metadata" object: string
// values as they are, any other value as its compact JSON text (so
// "total_size": 123 reads "123").
func parseIndexMetadata(dec *json.Decoder) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, newError(ErrInvalidIndex, "", "metadata is not an object")
		}
		return nil, newError(ErrInvalidIndex, "", "metadata: %v", err)
	}
	if raw == nil {
		return nil, nil
	}
	md := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			md[k] = s
			continue
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return nil, newError(ErrInvalidIndex, "", "metadata[%q]: %v", k, err)
		}
		md[k] = buf.String()
	}
	return md, nil
}

// Path is the file the checkpoint was opened from (the index for a sharded
// one).
func (c *Checkpoint) Path() string { return c.path }

// Names lists every tensor of every shard, sorted.
func (c *Checkpoint) Names() []string { return slices.Clone(c.names) }

// Info describes the named tensor; ok is false when no shard holds it.
func (c *Checkpoint) Info(name string) (Info, bool) {
	f, ok := c.owner[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// FileOf is the path of the shard holding name, or "" when none does.
func (c *Checkpoint) FileOf(name string) string {
	if f, ok := c.owner[name]; ok {
		return f.path
	}
	return ""
}

// Tensor returns the named tensor from its shard (see File.Tensor).
func (c *Checkpoint) Tensor(name string) (*tensor.Tensor, error) {
	f, ok := c.owner[name]
	if !ok {
		return nil, &Error{Path: c.path, Tensor: name, Kind: ErrTensorNotFound, Detail: "no such tensor in the checkpoint"}
	}
	return f.Tensor(name)
}

// Metadata is the index's "metadata" (values stringified) or the single
// file's __metadata__; nil when there is none. The map is a copy.
func (c *Checkpoint) Metadata() map[string]string { return maps.Clone(c.metadata) }

// Close closes every shard and returns the first error.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
