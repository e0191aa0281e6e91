package ptfile

import "fmt"

// The values a restricted unpickle builds. Strings, ints, floats and bools
// are Go values; the rest are the types below. No value ever refers to code.
type (
	none  struct{}
	tuple []any
	list  struct{ items []any }
	// dict keeps insertion order, like a Python dict; keys are strings, the
	// only keys a state dict has. The body is made on the first set, so an
	// EMPTY_DICT opcode costs 16 bytes.
	dict struct {
		ordered bool // an OrderedDict (REDUCE of collections.OrderedDict)
		body    *dictBody
	}
	dictBody struct {
		items []item
		index map[string]int // into items
	}
	item struct {
		key string
		val any
	}
)

// emptyTuple is pushed for EMPTY_TUPLE, so that it costs no allocation.
var emptyTuple any = tuple{}

func (d *dict) set(k string, v any) {
	if d.body == nil {
		d.body = &dictBody{index: make(map[string]int)}
	}
	b := d.body
	if i, ok := b.index[k]; ok {
		b.items[i].val = v // Python keeps the first position and the last value
		return
	}
	b.index[k] = len(b.items)
	b.items = appendDoubling(b.items, item{k, v})
}

// entries lists the items in insertion order.
func (d *dict) entries() []item {
	if d.body == nil {
		return nil
	}
	return d.body.items
}

// memo is the pickle memo. Indices are dense in practice (MEMOIZE always
// uses the next one, and BINPUT counts up from 0), so they live in a slice;
// any other index goes to a map, so that an absurd index costs one entry.
// Invariant: every key of sparse is >= len(dense).
type memo struct {
	dense  []any
	sparse map[uint64]any
}

func (m *memo) len() int { return len(m.dense) + len(m.sparse) }

func (m *memo) put(idx uint64, v any) {
	switch {
	case idx < uint64(len(m.dense)):
		m.dense[idx] = v
	case idx == uint64(len(m.dense)):
		m.dense = appendDoubling(m.dense, v)
		delete(m.sparse, idx)
	default:
		if m.sparse == nil {
			m.sparse = make(map[uint64]any)
		}
		m.sparse[idx] = v
	}
}

func (m *memo) get(idx uint64) (any, bool) {
	if idx < uint64(len(m.dense)) {
		return m.dense[idx], true
	}
	v, ok := m.sparse[idx]
	return v, ok
}

// appendDoubling is append with capacity doubling: append's gentler growth
// for large slices allocates about 5x the final size in all, doubling 2x.
// The stack, marks, memo, dicts and lists grow by up to a slot per input
// byte, so this factor is most of Open's allocation bound.
func appendDoubling[T any](s []T, v ...T) []T {
	if cap(s)-len(s) < len(v) {
		n := make([]T, len(s), max(2*cap(s), len(s)+len(v))+8)
		copy(n, s)
		s = n
	}
	return append(s, v...)
}

// typeName names a value's Python type for error messages without looking
// inside it (values can be cyclic).
func typeName(v any) string {
	switch v := v.(type) {
	case none:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case tuple:
		return "tuple"
	case *list:
		return "list"
	case *dict:
		if v.ordered {
			return "OrderedDict"
		}
		return "dict"
	case global:
		return v.String()
	case *storage:
		return "storage"
	case *tensorRef:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}
