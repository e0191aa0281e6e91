package tensor

import "testing"

func TestViewsAndConvert(t *testing.T) {
	x := FromF32([]float32{1, 2, 3, 4, 5, 6}, 3, 2)
	if r := x.Rows(1, 3); !r.Shape().Equal(Shape{2, 2}) || r.F32()[0] != 3 {
		t.Fatalf("Rows: %v %v", r.Shape(), r.F32())
	}
	if r := x.Reshape(2, 3); r.Dim(-1) != 3 || &r.F32()[0] != &x.F32()[0] {
		t.Fatal("Reshape must share memory")
	}
	h := x.Convert(F16)
	if h.DType() != F16 || h.ToF32()[5] != 6 {
		t.Fatalf("F16: %v", h.ToF32())
	}
	if b := h.Convert(BF16).Convert(F32); b.F32()[3] != 4 {
		t.Fatalf("BF16 round trip: %v", b.F32())
	}
	if x.Convert(F32) != x {
		t.Fatal("Convert to the same dtype must return the tensor itself")
	}
	// A misaligned byte slice is copied into aligned memory, not viewed.
	buf := make([]byte, 17)
	m, err := FromBytes(F32, Shape{4}, buf[1:])
	if err != nil || len(m.F32()) != 4 {
		t.Fatalf("misaligned: %v", err)
	}
	if _, err := FromBytes(F32, Shape{5}, buf[1:]); err == nil {
		t.Fatal("wrong byte count accepted")
	}
	if n, ok := NumelChecked([]int64{1 << 40, 1 << 40}); ok {
		t.Fatalf("overflow not caught: %d", n)
	}
}
