package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/backend"
	"github.com/avq/avq/backend/backendtest"
	"github.com/avq/avq/tensor"
)

// forEachKernelSet runs f under every kernel set of package asm this CPU can
// run, so the blocking, packing and tail handling here are tested with each
// micro-kernel geometry (MR×NR differs between sets).
func forEachKernelSet(t *testing.T, f func(t *testing.T)) {
	for _, impl := range asm.Implementations() {
		t.Run(impl.Name, func(t *testing.T) {
			if !impl.Available {
				t.Skipf("this CPU cannot run %s", impl.Name)
			}
			if err := asm.Select(impl.Name); err != nil {
				t.Fatal(err)
			}
			defer asm.Select("")
			f(t)
		})
	}
}

func randn(r *rand.Rand, n int) []float32 { return backendtest.Randn(r, n) }

func weight(v []float32, dt tensor.DType, shape ...int) (*tensor.Tensor, []float32) {
	return backendtest.Weight(v, dt, shape...)
}

// near checks |got − want| ≤ tol·(mag + 1e-6) elementwise, where mag is the
// magnitude of the terms that produced want (never the result alone, which can
// cancel to zero).
func near(t *testing.T, name string, got []float32, want, mag []float64, tol float64) {
	t.Helper()
	for i := range got {
		g := float64(got[i])
		if math.IsNaN(g) || math.Abs(g-want[i]) > tol*(mag[i]+1e-6) {
			t.Fatalf("%s[%d] = %g, want %g (mag %g)", name, i, g, want[i], mag[i])
		}
	}
}

func TestMatMul(t *testing.T) { forEachKernelSet(t, testMatMul) }

func testMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	// Shapes cross every blocking edge: one row (GEMV), row and column tails
	// of the register tile and of the task grid, K past one packed chunk.
	shapes := [][3]int{{1, 1, 1}, {1, 17, 33}, {1, 70, 520}, {2, 40, 20}, {5, 16, 64}, {65, 33, 7},
		{130, 70, 96}, {13, 200, 513}, {577, 130, 300}}
	for _, threads := range []int{1, 3} {
		c := New(threads)
		for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
			for _, s := range shapes {
				m, n, k := s[0], s[1], s[2]
				xv := randn(r, m*k)
				wt, wv := weight(randn(r, n*k), dt, n, k)
				bv := randn(r, n)
				w, _ := c.Load(wt)
				b, _ := c.Load(tensor.FromF32(bv, n))
				x := tensor.FromF32(xv, m, k)
				for _, withBias := range []bool{false, true} {
					dst := c.New(m, n)
					var bias backend.Tensor
					if withBias {
						bias = b
					}
					c.MatMul(dst, x, w, bias)
					want, mag := make([]float64, m*n), make([]float64, m*n)
					for i := range m {
						for j := range n {
							var s, a float64
							for l := range k {
								p := float64(xv[i*k+l]) * float64(wv[j*k+l])
								s += p
								a += math.Abs(p)
							}
							if withBias {
								s += float64(bv[j])
								a += math.Abs(float64(bv[j]))
							}
							want[i*n+j], mag[i*n+j] = s, a
						}
					}
					near(t, "matmul", f32(dst), want, mag, float64(k+1)*1.2e-7)
					if !withBias {
						// dst += 0.5·x·wᵀ on top of the product just computed.
						c.MatMulAdd(dst, x, w, 0.5)
						for i := range want {
							want[i] *= 1.5
							mag[i] *= 1.5
						}
						near(t, "matmuladd", f32(dst), want, mag, float64(k+1)*2.4e-7)
					}
				}
			}
		}
		c.Close()
	}
}

func TestNormsAndPointwise(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	c := New(2)
	defer c.Close()
	rows, cols := 37, 48
	xv := randn(r, rows*cols)
	wv, bv := randn(r, cols), randn(r, cols)
	x := tensor.FromF32(xv, rows, cols)
	w, b := tensor.FromF32(wv, cols), tensor.FromF32(bv, cols)

	dst := c.New(rows, cols)
	c.LayerNorm(dst, x, w, b, 1e-5)
	want, mag := make([]float64, rows*cols), make([]float64, rows*cols)
	for i := range rows {
		row := xv[i*cols : (i+1)*cols]
		var mean, v float64
		for _, e := range row {
			mean += float64(e)
		}
		mean /= float64(cols)
		for _, e := range row {
			v += (float64(e) - mean) * (float64(e) - mean)
		}
		rstd := 1 / math.Sqrt(v/float64(cols)+1e-5)
		for j, e := range row {
			n := (float64(e) - mean) * rstd * float64(wv[j])
			want[i*cols+j] = n + float64(bv[j])
			mag[i*cols+j] = math.Abs(n) + math.Abs(float64(bv[j]))
		}
	}
	near(t, "layernorm", f32(dst), want, mag, 1e-6)

	c.RMSNorm(dst, x, w, 1e-6)
	for i := range rows {
		row := xv[i*cols : (i+1)*cols]
		var ss float64
		for _, e := range row {
			ss += float64(e) * float64(e)
		}
		r := 1 / math.Sqrt(ss/float64(cols)+1e-6)
		for j, e := range row {
			want[i*cols+j] = float64(e) * r * float64(wv[j])
			mag[i*cols+j] = math.Abs(want[i*cols+j])
		}
	}
	near(t, "rmsnorm", f32(dst), want, mag, 1e-6)

	for _, f := range []backend.Activation{backend.GELU, backend.QuickGELU, backend.SiLU} {
		c.Activate(dst, x, f)
		for i, e := range xv {
			v := float64(e)
			switch f {
			case backend.GELU:
				want[i] = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
			case backend.QuickGELU:
				want[i] = v / (1 + math.Exp(-1.702*v))
			case backend.SiLU:
				want[i] = v / (1 + math.Exp(-v))
			}
			mag[i] = math.Abs(v)
		}
		near(t, f.String(), f32(dst), want, mag, 1e-6)
	}

	// AddScaled with a full operand and with a broadcast row; Mul likewise.
	c.Copy(dst, 0, x)
	c.AddScaled(dst, x, 0.5)
	c.AddScaled(dst, b, 2)
	c.Mul(dst, dst, w)
	for i, e := range xv {
		j := i % cols
		want[i] = (1.5*float64(e) + 2*float64(bv[j])) * float64(wv[j])
		mag[i] = math.Abs(want[i]) + math.Abs(2*float64(bv[j])*float64(wv[j]))
	}
	near(t, "addscaled/mul", f32(dst), want, mag, 1e-6)
}

func TestAttention(t *testing.T) { forEachKernelSet(t, testAttention) }

func testAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	c := New(3)
	defer c.Close()
	type cfg struct {
		heads, kv, d, tq, tk, pos0 int
		causal                     bool
	}
	for _, g := range []cfg{
		{4, 4, 8, 37, 37, 0, false},    // CLIP-style
		{3, 3, 64, 101, 101, 0, false}, // several query blocks, ragged ends
		{4, 2, 8, 9, 9, 0, true},       // grouped-query prefill
		{4, 1, 6, 1, 12, 11, true},     // one decode step at position 11
		{2, 2, 4, 3, 10, 5, true},      // a chunk in the middle of the cache
		{2, 1, 40, 60, 90, 7, true},    // a chunk of a longer cache: rows ≥ 67 unused
	} {
		q := randn(r, g.tq*g.heads*g.d)
		k := randn(r, g.tk*g.kv*g.d)
		v := randn(r, g.tk*g.kv*g.d)
		if g.causal { // cache rows past the last query's position must not be read
			for i := (g.pos0 + g.tq) * g.kv * g.d; i < len(k); i++ {
				k[i], v[i] = float32(math.NaN()), float32(math.NaN())
			}
		}
		dst := c.New(g.tq, g.heads*g.d)
		c.Attention(dst, tensor.FromF32(q, g.tq, g.heads*g.d), tensor.FromF32(k, g.tk, g.kv*g.d),
			tensor.FromF32(v, g.tk, g.kv*g.d), g.heads, g.kv, g.causal, g.pos0)
		want, mag := make([]float64, len(q)), make([]float64, len(q))
		qd, kvd := g.heads*g.d, g.kv*g.d
		for h := range g.heads {
			kh := h / (g.heads / g.kv) * g.d
			for i := range g.tq {
				n := g.tk
				if g.causal {
					n = g.pos0 + i + 1
				}
				s := make([]float64, n)
				mx := math.Inf(-1)
				for j := range n {
					for l := range g.d {
						s[j] += float64(q[i*qd+h*g.d+l]) * float64(k[j*kvd+kh+l])
					}
					s[j] /= math.Sqrt(float64(g.d))
					mx = math.Max(mx, s[j])
				}
				var sum float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for l := range g.d {
					for j := range n {
						p := s[j] / sum * float64(v[j*kvd+kh+l])
						want[i*qd+h*g.d+l] += p
						mag[i*qd+h*g.d+l] += math.Abs(p)
					}
				}
			}
		}
		near(t, "attention", f32(dst), want, mag, 1e-5)
	}
}

func TestRoPEAndEmbed(t *testing.T) {
	c := New(1)
	defer c.Close()
	heads, d, maxPos := 2, 4, 8
	cos, sin := make([]float32, maxPos*d), make([]float32, maxPos*d)
	for p := range maxPos {
		for i := range d {
			a := float64(p) / math.Pow(10000, float64(2*(i%(d/2)))/float64(d))
			cos[p*d+i], sin[p*d+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	c.RoPE(tensor.FromF32(x, 1, heads*d), tensor.FromF32(cos, maxPos, d), tensor.FromF32(sin, maxPos, d), heads, 3)
	orig := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	for h := range heads {
		for i := range d / 2 {
			x1, x2 := float64(orig[h*d+i]), float64(orig[h*d+i+d/2])
			c0, s0 := float64(cos[3*d+i]), float64(sin[3*d+i])
			if w := x1*c0 - x2*s0; math.Abs(float64(x[h*d+i])-w) > 1e-6 {
				t.Fatalf("rope[%d,%d] = %g want %g", h, i, x[h*d+i], w)
			}
			if w := x2*c0 + x1*s0; math.Abs(float64(x[h*d+i+d/2])-w) > 1e-6 {
				t.Fatalf("rope[%d,%d] = %g want %g", h, i+d/2, x[h*d+i+d/2], w)
			}
		}
	}

	cache := c.New(4, 2)
	c.Copy(cache, 2, tensor.FromF32([]float32{7, 8}, 1, 2))
	if got := f32(cache); got[4] != 7 || got[5] != 8 || got[3] != 0 || got[6] != 0 {
		t.Fatalf("copy at row 2 = %v", got)
	}

	tab, vals := weight([]float32{1, 2, 3, 4, 5, 6}, tensor.F16, 3, 2)
	dst := c.New(2, 2)
	c.Embed(dst, tab, []int32{2, 0})
	if got := f32(dst); got[0] != vals[4] || got[1] != vals[5] || got[2] != vals[0] || got[3] != vals[1] {
		t.Fatalf("embed = %v", got)
	}
}

func TestOpsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	c := New(2)
	defer c.Close()
	r := rand.New(rand.NewPCG(1, 1))
	x := tensor.FromF32(randn(r, 4*64), 4, 64)
	wt, _ := weight(randn(r, 128*64), tensor.F16, 128, 64)
	w, _ := c.Load(wt)
	dst := c.New(4, 128)
	att := c.New(4, 64)
	norm := tensor.FromF32(randn(r, 64), 64)
	f := func() {
		c.MatMul(dst, x, w, nil)
		c.RMSNorm(att, x, norm, 1e-5)
		c.Attention(att, x, x, x, 4, 4, true, 0)
		c.Activate(dst, dst, backend.SiLU)
	}
	f()
	if n := testing.AllocsPerRun(50, f); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}
