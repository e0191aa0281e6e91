package backendtest

import (
	"fmt"
	"math"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// checkGrad checks the backward ops of backend.Grad against float64
// derivatives, when the backend implements it.
func checkGrad(c Config) error {
	g, ok := c.B.(backend.Grad)
	if !ok {
		return nil
	}
	for _, f := range []func(backend.Grad) error{gradMatMul, gradLayerNorm, gradRMSNorm, gradActivate, gradAttention} {
		if err := f(g); err != nil {
			return err
		}
	}
	return nil
}

func gradMatMul(b backend.Grad) error {
	r := rng(20)
	for _, s := range mmShapes[1:] {
		m, k, n := s[0], s[1], s[2]
		for _, acc := range []bool{false, true} {
			// dst[M,N] = x[M,K]·w[K,N]: w is stored [K, N] here.
			x, w, d0 := Randn(r, m*k), Randn(r, k*n), Randn(r, m*n)
			dst := upload(b, d0, m, n)
			b.MatMulNN(dst, upload(b, x, m, k), load(b, tensor.FromF32(w, k, n)), acc)
			want, bound := make([]float64, m*n), make([]float64, m*n)
			for i := range m {
				for j := range n {
					s, mag := 0.0, 0.0
					for p := range k {
						t := float64(x[i*k+p]) * float64(w[p*n+j])
						s, mag = s+t, mag+math.Abs(t)
					}
					if acc {
						s, mag = s+float64(d0[i*n+j]), mag+math.Abs(float64(d0[i*n+j]))
					}
					want[i*n+j], bound[i*n+j] = s, dotBound(k, mag)
				}
			}
			if err := within(fmt.Sprintf("MatMulNN %dx%d·%dx%d acc=%v", m, k, k, n, acc), download(b, dst), want, bound); err != nil {
				return err
			}
			// dst[N,K] = a[M,N]ᵀ·x[M,K], summed over the M rows.
			a, e0 := Randn(r, m*n), Randn(r, n*k)
			dt := upload(b, e0, n, k)
			b.MatMulTN(dt, upload(b, a, m, n), upload(b, x, m, k), acc)
			want, bound = make([]float64, n*k), make([]float64, n*k)
			for j := range n {
				for p := range k {
					s, mag := 0.0, 0.0
					for i := range m {
						t := float64(a[i*n+j]) * float64(x[i*k+p])
						s, mag = s+t, mag+math.Abs(t)
					}
					if acc {
						s, mag = s+float64(e0[j*k+p]), mag+math.Abs(float64(e0[j*k+p]))
					}
					want[j*k+p], bound[j*k+p] = s, dotBound(m, mag)
				}
			}
			if err := within(fmt.Sprintf("MatMulTN (%dx%d)ᵀ·%dx%d acc=%v", m, n, m, k, acc), download(b, dt), want, bound); err != nil {
				return err
			}
		}
	}
	return nil
}

func gradLayerNorm(b backend.Grad) error {
	r := rng(21)
	for _, shape := range [][2]int{{1, 8}, {5, 33}, {3, 1024}} {
		rows, d := shape[0], shape[1]
		x, dy, w := Randn(r, rows*d), Randn(r, rows*d), Randn(r, d)
		const eps = 1e-5
		dx := b.New(rows, d)
		b.LayerNormBackward(dx, upload(b, dy, rows, d), upload(b, x, rows, d), upload(b, w, d), eps)
		want, bound := make([]float64, rows*d), make([]float64, rows*d)
		for i := range rows {
			xr, gr := x[i*d:(i+1)*d], dy[i*d:(i+1)*d]
			mean := 0.0
			for _, v := range xr {
				mean += float64(v)
			}
			mean /= float64(d)
			ss := 0.0
			for _, v := range xr {
				ss += (float64(v) - mean) * (float64(v) - mean)
			}
			rstd := 1 / math.Sqrt(ss/float64(d)+eps)
			mg, mgx, mag := 0.0, 0.0, 0.0
			for j := range d {
				xh := (float64(xr[j]) - mean) * rstd
				g := float64(gr[j]) * float64(w[j])
				mg += g
				mgx += g * xh
				mag += math.Abs(g) * (1 + math.Abs(xh))
			}
			mg /= float64(d)
			mgx /= float64(d)
			mag /= float64(d)
			for j := range d {
				xh := (float64(xr[j]) - mean) * rstd
				g := float64(gr[j]) * float64(w[j])
				want[i*d+j] = rstd * (g - mg - xh*mgx)
				bound[i*d+j] = float64(2*d+16) * u * rstd * (math.Abs(g) + mag*(1+math.Abs(xh)))
			}
		}
		if err := within(fmt.Sprintf("LayerNormBackward %dx%d", rows, d), download(b, dx), want, bound); err != nil {
			return err
		}
	}
	return nil
}

func gradRMSNorm(b backend.Grad) error {
	r := rng(24)
	for _, shape := range [][2]int{{1, 8}, {5, 33}, {3, 1024}} {
		rows, d := shape[0], shape[1]
		x, dy, w := Randn(r, rows*d), Randn(r, rows*d), Randn(r, d)
		const eps = 1e-5
		dx := b.New(rows, d)
		b.RMSNormBackward(dx, upload(b, dy, rows, d), upload(b, x, rows, d), upload(b, w, d), eps)
		want, bound := make([]float64, rows*d), make([]float64, rows*d)
		for i := range rows {
			xr, gr := x[i*d:(i+1)*d], dy[i*d:(i+1)*d]
			ss := 0.0
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			rr := 1 / math.Sqrt(ss/float64(d)+eps)
			mgx, mag := 0.0, 0.0
			for j := range d {
				g := float64(gr[j]) * float64(w[j])
				mgx += g * float64(xr[j])
				mag += math.Abs(g * float64(xr[j]))
			}
			mgx /= float64(d)
			mag /= float64(d)
			for j := range d {
				g := float64(gr[j]) * float64(w[j])
				xj := float64(xr[j])
				want[i*d+j] = rr * (g - xj*rr*rr*mgx)
				bound[i*d+j] = float64(2*d+16) * u * rr * (math.Abs(g) + math.Abs(xj)*rr*rr*mag)
			}
		}
		if err := within(fmt.Sprintf("RMSNormBackward %dx%d", rows, d), download(b, dx), want, bound); err != nil {
			return err
		}
	}
	return nil
}

func gradActivate(b backend.Grad) error {
	r := rng(22)
	for _, f := range []backend.Activation{backend.GELU, backend.QuickGELU, backend.SiLU} {
		x, dy := Randn(r, 257), Randn(r, 257)
		dx := b.New(257)
		b.ActivateBackward(dx, upload(b, dy, 257), upload(b, x, 257), f)
		want, bound := make([]float64, 257), make([]float64, 257)
		for i := range x {
			_, d := activation(f, float64(x[i]))
			want[i] = float64(dy[i]) * d
			bound[i] = 32 * u * math.Abs(float64(dy[i])) * (1 + math.Abs(float64(x[i])))
		}
		if err := within(fmt.Sprintf("ActivateBackward %v", f), download(b, dx), want, bound); err != nil {
			return err
		}
	}
	return nil
}

// gradAttention checks dq, dk, dv of bidirectional attention
// (AttentionBackward) and of causal grouped-query attention
// (CausalAttentionBackward) against the float64 derivative; the bound scales
// with the magnitudes of the products that make each gradient and the key
// count.
func gradAttention(b backend.Grad) error {
	r := rng(23)
	for _, tc := range []struct {
		t, heads, kvHeads, d int
		causal               bool
	}{{1, 1, 1, 4, false}, {9, 2, 2, 8, false}, {33, 4, 4, 16, false}, {1, 2, 1, 8, true}, {7, 4, 2, 8, true}, {20, 4, 4, 16, true}} {
		t, heads, kvHeads, d := tc.t, tc.heads, tc.kvHeads, tc.d
		nq, nk := t*heads*d, t*kvHeads*d
		q, k, v, dout := Randn(r, nq), Randn(r, nk), Randn(r, nk), Randn(r, nq)
		dq, dk, dv := b.New(t, heads*d), b.New(t, kvHeads*d), b.New(t, kvHeads*d)
		qt, kt, vt, ot := upload(b, q, t, heads*d), upload(b, k, t, kvHeads*d), upload(b, v, t, kvHeads*d), upload(b, dout, t, heads*d)
		if tc.causal {
			b.CausalAttentionBackward(dq, dk, dv, ot, qt, kt, vt, heads, kvHeads)
		} else {
			b.AttentionBackward(dq, dk, dv, ot, qt, kt, vt, heads)
		}
		wq, wk, wv := make([]float64, nq), make([]float64, nk), make([]float64, nk)
		mq, mk, mv := make([]float64, nq), make([]float64, nk), make([]float64, nk)
		scale := 1 / math.Sqrt(float64(d))
		atQ := func(i, h, e int) int { return i*heads*d + h*d + e }
		atK := func(j, h, e int) int { return j*kvHeads*d + h*d + e }
		for h := range heads {
			kh := h / (heads / kvHeads)
			for i := range t {
				n := t
				if tc.causal {
					n = i + 1
				}
				p := make([]float64, n)
				smax := math.Inf(-1)
				for j := range n {
					s := 0.0
					for e := range d {
						s += float64(q[atQ(i, h, e)]) * float64(k[atK(j, kh, e)])
					}
					p[j] = s * scale
					smax = max(smax, p[j])
				}
				z := 0.0
				for j := range n {
					p[j] = math.Exp(p[j] - smax)
					z += p[j]
				}
				dp := make([]float64, n)
				rs, rmag := 0.0, 0.0
				for j := range n {
					p[j] /= z
					for e := range d {
						dp[j] += float64(dout[atQ(i, h, e)]) * float64(v[atK(j, kh, e)])
					}
					rs += dp[j] * p[j]
					rmag += math.Abs(dp[j]) * p[j]
				}
				for j := range n {
					ds := p[j] * (dp[j] - rs)
					dsm := p[j] * (math.Abs(dp[j]) + rmag)
					for e := range d {
						qi, kj := atQ(i, h, e), atK(j, kh, e)
						wv[kj] += p[j] * float64(dout[qi])
						mv[kj] += p[j] * math.Abs(float64(dout[qi]))
						wq[qi] += ds * float64(k[kj]) * scale
						mq[qi] += dsm * math.Abs(float64(k[kj])) * scale
						wk[kj] += ds * float64(q[qi]) * scale
						mk[kj] += dsm * math.Abs(float64(q[qi])) * scale
					}
				}
			}
		}
		for _, g := range []struct {
			name      string
			got       backend.Tensor
			want, mag []float64
		}{{"dq", dq, wq, mq}, {"dk", dk, wk, mk}, {"dv", dv, wv, mv}} {
			bound := make([]float64, len(g.want))
			for i := range bound {
				// Every gradient goes through the softmax weights, whose
				// scores carry a dot product's error of length d.
				bound[i] = float64(4*d+4*t+32)*u*g.mag[i]*(1+math.Sqrt(float64(d))) + 1e-30
			}
			if err := within(fmt.Sprintf("attention backward %+v %s", tc, g.name), download(b, g.got), g.want, bound); err != nil {
				return err
			}
		}
	}
	return nil
}
