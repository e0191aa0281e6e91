package asm

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// packCase is one operand of a pack test: rows × kc values of W with row
// stride ld, NaN in the gap between kc and ld.
func packSource(r *rand.Rand, rows, kc, ld int) (f32 []float32, f16, bf16 []uint16) {
	n := max(0, (rows-1)*ld+kc)
	f32, f16, bf16 = make([]float32, n), make([]uint16, n), make([]uint16, n)
	randVec(r, f32)
	randF16(r, f16)
	for i := range bf16 {
		bf16[i] = uint16(math.Float32bits(f32[i]) >> 16)
	}
	for i := range n {
		if i%ld >= kc {
			f32[i], f16[i], bf16[i] = float32(math.NaN()), 0x7e00, 0x7fc0
		}
	}
	return
}

func TestGemmPack(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		g := GemmKernel()
		r := rand.New(rand.NewPCG(7, 8))
		for rows := 0; rows <= g.NR; rows++ {
			for _, kc := range []int{0, 1, 7, 8, 9, 16, 17, 31, 64, 65, 256} {
				ld := kc + rows%4
				f32, f16, bf16 := packSource(r, rows, kc, max(ld, 1))
				f32c, f16c, bf16c := slices.Clone(f32), slices.Clone(f16), slices.Clone(bf16)
				for _, dt := range []string{"f32", "f16", "bf16"} {
					buf, panel := guarded(kc*g.NR, 1)
					var want func(j, k int) uint32
					switch dt {
					case "f32":
						g.PackT(panel, f32, max(ld, 1), rows, kc)
						want = func(j, k int) uint32 { return math.Float32bits(f32[j*ld+k]) }
					case "f16":
						g.PackTF16(panel, f16, max(ld, 1), rows, kc)
						want = func(j, k int) uint32 { return f16ToF32Bits(f16[j*ld+k]) }
					case "bf16":
						g.PackTBF16(panel, bf16, max(ld, 1), rows, kc)
						want = func(j, k int) uint32 { return uint32(bf16[j*ld+k]) << 16 }
					}
					for k := range kc {
						for j := range g.NR {
							w := uint32(0)
							if j < rows {
								w = want(j, k)
							}
							if got := math.Float32bits(panel[k*g.NR+j]); got != w {
								t.Fatalf("%s rows=%d kc=%d: panel[%d,%d] = %#x want %#x", dt, rows, kc, k, j, got, w)
							}
						}
					}
					checkGuards(t, "pack "+dt, buf, 1, 1+kc*g.NR)
				}
				if !slices.Equal(f16, f16c) || !slices.Equal(bf16, bf16c) ||
					!slices.EqualFunc(f32, f32c, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
					t.Fatalf("rows=%d kc=%d: pack changed its source", rows, kc)
				}
			}
		}
		// PackN: a copy with zero padding.
		b := make([]float32, 5*40)
		randVec(r, b)
		buf, panel := guarded(5*g.NR, 0)
		cols := min(g.NR, 3)
		g.PackN(panel, b, 40, cols, 5)
		for k := range 5 {
			for j := range g.NR {
				want := float32(0)
				if j < cols {
					want = b[k*40+j]
				}
				if panel[k*g.NR+j] != want {
					t.Fatalf("PackN panel[%d,%d] = %g want %g", k, j, panel[k*g.NR+j], want)
				}
			}
		}
		checkGuards(t, "packN", buf, 0, 5*g.NR)
	})
}

func TestGemmTile(t *testing.T) {
	forEachImplementation(t, func(t *testing.T) {
		g := GemmKernel()
		checkTile(t, g, g.MR, g.Tile)
		if g.MRShort > 0 {
			checkTile(t, g, g.MRShort, g.TileShort)
		}
	})
}

type tileFunc func(kc int, a []float32, lda int, panel, c []float32, ldc int, alpha float32, load bool)

// checkTile tests a tile kernel of the given rows against float64, with NaN
// between the rows of a and sentinels around and between the rows of c.
func checkTile(t *testing.T, g Gemm, rows int, tile tileFunc) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, kc := range []int{0, 1, 2, 3, 5, 8, 17, 64, 256, 577, 1024, 4096} {
		for _, load := range []bool{false, true} {
			for _, alpha := range []float32{1, -0.375} {
				lda, ldc := kc+3, g.NR+5
				_, a := guarded((rows-1)*lda+kc, 2)
				randVec(r, a)
				for i := range a {
					if i%lda >= kc {
						a[i] = float32(math.NaN()) // between rows: must not be read
					}
				}
				_, panel := guarded(kc*g.NR, 0)
				randVec(r, panel)
				cbuf, c := guarded((rows-1)*ldc+g.NR, 3)
				randVec(r, c)
				for i := range c {
					if i%ldc >= g.NR {
						c[i] = math.Float32frombits(sentinel)
					}
				}
				a0, p0, c0 := slices.Clone(a), slices.Clone(panel), slices.Clone(c)
				tile(kc, a, lda, panel, c, ldc, alpha, load)
				var windows []int
				for i := range rows {
					windows = append(windows, 3+i*ldc, 3+i*ldc+g.NR)
					for j := range g.NR {
						var s, mag float64
						for k := range kc {
							p := float64(a[i*lda+k]) * float64(panel[k*g.NR+j])
							s += p
							mag += math.Abs(p)
						}
						want := float64(alpha) * s
						mag *= math.Abs(float64(alpha))
						if load {
							want += float64(c0[i*ldc+j])
							mag += math.Abs(float64(c0[i*ldc+j]))
						}
						if tol := 2*float64(kc+2)*eps32*mag + 1e-30; !within(c[i*ldc+j], want, tol) {
							t.Fatalf("%d rows kc=%d load=%v alpha=%g: c[%d,%d] = %g want %g", rows, kc, load, alpha, i, j, c[i*ldc+j], want)
						}
					}
				}
				checkGuards(t, "tile", cbuf, windows...)
				if !slices.EqualFunc(a, a0, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }) ||
					!slices.Equal(panel, p0) {
					t.Fatalf("%d rows kc=%d: the tile changed its inputs", rows, kc)
				}
			}
		}
	}
}

// gemmWith computes x[m,k]·w[n,k]ᵀ with g the plain way a caller would:
// panels of NR rows of w, MR-row blocks of x (zero-padded at the end), and
// the edge tiles computed into a scratch tile. It checks the kernels compose;
// the blocked, threaded driver is backend/cpu's.
func gemmWith(g Gemm, m, n, k int, x []float32, w []uint16) []float32 {
	out := make([]float32, m*n)
	panel := make([]float32, k*g.NR)
	a := make([]float32, g.MR*k)
	tile := make([]float32, g.MR*g.NR)
	for j0 := 0; j0 < n; j0 += g.NR {
		cols := min(g.NR, n-j0)
		g.PackTF16(panel, w[j0*k:], k, cols, k)
		for i0 := 0; i0 < m; i0 += g.MR {
			rows := min(g.MR, m-i0)
			clear(a)
			copy(a, x[i0*k:(i0+rows)*k])
			if g.MRShort > 0 && rows <= g.MRShort {
				g.TileShort(k, a, k, panel, tile, g.NR, 1, false)
			} else {
				g.Tile(k, a, k, panel, tile, g.NR, 1, false)
			}
			for i := range rows {
				copy(out[(i0+i)*n+j0:(i0+i)*n+j0+cols], tile[i*g.NR:i*g.NR+cols])
			}
		}
	}
	return out
}

func TestGemmAgainstGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range [][3]int{{1, 1, 1}, {13, 70, 577}, {37, 100, 1024}, {65, 64, 64}, {5, 33, 4096}} {
		m, n, k := s[0], s[1], s[2]
		x := make([]float32, m*k)
		randVec(r, x)
		w := make([]uint16, n*k)
		randF16(r, w)
		ref := gemmWith(Gemm{MR: generic.mr, NR: generic.nr, k: generic}, m, n, k, x, w)
		forEachImplementation(t, func(t *testing.T) {
			got := gemmWith(GemmKernel(), m, n, k, x, w)
			for i := range got {
				row, col := i/n, i%n
				var mag float64
				for l := range k {
					mag += math.Abs(float64(x[row*k+l]) * float64(math.Float32frombits(f16ToF32Bits(w[col*k+l]))))
				}
				if tol := 4*float64(k+1)*eps32*mag + 1e-30; !within(got[i], float64(ref[i]), tol) {
					t.Fatalf("%v: out[%d,%d] = %g, generic %g", s, row, col, got[i], ref[i])
				}
			}
		})
	}
}
