package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// checkGrad compares got with a float64 reference, each element within
// 1e-5 of the magnitude of the terms that produced it (mag[i]) plus 1e-6.
func checkGrad(t *testing.T, name string, got []float32, want, mag []float64) {
	t.Helper()
	bad := 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= 1e-5*mag[i]+1e-6) {
			if bad < 4 {
				t.Errorf("%s[%d] = %v, want %v (|Δ| %.3g, magnitude %.3g)", name, i, got[i], want[i], d, mag[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements differ", name, bad, len(want))
	}
}

// refProduct is init (when acc) + Σ_l A[i,l]·B[l,j] in float64 with the
// magnitudes of its terms, A[i,l] = a(i, l), B[l,j] = bv(l, j).
func refProduct(m, k, n int, a, bv func(i, j int) float32, init []float32, acc bool) (want, mag []float64) {
	want, mag = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for j := range n {
			for l := range k {
				p := float64(a(i, l)) * float64(bv(l, j))
				want[i*n+j] += p
				mag[i*n+j] += math.Abs(p)
			}
			if acc {
				want[i*n+j] += float64(init[i*n+j])
				mag[i*n+j] += math.Abs(float64(init[i*n+j]))
			}
		}
	}
	return want, mag
}

func TestBackwardGEMMs(t *testing.T) {
	forEachKernelSet(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		c := New(3)
		defer c.Close()
		for _, s := range [][3]int{{1, 1, 1}, {7, 5, 3}, {37, 130, 65}, {577, 64, 64}, {13, 600, 1030}} {
			m, k, n := s[0], s[1], s[2]
			x, w, y := randn(r, m*k), randn(r, k*n), randn(r, m*n)
			xs := func(i, l int) float32 { return x[i*k+l] }
			for _, acc := range []bool{false, true} {
				// NN: dst[m,n] = x[m,k]·w[k,n], w stored as F32, F16 and BF16 (the values it rounds to)
				for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
					wt, wr := weight(w, dt, k, n)
					init := randn(r, m*n)
					dst := tensor.FromF32(slices.Clone(init), m, n)
					c.MatMulNN(dst, tensor.FromF32(x, m, k), wt, acc)
					want, mag := refProduct(m, k, n, xs, func(l, j int) float32 { return wr[l*n+j] }, init, acc)
					checkGrad(t, "MatMulNN "+dt.String(), dst.F32(), want, mag)
				}
				// TN: dst[k,n] = x[m,k]ᵀ·y[m,n]
				init := randn(r, k*n)
				dst := tensor.FromF32(slices.Clone(init), k, n)
				c.MatMulTN(dst, tensor.FromF32(x, m, k), tensor.FromF32(y, m, n), acc)
				want, mag := refProduct(k, m, n, func(a, i int) float32 { return x[i*k+a] }, func(i, j int) float32 { return y[i*n+j] }, init, acc)
				checkGrad(t, "MatMulTN", dst.F32(), want, mag)
			}
		}
	})
}

// TestBackwardThreadInvariant: the backward ops give the same bits on 1 and
// 3 threads.
func TestBackwardThreadInvariant(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m, k, n := 577, 96, 200
	x, w, y, do, vv := randn(r, m*k), randn(r, k*n), randn(r, m*n), randn(r, m*k), randn(r, m*k)
	run := func(threads int) [][]float32 {
		c := New(threads)
		defer c.Close()
		nn := tensor.New(tensor.F32, m, n)
		c.MatMulNN(nn, tensor.FromF32(x, m, k), tensor.FromF32(w, k, n), false)
		tn := tensor.New(tensor.F32, k, n)
		c.MatMulTN(tn, tensor.FromF32(x, m, k), tensor.FromF32(y, m, n), false)
		q, kk, v := tensor.FromF32(x, m, k), tensor.FromF32(do, m, k), tensor.FromF32(vv, m, k)
		dq, dk, dv := tensor.New(tensor.F32, m, k), tensor.New(tensor.F32, m, k), tensor.New(tensor.F32, m, k)
		c.AttentionBackward(dq, dk, dv, tensor.FromF32(x, m, k), q, kk, v, 4)
		return [][]float32{nn.F32(), tn.F32(), dq.F32(), dk.F32(), dv.F32()}
	}
	a, b := run(1), run(3)
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			t.Errorf("output %d differs between 1 and 3 threads", i)
		}
	}
}

func TestLayerNormAndActivationBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	c := New(2)
	defer c.Close()
	rows, n := 5, 33
	x, w, b, dy := randn(r, rows*n), randn(r, n), randn(r, n), randn(r, rows*n)
	dx := tensor.New(tensor.F32, rows, n)
	c.LayerNormBackward(dx, tensor.FromF32(dy, rows, n), tensor.FromF32(x, rows, n), tensor.FromF32(w, n), 1e-5)
	// reference: central differences of Σ dy ⊙ LN(x) in float64
	ln := func(xr []float64) float64 {
		var mu, v float64
		for _, e := range xr {
			mu += e
		}
		mu /= float64(n)
		for _, e := range xr {
			v += (e - mu) * (e - mu)
		}
		rs := 1 / math.Sqrt(v/float64(n)+1e-5)
		var s float64
		for i, e := range xr {
			s += float64(dy[len(dy)-n+i]) * ((e-mu)*rs*float64(w[i]) + float64(b[i]))
		}
		return s
	}
	last := make([]float64, n)
	for i := range n {
		last[i] = float64(x[(rows-1)*n+i])
	}
	for i := range n {
		h := 1e-6
		p, m := slices.Clone(last), slices.Clone(last)
		p[i] += h
		m[i] -= h
		fd := (ln(p) - ln(m)) / (2 * h)
		if got := float64(dx.F32()[(rows-1)*n+i]); math.Abs(got-fd) > 1e-4*(1+math.Abs(fd)) {
			t.Errorf("LayerNormBackward dx[%d] = %v, finite difference %v", i, got, fd)
		}
	}
	for _, f := range []backend.Activation{backend.GELU, backend.QuickGELU, backend.SiLU} {
		xs := randn(r, 64)
		ones := make([]float32, 64)
		for i := range ones {
			ones[i] = 1
		}
		d := tensor.New(tensor.F32, 64)
		c.ActivateBackward(d, tensor.FromF32(ones, 64), tensor.FromF32(xs, 64), f)
		for i, v := range xs {
			h := float32(1e-2)
			a, bb := tensor.New(tensor.F32, 2), tensor.FromF32([]float32{v + h, v - h}, 2)
			c.Activate(a, bb, f)
			fd := float64(a.F32()[0]-a.F32()[1]) / float64(2*h)
			if math.Abs(fd-float64(d.F32()[i])) > 1e-3 {
				t.Errorf("%v backward at %v: %v, finite difference %v", f, v, d.F32()[i], fd)
			}
		}
	}
}

func TestAttentionBackward(t *testing.T) {
	// bidirectional multi-head (CLIP), causal multi-head and causal grouped-query (LLaMA)
	for _, c := range []struct {
		heads, kvHeads int
		causal         bool
	}{{2, 2, false}, {2, 2, true}, {4, 2, true}} {
		testAttentionBackward(t, c.heads, c.kvHeads, c.causal)
	}
}

func testAttentionBackward(t *testing.T, heads, kvHeads int, causal bool) {
	r := rand.New(rand.NewPCG(9, 10))
	c := New(2)
	defer c.Close()
	tk, d := 9, 4
	dm, kd := heads*d, kvHeads*d
	q, k, v, do := randn(r, tk*dm), randn(r, tk*kd), randn(r, tk*kd), randn(r, tk*dm)
	dq, dk, dv := tensor.New(tensor.F32, tk, dm), tensor.New(tensor.F32, tk, kd), tensor.New(tensor.F32, tk, kd)
	qt, kt, vt, dot := tensor.FromF32(q, tk, dm), tensor.FromF32(k, tk, kd), tensor.FromF32(v, tk, kd), tensor.FromF32(do, tk, dm)
	if causal {
		c.CausalAttentionBackward(dq, dk, dv, dot, qt, kt, vt, heads, kvHeads)
	} else {
		c.AttentionBackward(dq, dk, dv, dot, qt, kt, vt, heads)
	}
	// float64 reference of L = Σ do ⊙ Attention(q, k, v), by central differences
	loss := func(q, k, v []float64) float64 {
		var s float64
		for h := range heads {
			kh := h / (heads / kvHeads) * d
			for i := range tk {
				n := tk
				if causal {
					n = i + 1
				}
				sc := make([]float64, n)
				mx := math.Inf(-1)
				for j := range n {
					for e := range d {
						sc[j] += q[i*dm+h*d+e] * k[j*kd+kh+e]
					}
					sc[j] /= math.Sqrt(float64(d))
					mx = max(mx, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					z += sc[j]
				}
				for e := range d {
					var o float64
					for j := range n {
						o += sc[j] / z * v[j*kd+kh+e]
					}
					s += o * float64(do[i*dm+h*d+e])
				}
			}
		}
		return s
	}
	f64 := func(x []float32) []float64 {
		o := make([]float64, len(x))
		for i, e := range x {
			o[i] = float64(e)
		}
		return o
	}
	for which, g := range []*tensor.Tensor{dq, dk, dv} {
		for i := range g.Numel() {
			in := [][]float64{f64(q), f64(k), f64(v)}
			h := 1e-6
			in[which][i] += h
			lp := loss(in[0], in[1], in[2])
			in[which][i] -= 2 * h
			lm := loss(in[0], in[1], in[2])
			fd := (lp - lm) / (2 * h)
			if got := float64(g.F32()[i]); math.Abs(got-fd) > 1e-4*(1+math.Abs(fd)) {
				t.Errorf("heads %d/%d causal %v: AttentionBackward operand %d [%d] = %v, finite difference %v", heads, kvHeads, causal, which, i, got, fd)
			}
		}
	}
}

func TestRMSNormBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	c := New(2)
	defer c.Close()
	rows, n := 4, 37
	x, w, dy := randn(r, rows*n), randn(r, n), randn(r, rows*n)
	dx := tensor.New(tensor.F32, rows, n)
	c.RMSNormBackward(dx, tensor.FromF32(dy, rows, n), tensor.FromF32(x, rows, n), tensor.FromF32(w, n), 1e-6)
	for row := range rows {
		// reference: central differences of Σ dy ⊙ RMSNorm(x) over the row, in float64
		f := func(xr []float64) float64 {
			var ss float64
			for _, e := range xr {
				ss += e * e
			}
			rs := 1 / math.Sqrt(ss/float64(n)+1e-6)
			var s float64
			for i, e := range xr {
				s += float64(dy[row*n+i]) * e * rs * float64(w[i])
			}
			return s
		}
		xr := make([]float64, n)
		for i := range n {
			xr[i] = float64(x[row*n+i])
		}
		for i := range n {
			const h = 1e-6
			p, m := slices.Clone(xr), slices.Clone(xr)
			p[i] += h
			m[i] -= h
			fd := (f(p) - f(m)) / (2 * h)
			if got := float64(dx.F32()[row*n+i]); math.Abs(got-fd) > 1e-4*(1+math.Abs(fd)) {
				t.Errorf("RMSNormBackward dx[%d, %d] = %v, finite difference %v", row, i, got, fd)
			}
		}
	}
}
