package asm

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// AVQ_REQUIRE_ISA (comma-separated implementation names, e.g. "avx512,avx2")
// turns a skipped implementation into a failure, so that a CI machine that
// should run the assembly cannot silently test only the Go twin.
func requiredISAs() []string {
	if v := os.Getenv("AVQ_REQUIRE_ISA"); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

func TestRequiredISAsCompiledIn(t *testing.T) {
	for _, name := range requiredISAs() {
		if !slices.ContainsFunc(Implementations(), func(i Implementation) bool { return i.Name == name }) {
			t.Errorf("AVQ_REQUIRE_ISA lists %q, which this build does not contain", name)
		}
	}
}

func TestSelect(t *testing.T) {
	impls := Implementations()
	if last := impls[len(impls)-1]; last.Name != "generic" || !last.Available {
		t.Fatalf("last implementation is %+v, want an available generic", last)
	}
	if err := Select("no-such-set"); err == nil {
		t.Fatal("Select accepted an unknown name")
	}
	for _, impl := range impls {
		if err := Select(impl.Name); (err == nil) != impl.Available {
			t.Errorf("Select(%q) = %v with Available %v", impl.Name, err, impl.Available)
		}
	}
	Select("")
	for _, impl := range impls {
		if impl.Available {
			if Selected() != impl.Name {
				t.Fatalf("default is %q, want the best available %q", Selected(), impl.Name)
			}
			break
		}
	}
}

// forEachImplementation runs f once under every kernel set compiled in (the
// crypto/internal/cryptotest pattern): the assembly and its Go twin are
// tested in one run. Sets this CPU cannot run are skipped, unless required.
func forEachImplementation(t *testing.T, f func(t *testing.T)) {
	for _, impl := range Implementations() {
		t.Run(impl.Name, func(t *testing.T) {
			if !impl.Available {
				if slices.Contains(requiredISAs(), impl.Name) {
					t.Fatalf("AVQ_REQUIRE_ISA lists %s, but this CPU cannot run it", impl.Name)
				}
				t.Skipf("this CPU cannot run %s", impl.Name)
			}
			if err := Select(impl.Name); err != nil {
				t.Fatal(err)
			}
			defer Select("")
			f(t)
		})
	}
}

// vectorSizes: every length from 0 across two zmm-unrolled widths and some,
// odd sizes, and the model's real sizes.
func vectorSizes() []int {
	var s []int
	for n := 0; n <= 2*2*16+7; n++ {
		s = append(s, n)
	}
	return append(s, 97, 255, 257, 577, 1023, 1024, 1031, 4096, 11008)
}

// Guard bands: every buffer element outside the slice under test holds
// sentinel, a NaN no kernel produces, so a stray write or a stray read that
// reaches a result shows.
const (
	guard    = 9
	sentinel = 0x7fc0dead
)

// guarded returns buf and the n-element window s of it at offset off.
func guarded(n, off int) (buf, s []float32) {
	buf = make([]float32, off+n+guard)
	for i := range buf {
		buf[i] = math.Float32frombits(sentinel)
	}
	return buf, buf[off : off+n : off+n]
}

// checkGuards reports any element of buf outside the windows [lo_i, hi_i)
// (given as pairs) that lost its sentinel.
func checkGuards(t *testing.T, name string, buf []float32, windows ...int) {
	t.Helper()
outer:
	for i, v := range buf {
		for w := 0; w < len(windows); w += 2 {
			if i >= windows[w] && i < windows[w+1] {
				continue outer
			}
		}
		if math.Float32bits(v) != sentinel {
			t.Fatalf("%s: guard element %d overwritten with %g", name, i, v)
		}
	}
}

// within reports whether got is within tol of want; NaN fails.
func within(got float32, want, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol
}

const eps32 = 1.0 / (1 << 23)

func randVec(r *rand.Rand, v []float32) {
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
}

func TestDot(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, n := range vectorSizes() {
			for off := range 4 {
				_, x := guarded(n, off)
				_, y := guarded(n, 3-off)
				randVec(r, x)
				randVec(r, y)
				x0, y0 := slices.Clone(x), slices.Clone(y)
				var want, mag float64
				for i := range x {
					want += float64(x[i]) * float64(y[i])
					mag += math.Abs(float64(x[i]) * float64(y[i]))
				}
				got := Dot(x, y)
				tol := 2*float64(n+1)*eps32*mag + 1e-30
				if !within(got, want, tol) || !within(got, float64(dotGeneric(x, y)), 2*tol) {
					t.Fatalf("n=%d off=%d: got %g want %g (generic %g, tol %g)", n, off, got, want, dotGeneric(x, y), tol)
				}
				if !slices.Equal(x, x0) || !slices.Equal(y, y0) {
					t.Fatalf("n=%d: Dot changed its inputs", n)
				}
			}
		}
	})
}

func TestAxpy(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range vectorSizes() {
			for off := range 4 {
				_, x := guarded(n, 3-off)
				buf, y := guarded(n, off)
				randVec(r, x)
				randVec(r, y)
				x0, y0 := slices.Clone(x), slices.Clone(y)
				a := float32(r.NormFloat64())
				Axpy(a, x, y)
				for i := range y {
					want := float64(y0[i]) + float64(a)*float64(x[i])
					tol := 2 * eps32 * (math.Abs(float64(y0[i])) + math.Abs(float64(a)*float64(x[i])))
					if !within(y[i], want, tol) {
						t.Fatalf("n=%d off=%d: y[%d] = %g want %g", n, off, i, y[i], want)
					}
				}
				checkGuards(t, "axpy", buf, off, off+n)
				if !slices.Equal(x, x0) {
					t.Fatalf("n=%d: Axpy changed x", n)
				}
			}
		}
	})
}

// allHalves is every 16-bit pattern, as fp16 or bf16 bits.
func allHalves() []uint16 {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	return src
}

func TestWidenF16Exhaustive(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		all := allHalves()
		for off := range 4 {
			src := all[off:]
			buf, dst := guarded(len(src), off)
			WidenF16(dst, src)
			for i, h := range src {
				got, want := math.Float32bits(dst[i]), f16ToF32Bits(h)
				// A NaN may come back quieted (bit 22 set), nothing else.
				if got != want && !(h&0x7c00 == 0x7c00 && h&0x3ff != 0 && got == want|1<<22) {
					t.Fatalf("off=%d %#04x: got %#08x want %#08x", off, h, got, want)
				}
			}
			checkGuards(t, "widenF16", buf, off, off+len(src))
		}
		for _, n := range vectorSizes()[:72] { // short lengths: the tail paths
			buf, dst := guarded(n, 1)
			WidenF16(dst, all[1000:1000+n])
			checkGuards(t, "widenF16", buf, 1, 1+n)
		}
	})
}

func TestWidenBF16Exhaustive(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		all := allHalves()
		for off := range 4 {
			src := all[off:]
			buf, dst := guarded(len(src), off)
			WidenBF16(dst, src)
			for i, h := range src {
				if got := math.Float32bits(dst[i]); got != uint32(h)<<16 {
					t.Fatalf("off=%d %#04x: got %#08x", off, h, got)
				}
			}
			checkGuards(t, "widenBF16", buf, off, off+len(src))
		}
	})
}

// randF16 fills w with finite, normal fp16 bit patterns near N(0,1) draws
// (the draw's sign and top mantissa bits, its exponent clamped to fp16's
// normal range); f16ToF32Bits gives their values.
func randF16(r *rand.Rand, w []uint16) {
	for i := range w {
		b := math.Float32bits(float32(r.NormFloat64()))
		e := int(b>>23&0xff) - 127
		e = max(min(e, 15), -14)
		h := uint16(b>>16&0x8000) | uint16(e+15)<<10 | uint16(b>>13&0x3ff)
		w[i] = h
	}
}

func TestGemv(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		ks := []int{0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 577, 1024}
		type shape struct{ rows, k, pad int }
		var shapes []shape
		for _, k := range ks {
			for _, rows := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 13} {
				shapes = append(shapes, shape{rows, k, (rows + k) % 6})
			}
		}
		shapes = append(shapes, shape{9, 4096, 0}, shape{6, 11008, 3})
		for _, s := range shapes {
			ld := s.k + s.pad
			w16, w32 := make([]uint16, s.rows*ld), make([]float32, s.rows*ld)
			randF16(r, w16)
			for i, h := range w16 {
				w32[i] = math.Float32frombits(f16ToF32Bits(h))
				if i%ld >= s.k { // NaN in the padding: reading it would show
					w16[i], w32[i] = 0x7e00, float32(math.NaN())
				}
			}
			x := make([]float32, s.k)
			randVec(r, x)
			w16c, x0 := slices.Clone(w16), slices.Clone(x)
			for _, dt := range []string{"f16", "f32"} {
				buf, y := guarded(s.rows, 2)
				if dt == "f16" {
					GemvF16(y, w16, ld, x)
				} else {
					GemvF32(y, w32, ld, x)
				}
				for i := range y {
					var want, mag float64
					for k := range s.k {
						p := float64(w32[i*ld+k]) * float64(x[k])
						want += p
						mag += math.Abs(p)
					}
					if tol := 2*float64(s.k+1)*eps32*mag + 1e-30; !within(y[i], want, tol) {
						t.Fatalf("%s rows=%d k=%d ld=%d: y[%d] = %g want %g", dt, s.rows, s.k, ld, i, y[i], want)
					}
				}
				checkGuards(t, "gemv "+dt, buf, 2, 2+s.rows)
			}
			if !slices.Equal(w16, w16c) || !slices.Equal(x, x0) {
				t.Fatalf("rows=%d k=%d: a GEMV changed its inputs", s.rows, s.k)
			}
		}
	})
}

func TestGemvT(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, cols := range []int{0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96, 128, 130} {
			for _, n := range []int{0, 1, 2, 3, 7, 64, 577} {
				ld := cols + (cols+n)%5
				w := make([]float32, n*ld)
				randVec(r, w)
				for i := range w {
					if i%ld >= cols {
						w[i] = float32(math.NaN()) // padding: must not be read
					}
				}
				p := make([]float32, n)
				randVec(r, p)
				buf, y := guarded(cols, 1)
				randVec(r, y)
				y0, w0, p0 := slices.Clone(y), slices.Clone(w), slices.Clone(p)
				GemvT(y, w, ld, p)
				for c := range y {
					want, mag := float64(y0[c]), math.Abs(float64(y0[c]))
					for j := range n {
						v := float64(p[j]) * float64(w[j*ld+c])
						want += v
						mag += math.Abs(v)
					}
					if tol := 2*float64(n+2)*eps32*mag + 1e-30; !within(y[c], want, tol) {
						t.Fatalf("cols=%d n=%d: y[%d] = %g want %g", cols, n, c, y[c], want)
					}
				}
				checkGuards(t, "gemvT", buf, 1, 1+cols)
				if !slices.Equal(p, p0) || !slices.EqualFunc(w, w0, func(a, b float32) bool {
					return math.Float32bits(a) == math.Float32bits(b)
				}) {
					t.Fatalf("cols=%d n=%d: GemvT changed its inputs", cols, n)
				}
			}
		}
	})
}
