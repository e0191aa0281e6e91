package ptfile

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// unpickler runs a pickle program over plain values. It is a port of the
// dispatch loop of CPython's Lib/pickle.py (_Unpickler.load), restricted to
// the opcodes torch.save emits for state dicts. The stack is one slice with
// MARK positions kept in marks; no pop may reach below the innermost mark,
// which is what CPython's metastack enforces.
type unpickler struct {
	path  string
	data  []byte
	pos   int // next byte to read
	op    int // offset of the opcode being run, for errors
	stack []any
	marks []int
	memo  memo
	torch *torchState // persistent ids, REDUCE and BUILD targets
}

func (u *unpickler) fail(kind error, format string, args ...any) *Error {
	return &Error{Path: u.path, Record: "data.pkl", Offset: int64(u.op), Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

func (u *unpickler) read(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, u.fail(ErrTruncated, "%s needs %d bytes, %d left", opcodeName(u.data[u.op]), n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.read(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// readLine reads up to and excluding the next '\n' (GLOBAL's arguments).
func (u *unpickler) readLine() (string, error) {
	for i := u.pos; i < len(u.data); i++ {
		if u.data[i] == '\n' {
			s := string(u.data[u.pos:i])
			u.pos = i + 1
			return s, nil
		}
	}
	return "", u.fail(ErrTruncated, "GLOBAL argument has no newline")
}

// pushString reads a str: a little-endian length of width bytes, then
// UTF-8 text.
func (u *unpickler) pushString(width int) error {
	n, err := u.readUint(width)
	if err != nil {
		return err
	}
	b, err := u.read(n)
	if err != nil {
		return err
	}
	if !utf8.Valid(b) {
		return u.fail(ErrStructure, "string is not valid UTF-8")
	}
	u.push(string(b))
	return nil
}

// pushUint reads an unsigned little-endian int of width bytes.
func (u *unpickler) pushUint(width int) error {
	v, err := u.readUint(width)
	if err != nil {
		return err
	}
	u.push(int64(v))
	return nil
}

// indexWidth is the width of a memo index: 1 byte for BINPUT and BINGET, 4
// for their LONG_ forms.
func indexWidth(op byte) int {
	if op == opBinPut || op == opBinGet {
		return 1
	}
	return 4
}

// floor is the lowest stack position the current opcode may pop.
func (u *unpickler) floor() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) push(v any) { u.stack = appendDoubling(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) <= u.floor() {
		return nil, u.fail(ErrStackUnderflow, "%s pops from an empty stack", opcodeName(u.data[u.op]))
	}
	v := u.stack[len(u.stack)-1]
	u.stack[len(u.stack)-1] = nil
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) <= u.floor() {
		return nil, u.fail(ErrStackUnderflow, "%s needs an object on the stack", opcodeName(u.data[u.op]))
	}
	return u.stack[len(u.stack)-1], nil
}

// need fails unless the stack holds n values above the innermost mark.
func (u *unpickler) need(n int) error {
	if have := len(u.stack) - u.floor(); have < n {
		return u.fail(ErrStackUnderflow, "%s needs %d objects, the stack has %d", opcodeName(u.data[u.op]), n, have)
	}
	return nil
}

// popN pops the top n values, oldest first.
func (u *unpickler) popN(n int) (tuple, error) {
	if err := u.need(n); err != nil {
		return nil, err
	}
	t := make(tuple, n)
	copy(t, u.stack[len(u.stack)-n:])
	clear(u.stack[len(u.stack)-n:])
	u.stack = u.stack[:len(u.stack)-n]
	return t, nil
}

// popMark pops everything above the innermost MARK, and the mark.
func (u *unpickler) popMark() (tuple, error) {
	if len(u.marks) == 0 {
		return nil, u.fail(ErrStackUnderflow, "%s without a MARK", opcodeName(u.data[u.op]))
	}
	t, err := u.popN(len(u.stack) - u.floor())
	u.marks = u.marks[:len(u.marks)-1]
	return t, err
}

func (u *unpickler) topDict() (*dict, error) {
	v, err := u.top()
	if err != nil {
		return nil, err
	}
	d, ok := v.(*dict)
	if !ok {
		return nil, u.fail(ErrStructure, "%s on a %s, not a dict", opcodeName(u.data[u.op]), typeName(v))
	}
	return d, nil
}

func (u *unpickler) setItem(d *dict, k, v any) error {
	ks, ok := k.(string)
	if !ok {
		return u.fail(ErrStructure, "dict key is a %s, not a str", typeName(k))
	}
	d.set(ks, v)
	return nil
}

func (u *unpickler) memoPut(idx uint64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	u.memo.put(idx, v)
	return nil
}

func (u *unpickler) memoGet(idx uint64) error {
	v, ok := u.memo.get(idx)
	if !ok {
		return u.fail(ErrMemo, "%s %d: memo index never stored", opcodeName(u.data[u.op]), idx)
	}
	u.push(v)
	return nil
}

// run executes the pickle up to STOP and returns the object it built.
func (u *unpickler) run() (any, error) {
	for u.pos < len(u.data) {
		u.op = u.pos
		op := u.data[u.pos]
		u.pos++
		if err := u.step(op); err != nil {
			return nil, err
		}
		if op == opStop {
			return u.pop()
		}
	}
	u.op = len(u.data)
	return nil, &Error{Path: u.path, Record: "data.pkl", Offset: int64(len(u.data)), Kind: ErrTruncated, Detail: "pickle ends without STOP"}
}

func (u *unpickler) step(op byte) error {
	switch op {
	case opStop:
		// run pops the result.
	case opProto:
		v, err := u.readUint(1)
		if err != nil {
			return err
		}
		if v < 2 || v > 5 {
			return u.fail(ErrOpcode, "pickle protocol %d is not supported", v)
		}
	case opFrame:
		n, err := u.readUint(8)
		if err != nil {
			return err
		}
		if n > uint64(len(u.data)-u.pos) {
			return u.fail(ErrTruncated, "FRAME of %d bytes, %d left", n, len(u.data)-u.pos)
		}
	case opMark:
		u.marks = appendDoubling(u.marks, len(u.stack))
	case opEmptyDict:
		u.push(&dict{})
	case opEmptyList:
		u.push(&list{})
	case opEmptyTuple:
		u.push(emptyTuple)
	case opNone:
		u.push(none{})
	case opNewTrue:
		u.push(true)
	case opNewFalse:
		u.push(false)
	case opShortBinUnicode:
		return u.pushString(1)
	case opBinUnicode:
		return u.pushString(4)
	case opBinUnicode8:
		return u.pushString(8)
	case opBinInt:
		v, err := u.readUint(4)
		if err != nil {
			return err
		}
		u.push(int64(int32(uint32(v))))
	case opBinInt1:
		return u.pushUint(1)
	case opBinInt2:
		return u.pushUint(2)
	case opLong1:
		return u.long1()
	case opBinFloat:
		b, err := u.read(8)
		if err != nil {
			return err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case opTuple:
		t, err := u.popMark()
		if err != nil {
			return err
		}
		u.push(t)
	case opTuple1, opTuple2, opTuple3:
		t, err := u.popN(int(op-opTuple1) + 1)
		if err != nil {
			return err
		}
		u.push(t)
	case opBinPut, opLongBinPut:
		idx, err := u.readUint(indexWidth(op))
		if err != nil {
			return err
		}
		return u.memoPut(idx)
	case opMemoize:
		return u.memoPut(uint64(u.memo.len()))
	case opBinGet, opLongBinGet:
		idx, err := u.readUint(indexWidth(op))
		if err != nil {
			return err
		}
		return u.memoGet(idx)
	case opGlobal:
		module, err := u.readLine()
		if err != nil {
			return err
		}
		name, err := u.readLine()
		if err != nil {
			return err
		}
		return u.pushGlobal(module, name)
	case opStackGlobal:
		t, err := u.popN(2)
		if err != nil {
			return err
		}
		module, ok1 := t[0].(string)
		name, ok2 := t[1].(string)
		if !ok1 || !ok2 {
			return u.fail(ErrStructure, "STACK_GLOBAL on a %s and a %s, not two str", typeName(t[0]), typeName(t[1]))
		}
		return u.pushGlobal(module, name)
	case opReduce:
		t, err := u.popN(2)
		if err != nil {
			return err
		}
		v, err := u.torch.reduce(u, t[0], t[1])
		if err != nil {
			return err
		}
		u.push(v)
	case opBuild:
		if err := u.need(2); err != nil {
			return err
		}
		state, err := u.pop()
		if err != nil {
			return err
		}
		obj, err := u.top()
		if err != nil {
			return err
		}
		return u.torch.build(u, obj, state)
	case opBinPersID:
		pid, err := u.pop()
		if err != nil {
			return err
		}
		v, err := u.torch.persistentLoad(u, pid)
		if err != nil {
			return err
		}
		u.push(v)
	case opSetItem:
		if err := u.need(3); err != nil {
			return err
		}
		t, err := u.popN(2)
		if err != nil {
			return err
		}
		d, err := u.topDict()
		if err != nil {
			return err
		}
		return u.setItem(d, t[0], t[1])
	case opSetItems:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d, err := u.topDict()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return u.fail(ErrStructure, "SETITEMS with an odd number (%d) of keys and values", len(items))
		}
		for i := 0; i < len(items); i += 2 {
			if err := u.setItem(d, items[i], items[i+1]); err != nil {
				return err
			}
		}
	case opAppend, opAppends:
		var items tuple
		var err error
		if op == opAppend {
			if err := u.need(2); err != nil {
				return err
			}
			items, err = u.popN(1)
		} else {
			items, err = u.popMark()
		}
		if err != nil {
			return err
		}
		v, err := u.top()
		if err != nil {
			return err
		}
		l, ok := v.(*list)
		if !ok {
			return u.fail(ErrStructure, "%s on a %s, not a list", opcodeName(op), typeName(v))
		}
		l.items = appendDoubling(l.items, items...)
	default:
		return u.fail(ErrOpcode, "opcode %s is not allowed", opcodeName(op))
	}
	return nil
}

// long1 reads LONG1: a length byte, then that many bytes of little-endian
// two's complement. Wider than 8 bytes cannot be an int64.
func (u *unpickler) long1() error {
	n, err := u.readUint(1)
	if err != nil {
		return err
	}
	if n > 8 {
		return u.fail(ErrOverflow, "LONG1 of %d bytes does not fit in int64", n)
	}
	b, err := u.read(n)
	if err != nil {
		return err
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if n > 0 && n < 8 && b[n-1]&0x80 != 0 {
		v |= ^uint64(0) << (8 * n) // sign-extend
	}
	u.push(int64(v))
	return nil
}

func (u *unpickler) pushGlobal(module, name string) error {
	g, ok := lookupGlobal(module, name)
	if !ok {
		return u.fail(ErrForbiddenGlobal, "forbidden global %s", printable(module+"."+name))
	}
	u.push(g)
	return nil
}
