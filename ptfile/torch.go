package ptfile

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/avq/avq/tensor"
)

type globalKind uint8

const (
	orderedDict globalKind = iota + 1
	rebuildTensorV2
	rebuildParameter
	storageType
)

// global is an allowlisted name a GLOBAL or STACK_GLOBAL resolved to. It is
// only a tag: REDUCE dispatches on kind to Go code written here.
type global struct {
	kind   globalKind
	dtype  tensor.DType // for storageType
	module string
	name   string
}

func (g global) String() string { return g.module + "." + g.name }

// allowedGlobals is the whole allowlist. Storage classes map to dtypes as in
// torch/storage.py (_dtype_to_storage_type_map).
var allowedGlobals = func() map[string]global {
	m := map[string]global{
		"collections\nOrderedDict":         {kind: orderedDict},
		"torch._utils\n_rebuild_tensor_v2": {kind: rebuildTensorV2},
		"torch._utils\n_rebuild_parameter": {kind: rebuildParameter},
		"torch\nFloatStorage":              {kind: storageType, dtype: tensor.F32},
		"torch\nHalfStorage":               {kind: storageType, dtype: tensor.F16},
		"torch\nBFloat16Storage":           {kind: storageType, dtype: tensor.BF16},
		"torch\nDoubleStorage":             {kind: storageType, dtype: tensor.F64},
		"torch\nLongStorage":               {kind: storageType, dtype: tensor.I64},
		"torch\nIntStorage":                {kind: storageType, dtype: tensor.I32},
		"torch\nShortStorage":              {kind: storageType, dtype: tensor.I16},
		"torch\nCharStorage":               {kind: storageType, dtype: tensor.I8},
		"torch\nByteStorage":               {kind: storageType, dtype: tensor.U8},
		"torch\nBoolStorage":               {kind: storageType, dtype: tensor.Bool},
	}
	for k, g := range m {
		g.module, g.name, _ = strings.Cut(k, "\n")
		m[k] = g
	}
	return m
}()

func lookupGlobal(module, name string) (global, bool) {
	g, ok := allowedGlobals[module+"\n"+name]
	return g, ok
}

// storage is one data/<key> record, typed by the persistent id that named it.
type storage struct {
	key   string
	dtype tensor.DType
	numel int64
	rec   *record
}

// tensorRef is a validated view on a storage: every element it addresses
// lies inside the storage.
type tensorRef struct {
	st         *storage
	offset     int64 // elements
	shape      []int64
	strides    []int64 // elements
	numel      int64
	last       int64 // highest storage element addressed; -1 when empty
	contiguous bool
}

// torchState gives the unpickler its torch-specific semantics: persistent
// ids resolve to archive records, REDUCE runs only the allowlisted rebuilds.
type torchState struct {
	arch     *archive
	storages map[string]*storage
}

// persistentLoad follows torch/serialization.py (_load, persistent_load):
// the id is ('storage', StorageType, key, location, numel).
func (ts *torchState) persistentLoad(u *unpickler, pid any) (any, error) {
	t, ok := pid.(tuple)
	if !ok || len(t) != 5 {
		return nil, u.fail(ErrStructure, "persistent id is a %s, not a 5-tuple ('storage', type, key, location, numel)", describeTuple(pid))
	}
	if tag, _ := t[0].(string); tag != "storage" {
		return nil, u.fail(ErrStructure, "persistent id tag is not 'storage'")
	}
	g, ok := t[1].(global)
	key, ok2 := t[2].(string)
	loc, ok3 := t[3].(string)
	numel, ok4 := t[4].(int64)
	if !ok || g.kind != storageType || !ok2 || !ok3 || !ok4 {
		return nil, u.fail(ErrStructure, "persistent id holds (%s, %s, %s, %s, %s), want ('storage', StorageType, str, str, int)",
			typeName(t[0]), typeName(t[1]), typeName(t[2]), typeName(t[3]), typeName(t[4]))
	}
	if !validLocation(loc) {
		return nil, u.fail(ErrStructure, "storage %q: location %s is not cpu or cuda[:N]", printable(key), printable(loc))
	}
	if numel < 0 {
		return nil, u.fail(ErrNegative, "storage %q: numel %d", printable(key), numel)
	}
	if st, ok := ts.storages[key]; ok {
		if st.dtype != g.dtype || st.numel != numel {
			return nil, u.fail(ErrStructure, "storage %q used as %d x %v and as %d x %v", printable(key), st.numel, st.dtype, numel, g.dtype)
		}
		return st, nil
	}
	hi, nbytes := bits.Mul64(uint64(numel), uint64(g.dtype.Size()))
	if hi != 0 || nbytes > math.MaxInt64 {
		return nil, u.fail(ErrOverflow, "storage %q: %d x %d bytes overflows int64", printable(key), numel, g.dtype.Size())
	}
	rec, err := ts.arch.record("data/" + key)
	if err != nil {
		if errors.Is(err, ErrMissingRecord) {
			return nil, u.fail(ErrMissingStorage, "storage %q: the archive has no record data/%s", printable(key), printable(key))
		}
		return nil, err
	}
	if rec.size != int64(nbytes) {
		return nil, u.fail(ErrStorageSize, "storage %q: declared %d x %d bytes, record data/%s holds %d bytes",
			printable(key), numel, g.dtype.Size(), printable(key), rec.size)
	}
	st := &storage{key: key, dtype: g.dtype, numel: numel, rec: rec}
	ts.storages[key] = st
	return st, nil
}

// validLocation accepts "cpu", "cuda" and "cuda:N": where the tensor lived
// when saved. We always load to host memory, as map_location="cpu" does.
func validLocation(loc string) bool {
	if loc == "cpu" || loc == "cuda" {
		return true
	}
	n, ok := strings.CutPrefix(loc, "cuda:")
	if !ok || n == "" || len(n) > 4 {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 16)
	return err == nil
}

func (ts *torchState) reduce(u *unpickler, callable, args any) (any, error) {
	g, ok := callable.(global)
	if !ok {
		return nil, u.fail(ErrStructure, "REDUCE calls a %s", typeName(callable))
	}
	a, ok := args.(tuple)
	if !ok {
		return nil, u.fail(ErrStructure, "REDUCE of %s with a %s, not a tuple of arguments", g, typeName(args))
	}
	switch g.kind {
	case orderedDict:
		if len(a) != 0 {
			return nil, u.fail(ErrStructure, "collections.OrderedDict called with %d arguments, want none", len(a))
		}
		return &dict{ordered: true}, nil
	case rebuildTensorV2:
		return ts.rebuildTensor(u, a)
	case rebuildParameter:
		// _rebuild_parameter(data, requires_grad, backward_hooks)
		if len(a) != 3 {
			return nil, u.fail(ErrStructure, "torch._utils._rebuild_parameter called with %d arguments, want 3", len(a))
		}
		t, ok := a[0].(*tensorRef)
		_, ok2 := a[1].(bool)
		_, ok3 := a[2].(*dict)
		if !ok || !ok2 || !ok3 {
			return nil, u.fail(ErrStructure, "torch._utils._rebuild_parameter(%s, %s, %s), want (tensor, bool, OrderedDict)",
				typeName(a[0]), typeName(a[1]), typeName(a[2]))
		}
		return t, nil
	}
	return nil, u.fail(ErrStructure, "REDUCE calls %s, which is not a function", g)
}

// rebuildTensor checks the arguments of
// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
// backward_hooks[, metadata]) (torch/_utils.py) and the view they describe.
func (ts *torchState) rebuildTensor(u *unpickler, a tuple) (any, error) {
	if len(a) != 6 && len(a) != 7 {
		return nil, u.fail(ErrStructure, "torch._utils._rebuild_tensor_v2 called with %d arguments, want 6 or 7", len(a))
	}
	st, ok := a[0].(*storage)
	offset, ok2 := a[1].(int64)
	size, ok3 := intTuple(a[2])
	stride, ok4 := intTuple(a[3])
	_, ok5 := a[4].(bool)
	_, ok6 := a[5].(*dict)
	ok7 := true
	if len(a) == 7 {
		_, isNone := a[6].(none)
		_, isDict := a[6].(*dict)
		ok7 = isNone || isDict
	}
	if !ok || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 {
		return nil, u.fail(ErrStructure, "torch._utils._rebuild_tensor_v2(%s, %s, %s, %s, %s, %s, ...), want (storage, int, ints, ints, bool, OrderedDict[, dict])",
			typeName(a[0]), typeName(a[1]), describeTuple(a[2]), describeTuple(a[3]), typeName(a[4]), typeName(a[5]))
	}
	if len(size) != len(stride) {
		return nil, u.fail(ErrStructure, "size %s and stride %s differ in length", formatInts(size), formatInts(stride))
	}
	t, err := newTensorRef(st, offset, size, stride)
	if err != nil {
		err.Path, err.Record, err.Offset = u.path, "data.pkl", int64(u.op)
		return nil, err
	}
	return t, nil
}

// newTensorRef validates a view: the rules of torch's own checks in
// set_storage / computeStorageNbytes, with every product overflow-checked.
// The returned *Error has only Kind and Detail set.
func newTensorRef(st *storage, offset int64, size, stride []int64) (*tensorRef, *Error) {
	view := func() string {
		return fmt.Sprintf("offset %d size %s stride %s", offset, formatInts(size), formatInts(stride))
	}
	if offset < 0 {
		return nil, &Error{Kind: ErrNegative, Detail: "negative offset, size or stride: " + view()}
	}
	for i := range size {
		if size[i] < 0 || stride[i] < 0 {
			return nil, &Error{Kind: ErrNegative, Detail: "negative offset, size or stride: " + view()}
		}
	}
	// Sizes and byte counts must fit an int (they become a tensor.Shape),
	// which on 64-bit platforms is int64.
	numel := uint64(1)
	for _, d := range size {
		hi, lo := bits.Mul64(numel, uint64(d))
		if hi != 0 || lo > math.MaxInt/uint64(st.dtype.Size()) || d > math.MaxInt {
			return nil, &Error{Kind: ErrOverflow, Detail: "size " + formatInts(size) + ": element or byte count overflows int"}
		}
		numel = lo
	}
	t := &tensorRef{st: st, offset: offset, shape: size, strides: stride, numel: int64(numel), last: -1}
	if numel > 0 {
		last := uint64(offset)
		for i := range size {
			hi, span := bits.Mul64(uint64(size[i]-1), uint64(stride[i]))
			sum, carry := bits.Add64(last, span, 0)
			if hi != 0 || carry != 0 || sum > math.MaxInt64 {
				return nil, &Error{Kind: ErrOverflow, Detail: view() + ": the last element's index overflows int64"}
			}
			last = sum
		}
		if int64(last) >= st.numel {
			return nil, &Error{Kind: ErrOutOfBounds, Detail: fmt.Sprintf("%s needs element %d, storage %q has %d", view(), last, printable(st.key), st.numel)}
		}
		if int64(numel) > st.numel {
			return nil, &Error{Kind: ErrOverlap, Detail: fmt.Sprintf("%s has %d elements, more than the %d of storage %q (overlapping strides)", view(), numel, st.numel, printable(st.key))}
		}
		t.last = int64(last)
	}
	t.contiguous = isContiguous(size, stride, t.numel)
	return t, nil
}

// intShape is the shape as a tensor.Shape; newTensorRef checked each
// dimension fits an int.
func (t *tensorRef) intShape() tensor.Shape {
	s := make(tensor.Shape, len(t.shape))
	for i, d := range t.shape {
		s[i] = int(d)
	}
	return s
}

// isContiguous is torch's definition (TensorImpl::compute_contiguous): row
// major strides, ignoring dimensions of size 1; empty tensors are contiguous.
func isContiguous(size, stride []int64, numel int64) bool {
	if numel == 0 {
		return true
	}
	want := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] == 1 {
			continue
		}
		if stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

// build allows BUILD only where torch.save of a module's state_dict() puts
// it: on an OrderedDict, with the state {'_metadata': ...}, which is ignored.
func (ts *torchState) build(u *unpickler, obj, state any) error {
	d, ok := obj.(*dict)
	s, ok2 := state.(*dict)
	if !ok || !d.ordered || !ok2 || len(s.entries()) != 1 || s.entries()[0].key != "_metadata" {
		return u.fail(ErrStructure, "BUILD on a %s with a %s state; only OrderedDict with {'_metadata': ...} is allowed", typeName(obj), typeName(state))
	}
	return nil
}

func intTuple(v any) ([]int64, bool) {
	t, ok := v.(tuple)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// describeTuple is typeName with the element types of a short tuple.
func describeTuple(v any) string {
	t, ok := v.(tuple)
	if !ok || len(t) > 8 {
		return typeName(v)
	}
	parts := make([]string, len(t))
	for i, x := range t {
		parts[i] = typeName(x)
	}
	return "tuple(" + strings.Join(parts, ", ") + ")"
}

// formatInts prints a size or stride as Python prints a tuple, cut short
// after 16 entries.
func formatInts(v []int64) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, x := range v {
		if i == 16 {
			fmt.Fprintf(&b, ", ... %d more", len(v)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(x, 10))
	}
	if len(v) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}
