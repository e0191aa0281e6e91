package tensor

import (
	"math"
	"math/big"
	"testing"
)

// f16Exact is the exact value of a finite binary16 bit pattern, as a big.Float.
func f16Exact(h uint16) *big.Float {
	exp := int(h>>10) & 0x1f
	man := int64(h & 0x3ff)
	v := new(big.Float)
	if exp == 0 {
		v.SetMantExp(big.NewFloat(float64(man)), -24)
	} else {
		v.SetMantExp(big.NewFloat(float64(man|0x400)), exp-25)
	}
	if h&0x8000 != 0 {
		v.Neg(v)
	}
	return v
}

func TestF16ToF32Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F16ToF32(h)
		exp := (h >> 10) & 0x1f
		switch {
		case exp == 0x1f && h&0x3ff == 0:
			if !math.IsInf(float64(got), 1-2*int(h>>15)) {
				t.Fatalf("%#04x: got %v, want Inf", h, got)
			}
		case exp == 0x1f:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %v, want NaN", h, got)
			}
		default:
			want, acc := f16Exact(h).Float32()
			if acc != big.Exact || math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("%#04x: got %v, want %v", h, got, want)
			}
		}
	}
}

func TestF16RoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		back := F32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("%#04x: NaN came back as %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
}

// TestF32ToF16RoundsToNearestEven checks, for every pair of adjacent finite
// binary16 values, the midpoint and the points just either side of it.
func TestF32ToF16RoundsToNearestEven(t *testing.T) {
	for i := 0; i < 0x7c00; i++ { // positive finite values; the sign is a separate bit
		lo, hi := uint16(i), uint16(i+1)
		a, b := F16ToF32(lo), F16ToF32(hi)
		if hi == 0x7c00 {
			b = 65536 // the first value above the largest finite half
		}
		mid := float32((float64(a) + float64(b)) / 2) // exact: halves are sparse in float32
		even := lo
		if lo&1 == 1 {
			even = hi
		}
		check := func(f float32, want uint16) {
			if got := F32ToF16(f); got != want {
				t.Fatalf("F32ToF16(%g) = %#04x, want %#04x (between %#04x and %#04x)", f, got, want, lo, hi)
			}
			if got := F32ToF16(-f); got != want|0x8000 {
				t.Fatalf("F32ToF16(%g) = %#04x, want %#04x", -f, got, want|0x8000)
			}
		}
		check(mid, even)
		check(math.Nextafter32(mid, 0), lo)
		check(math.Nextafter32(mid, float32(math.Inf(1))), hi)
	}
	if got := F32ToF16(1e9); got != 0x7c00 {
		t.Fatalf("overflow: got %#04x", got)
	}
	if got := F32ToF16(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Fatalf("NaN: got %#04x", got)
	}
}

func TestBF16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToF32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("%#04x widened to %#08x", h, math.Float32bits(f))
		}
		back := F32ToBF16(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToF32(back))) {
				t.Fatalf("%#04x: NaN came back as %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("%#04x -> %#04x", h, back)
		}
		// Midpoint to the next pattern rounds to the even one of the pair.
		if h&0x7f80 != 0x7f80 && h != 0x7f7f && h != 0xff7f {
			mid := math.Float32frombits(uint32(h)<<16 | 0x8000)
			want := h
			if h&1 == 1 {
				want = h + 1
			}
			if got := F32ToBF16(mid); got != want {
				t.Fatalf("midpoint above %#04x: got %#04x, want %#04x", h, got, want)
			}
		}
	}
}
