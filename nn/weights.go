package nn

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// Source is a set of named tensors: a safetensors checkpoint, a PyTorch pickle
// checkpoint, or a renaming view of one.
type Source interface {
	Names() []string
	Tensor(name string) (*tensor.Tensor, error)
}

var (
	ErrMissingTensor = errors.New("missing tensor")
	ErrShape         = errors.New("wrong shape")
	ErrDType         = errors.New("unsupported dtype")
)

// Weights binds checkpoint tensors to layers under a name prefix. Sub scopes
// share one state: the first error and the set of tensors used.
type Weights struct {
	prefix string
	st     *loadState
}

type loadState struct {
	src     Source
	b       backend.Backend
	names   map[string]bool
	used    map[string]bool
	err     error
	adapter *Adapter
}

// NewWeights starts loading from src onto backend b. adapter may be nil.
func NewWeights(src Source, b backend.Backend, adapter *Adapter) *Weights {
	names := map[string]bool{}
	for _, n := range src.Names() {
		names[n] = true
	}
	return &Weights{st: &loadState{src: src, b: b, names: names, used: map[string]bool{}, adapter: adapter}}
}

// Sub is the scope prefix.name. (Numbers are formatted, so Sub("layers", 3)
// is "layers.3".)
func (w *Weights) Sub(parts ...any) *Weights {
	p := w.prefix
	for _, part := range parts {
		p += fmt.Sprint(part) + "."
	}
	return &Weights{prefix: p, st: w.st}
}

// Path is the full checkpoint name of name in this scope.
func (w *Weights) Path(name string) string { return w.prefix + name }

// Backend is the backend tensors are loaded onto.
func (w *Weights) Backend() backend.Backend { return w.st.b }

// Has reports whether the checkpoint holds name in this scope.
func (w *Weights) Has(name string) bool { return w.st.names[w.prefix+name] }

// Err is the first error any load in any scope recorded.
func (w *Weights) Err() error { return w.st.err }

// Fail records err (the first one wins) so that a load function can report
// a problem it finds itself, such as a config that contradicts the weights.
func (w *Weights) Fail(err error) {
	if w.st.err == nil {
		w.st.err = err
	}
}

// Host returns a required tensor as it is stored (on the host, not loaded onto
// the backend), checking its shape. It returns nil after an error.
func (w *Weights) Host(name string, shape ...int) *tensor.Tensor {
	full := w.prefix + name
	if w.st.err != nil {
		return nil
	}
	if !w.st.names[full] {
		w.Fail(fmt.Errorf("nn: tensor %q: %w%s", full, ErrMissingTensor, w.closest(full)))
		return nil
	}
	t, err := w.st.src.Tensor(full)
	if err != nil {
		w.Fail(fmt.Errorf("nn: tensor %q: %w", full, err))
		return nil
	}
	if !t.DType().IsFloat() || t.DType() == tensor.F64 {
		w.Fail(fmt.Errorf("nn: tensor %q: %w %v (want F32, F16 or BF16)", full, ErrDType, t.DType()))
		return nil
	}
	if shape != nil && !t.Shape().Equal(shape) {
		w.Fail(fmt.Errorf("nn: tensor %q: %w: %v, want %v", full, ErrShape, t.Shape(), tensor.Shape(shape)))
		return nil
	}
	w.st.used[full] = true
	return t
}

// Tensor loads a required tensor onto the backend, checking its shape.
func (w *Weights) Tensor(name string, shape ...int) backend.Tensor {
	t := w.Host(name, shape...)
	if t == nil {
		return nil
	}
	bt, err := w.st.b.Load(t)
	if err != nil {
		w.Fail(fmt.Errorf("nn: tensor %q: %w", w.prefix+name, err))
		return nil
	}
	return bt
}

// Unused lists the checkpoint tensors under prefix that no load has used,
// sorted. A model loader treats them as an error: they usually mean a naming
// bug or a config that does not match the weights.
func (w *Weights) Unused(prefix string) []string {
	var out []string
	for n := range w.st.names {
		if strings.HasPrefix(n, prefix) && !w.st.used[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// closest suggests up to three existing names that end like the missing one,
// which catches prefix mistakes ("model." versus none).
func (w *Weights) closest(missing string) string {
	parts := strings.Split(missing, ".")
	for k := min(len(parts), 3); k >= 1; k-- {
		suffix := strings.Join(parts[len(parts)-k:], ".")
		var found []string
		for n := range w.st.names {
			if strings.HasSuffix(n, "."+suffix) || n == suffix {
				found = append(found, n)
			}
		}
		if len(found) > 0 {
			sort.Strings(found)
			if len(found) > 3 {
				found = found[:3]
			}
			return " (closest: " + strings.Join(found, ", ") + ")"
		}
	}
	return ""
}
