package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// Config names the backend under test.
type Config struct {
	// B is the backend under test.
	B backend.Backend
	// Variants must compute every op with the same bits as B: the same
	// backend on other thread counts, say. May be empty.
	Variants []backend.Backend
}

// Check is one conformance check; Run returns nil when the backend passes.
type Check struct {
	Name string
	Run  func(c Config) error
}

// u is the unit roundoff of float32.
const u = 1.0 / (1 << 24)

// Run runs every check as a subtest of t.
func Run(t *testing.T, c Config) {
	for _, ch := range Checks() {
		t.Run(ch.Name, func(t *testing.T) {
			if err := Safe(ch, c); err != nil {
				t.Error(err)
			}
		})
	}
}

// Safe runs one check and turns a panic into its error.
func Safe(ch Check, c Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s panicked: %v", ch.Name, r)
		}
	}()
	return ch.Run(c)
}

// Checks lists the suite: the core ops, then each extension, which passes
// trivially for a backend that does not implement it.
func Checks() []Check {
	return []Check{
		{"Views", checkViews},
		{"Load", checkLoad},
		{"MatMul", checkMatMul},
		{"MatMulAdd", checkMatMulAdd},
		{"AddScaled", checkAddScaled},
		{"Mul", checkMul},
		{"LayerNorm", checkLayerNorm},
		{"RMSNorm", checkRMSNorm},
		{"Activate", checkActivate},
		{"RoPE", checkRoPE},
		{"Attention", checkAttention},
		{"Embed", checkEmbed},
		{"Nearest", checkNearest},
		{"BadShapes", checkBadShapes},
		{"Determinism", checkDeterminism},
		{"Grad", checkGrad},
	}
}

// --- helpers ---------------------------------------------------------------

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// Randn returns n standard normal values.
func Randn(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// Weight stores v as dt and returns the tensor and the values it holds
// (rounded through dt): what a kernel must compute with.
func Weight(v []float32, dt tensor.DType, shape ...int) (*tensor.Tensor, []float32) {
	t := tensor.New(dt, shape...)
	switch dt {
	case tensor.F32:
		copy(t.F32(), v)
	case tensor.F16:
		for i, x := range v {
			t.U16()[i] = tensor.F32ToF16(x)
		}
	case tensor.BF16:
		for i, x := range v {
			t.U16()[i] = tensor.F32ToBF16(x)
		}
	}
	return t, t.ToF32()
}

func load(b backend.Backend, t *tensor.Tensor) backend.Tensor {
	w, err := b.Load(t)
	if err != nil {
		panic(err)
	}
	return w
}

func upload(b backend.Backend, v []float32, shape ...int) backend.Tensor {
	t := b.New(shape...)
	b.Write(t, v)
	return t
}

func download(b backend.Backend, t backend.Tensor) []float32 {
	v := make([]float32, t.Shape().Numel())
	b.Read(v, t)
	return v
}

// within compares got with the reference: |got − want| ≤ bound elementwise,
// and nothing NaN or infinite. It names the first offending element.
func within(what string, got []float32, want, bound []float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d values, reference has %d", what, len(got), len(want))
	}
	for i, g := range got {
		d := math.Abs(float64(g) - want[i])
		if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) || !(d <= bound[i]) {
			return fmt.Errorf("%s: element %d = %g, reference %g, |Δ| %.3g above the bound %.3g", what, i, g, want[i], d, bound[i])
		}
	}
	return nil
}

// exact compares bits.
func exact(what string, got, want []float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return fmt.Errorf("%s: element %d = %g, want exactly %g", what, i, got[i], want[i])
		}
	}
	return nil
}

var weightTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16}

// --- views, loading ----------------------------------------------------------

func checkViews(c Config) error {
	b := c.B
	r := rng(1)
	v := Randn(r, 6*5)
	t := upload(b, v, 6, 5)
	if got := download(b, t); exact("Write/Read", got, v) != nil {
		return exact("Write/Read", got, v)
	}
	if z := download(b, b.New(3, 4)); exact("New is zeroed", z, make([]float32, 12)) != nil {
		return exact("New is zeroed", z, make([]float32, 12))
	}
	rows := b.Rows(t, 2, 5)
	if s := rows.Shape(); len(s) != 2 || s[0] != 3 || s[1] != 5 {
		return fmt.Errorf("Rows(2, 5) of [6, 5] has shape %v", s)
	}
	if err := exact("Rows(2, 5)", download(b, rows), v[10:25]); err != nil {
		return err
	}
	// A write through a view lands in the parent.
	b.Write(b.Rows(t, 0, 1), []float32{9, 8, 7, 6, 5})
	if got := download(b, t)[:5]; exact("write through Rows", got, []float32{9, 8, 7, 6, 5}) != nil {
		return exact("write through Rows", got, []float32{9, 8, 7, 6, 5})
	}
	re := b.Reshape(t, 3, 10)
	if err := exact("Reshape", download(b, b.Rows(re, 1, 2)), download(b, t)[10:20]); err != nil {
		return err
	}
	if got := b.Rows(t, 3, 3).Shape(); got.Numel() != 0 {
		return fmt.Errorf("empty Rows view has %d elements", got.Numel())
	}
	// Copy from row 2 on, widening F16.
	src, vals := Weight(Randn(r, 2*5), tensor.F16, 2, 5)
	dst := b.New(6, 5)
	b.Copy(dst, 2, load(b, src))
	want := make([]float32, 30)
	copy(want[10:], vals)
	return exact("Copy of F16 rows", download(b, dst), want)
}

func checkLoad(c Config) error {
	b := c.B
	r := rng(2)
	for _, dt := range weightTypes {
		for _, shape := range [][]int{{7}, {3, 5}} {
			w, vals := Weight(Randn(r, tensor.Shape(shape).Numel()), dt, shape...)
			lw := load(b, w)
			if err := exact(fmt.Sprintf("Load %v %v then Read", dt, shape), download(b, lw), vals); err != nil {
				return err
			}
		}
	}
	if _, err := b.Load(tensor.New(tensor.I32, 4)); err == nil {
		return fmt.Errorf("loading an I32 tensor as a weight did not fail")
	}
	return nil
}

// --- products ----------------------------------------------------------------

// mmShapes are (M, K, N): empty, single, odd and larger-than-a-tile shapes.
var mmShapes = [][3]int{{0, 5, 3}, {1, 1, 1}, {1, 64, 33}, {3, 7, 5}, {17, 33, 40}, {65, 130, 97}, {2, 300, 257}}

// dotBound is the error bound of an fp32 sum of k products in any order:
// γ_{k+1} times the sum of the terms' magnitudes.
func dotBound(k int, mag float64) float64 { return float64(k+2) * u * mag * (1 + 1e-6) }

func matmulRef(x, w, bias []float32, m, k, n int) (want, bound []float64) {
	want, bound = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for j := range n {
			s, mag := 0.0, 0.0
			for p := range k {
				t := float64(x[i*k+p]) * float64(w[j*k+p])
				s += t
				mag += math.Abs(t)
			}
			if bias != nil {
				s += float64(bias[j])
				mag += math.Abs(float64(bias[j]))
			}
			want[i*n+j], bound[i*n+j] = s, dotBound(k, mag)
		}
	}
	return want, bound
}

func checkMatMul(c Config) error {
	b := c.B
	r := rng(3)
	for _, s := range mmShapes {
		m, k, n := s[0], s[1], s[2]
		for _, dt := range weightTypes {
			for _, withBias := range []bool{false, true} {
				x := Randn(r, m*k)
				wt, wv := Weight(Randn(r, n*k), dt, n, k)
				var bias []float32
				var bt backend.Tensor
				if withBias {
					bias = Randn(r, n)
					bt = load(b, tensor.FromF32(bias, n))
				}
				dst := b.New(m, n)
				b.Write(dst, Randn(r, m*n)) // MatMul overwrites
				b.MatMul(dst, upload(b, x, m, k), load(b, wt), bt)
				want, bound := matmulRef(x, wv, bias, m, k, n)
				if err := within(fmt.Sprintf("MatMul %dx%d·(%dx%d %v)ᵀ bias=%v", m, k, n, k, dt, withBias), download(b, dst), want, bound); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkMatMulAdd(c Config) error {
	b := c.B
	r := rng(4)
	for _, s := range mmShapes {
		m, k, n := s[0], s[1], s[2]
		for _, dt := range weightTypes {
			x, y0 := Randn(r, m*k), Randn(r, m*n)
			wt, wv := Weight(Randn(r, n*k), dt, n, k)
			const scale = 0.375
			dst := upload(b, y0, m, n)
			b.MatMulAdd(dst, upload(b, x, m, k), load(b, wt), scale)
			want, bound := matmulRef(x, wv, nil, m, k, n)
			for i := range want {
				want[i] = float64(y0[i]) + scale*want[i]
				bound[i] = scale*bound[i] + 3*u*(math.Abs(float64(y0[i]))+math.Abs(want[i]))
			}
			if err := within(fmt.Sprintf("MatMulAdd %dx%d·(%dx%d %v)ᵀ", m, k, n, k, dt), download(b, dst), want, bound); err != nil {
				return err
			}
		}
	}
	return nil
}

// --- pointwise ---------------------------------------------------------------

func checkAddScaled(c Config) error {
	b := c.B
	r := rng(5)
	for _, rows := range []int{1, 5, 33} {
		const cols = 19
		for _, broadcast := range []bool{false, true} {
			d0 := Randn(r, rows*cols)
			xn := rows * cols
			if broadcast {
				xn = cols
			}
			x := Randn(r, xn)
			dst := upload(b, d0, rows, cols)
			xs := []int{rows, cols}
			if broadcast {
				xs = []int{cols}
			}
			b.AddScaled(dst, upload(b, x, xs...), -1.5)
			want, bound := make([]float64, rows*cols), make([]float64, rows*cols)
			for i := range want {
				t := -1.5 * float64(x[i%xn])
				want[i] = float64(d0[i]) + t
				bound[i] = 2 * u * (math.Abs(float64(d0[i])) + math.Abs(t))
			}
			if err := within(fmt.Sprintf("AddScaled %dx%d broadcast=%v", rows, cols, broadcast), download(b, dst), want, bound); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkMul(c Config) error {
	b := c.B
	r := rng(6)
	for _, rows := range []int{1, 7} {
		const cols = 37
		for _, broadcast := range []bool{false, true} {
			for _, alias := range []bool{false, true} {
				a := Randn(r, rows*cols)
				bn := rows * cols
				if broadcast {
					bn = cols
				}
				bv := Randn(r, bn)
				at := upload(b, a, rows, cols)
				bs := []int{rows, cols}
				if broadcast {
					bs = []int{cols}
				}
				dst := at
				if !alias {
					dst = b.New(rows, cols)
				}
				b.Mul(dst, at, upload(b, bv, bs...))
				want, bound := make([]float64, rows*cols), make([]float64, rows*cols)
				for i := range want {
					want[i] = float64(a[i]) * float64(bv[i%bn])
					bound[i] = u * math.Abs(want[i])
				}
				if err := within(fmt.Sprintf("Mul %dx%d broadcast=%v alias=%v", rows, cols, broadcast, alias), download(b, dst), want, bound); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// normRows checks LayerNorm (rms false) or RMSNorm (rms true) on rows of
// width d, with and without a bias, aliased and not. The bound follows the
// computation: the row statistics are sums of d terms (error ≈ d·u relative
// to the sum of magnitudes), which perturb every output by that much of its
// normalised size, plus a few roundings of the affine step.
func normRows(c Config, rms bool) error {
	b := c.B
	r := rng(7)
	name := "LayerNorm"
	if rms {
		name = "RMSNorm"
	}
	for _, shape := range [][2]int{{1, 1}, {1, 64}, {5, 33}, {3, 1024}} {
		rows, d := shape[0], shape[1]
		for _, dt := range weightTypes {
			for _, alias := range []bool{false, true} {
				x := Randn(r, rows*d)
				for i := range x {
					x[i] = 3*x[i] + 2 // an offset the mean must remove
				}
				wt, w := Weight(Randn(r, d), dt, d)
				bt, bias := Weight(Randn(r, d), dt, d)
				xt := upload(b, x, rows, d)
				dst := xt
				if !alias {
					dst = b.New(rows, d)
				}
				const eps = 1e-5
				if rms {
					b.RMSNorm(dst, xt, load(b, wt), eps)
				} else {
					b.LayerNorm(dst, xt, load(b, wt), load(b, bt), eps)
				}
				want, bound := make([]float64, rows*d), make([]float64, rows*d)
				for i := range rows {
					row := x[i*d : (i+1)*d]
					mean, mag := 0.0, 0.0
					for _, v := range row {
						mean += float64(v)
						mag += math.Abs(float64(v))
					}
					mean /= float64(d)
					mag /= float64(d)
					if rms {
						mean = 0
					}
					ss := 0.0
					for _, v := range row {
						ss += (float64(v) - mean) * (float64(v) - mean)
					}
					rstd := 1 / math.Sqrt(ss/float64(d)+eps)
					for j, v := range row {
						xh := (float64(v) - mean) * rstd
						o := xh * float64(w[j])
						// A mean off by δ ≈ d·u·mag moves x̂ by δ·rstd; the
						// variance's relative error moves it by ≈ d·u·|x̂|.
						e := (float64(2*d+8)*u*(mag*rstd+math.Abs(xh)) + 4*u*math.Abs(xh)) * math.Abs(float64(w[j]))
						if !rms {
							o += float64(bias[j])
							e += 2 * u * (math.Abs(o) + math.Abs(float64(bias[j])))
						}
						want[i*d+j], bound[i*d+j] = o, e+2*u*math.Abs(o)
					}
				}
				if err := within(fmt.Sprintf("%s %dx%d %v alias=%v", name, rows, d, dt, alias), download(b, dst), want, bound); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkLayerNorm(c Config) error { return normRows(c, false) }
func checkRMSNorm(c Config) error   { return normRows(c, true) }

// activation returns f(x) and f′(x) in float64.
func activation(f backend.Activation, x float64) (y, dy float64) {
	switch f {
	case backend.GELU:
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		return x * cdf, cdf + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
	case backend.QuickGELU:
		s := 1 / (1 + math.Exp(-1.702*x))
		return x * s, s + 1.702*x*s*(1-s)
	case backend.SiLU:
		s := 1 / (1 + math.Exp(-x))
		return x * s, s + x*s*(1-s)
	}
	panic("unknown activation")
}

// checkActivate bounds each result by a few ulps of |x| (the gate is in
// [0, 1] and computed from an exp to a few ulps).
func checkActivate(c Config) error {
	b := c.B
	r := rng(8)
	for _, f := range []backend.Activation{backend.GELU, backend.QuickGELU, backend.SiLU} {
		for _, n := range []int{1, 7, 64, 1000} {
			x := Randn(r, n)
			for i := range x {
				x[i] *= 4
			}
			if n >= 7 {
				x[0], x[1], x[2] = 0, -30, 30
			}
			xt := upload(b, x, n)
			b.Activate(xt, xt, f)
			want, bound := make([]float64, n), make([]float64, n)
			for i, v := range x {
				want[i], _ = activation(f, float64(v))
				bound[i] = 16*u*math.Abs(float64(v)) + 1e-30
			}
			if err := within(fmt.Sprintf("Activate %v n=%d (in place)", f, n), download(b, xt), want, bound); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRoPE(c Config) error {
	b := c.B
	r := rng(9)
	const heads, d, maxPos = 3, 8, 20
	cos, sin := make([]float32, maxPos*d), make([]float32, maxPos*d)
	for p := range maxPos {
		for i := range d / 2 {
			a := float64(p) / math.Pow(10000, float64(2*i)/d)
			for _, j := range []int{i, i + d/2} {
				cos[p*d+j], sin[p*d+j] = float32(math.Cos(a)), float32(math.Sin(a))
			}
		}
	}
	ct, st := upload(b, cos, maxPos, d), upload(b, sin, maxPos, d)
	for _, tc := range [][2]int{{1, 0}, {5, 0}, {4, 13}} {
		t, pos0 := tc[0], tc[1]
		x := Randn(r, t*heads*d)
		xt := upload(b, x, t, heads*d)
		b.RoPE(xt, ct, st, heads, pos0)
		want, bound := make([]float64, len(x)), make([]float64, len(x))
		for i := range t {
			p := pos0 + i
			for h := range heads {
				o := i*heads*d + h*d
				for j := range d {
					var rot float64 // rotate_half: (−x2, x1)
					if j < d/2 {
						rot = -float64(x[o+j+d/2])
					} else {
						rot = float64(x[o+j-d/2])
					}
					a, s := float64(x[o+j])*float64(cos[p*d+j]), rot*float64(sin[p*d+j])
					want[o+j], bound[o+j] = a+s, 3*u*(math.Abs(a)+math.Abs(s))
				}
			}
		}
		if err := within(fmt.Sprintf("RoPE T=%d pos0=%d", t, pos0), download(b, xt), want, bound); err != nil {
			return err
		}
	}
	return nil
}

// attentionRef computes softmax(q·kᵀ/√d + mask)·v per head in float64, with a
// bound built from the score's dot-product error (which perturbs the
// softmax weights relatively by about twice itself) and the sum over keys.
func attentionRef(q, k, v []float32, tq, tk, heads, kvHeads, d int, causal bool, pos0 int) (want, bound []float64) {
	want, bound = make([]float64, tq*heads*d), make([]float64, tq*heads*d)
	scale := 1 / math.Sqrt(float64(d))
	group := heads / kvHeads
	for h := range heads {
		kh := h / group
		for i := range tq {
			n := tk
			if causal {
				n = pos0 + i + 1
			}
			s, p := make([]float64, n), make([]float64, n)
			smax, serr := math.Inf(-1), 0.0
			for j := range n {
				dot, mag := 0.0, 0.0
				for e := range d {
					t := float64(q[i*heads*d+h*d+e]) * float64(k[j*kvHeads*d+kh*d+e])
					dot += t
					mag += math.Abs(t)
				}
				s[j] = dot * scale
				smax = max(smax, s[j])
				serr = max(serr, dotBound(d, mag)*scale+2*u*math.Abs(s[j]))
			}
			z := 0.0
			for j := range n {
				p[j] = math.Exp(s[j] - smax)
				z += p[j]
			}
			for e := range d {
				o, mag := 0.0, 0.0
				for j := range n {
					vv := float64(v[j*kvHeads*d+kh*d+e])
					o += p[j] / z * vv
					mag += p[j] / z * math.Abs(vv)
				}
				idx := i*heads*d + h*d + e
				want[idx] = o
				bound[idx] = (4*serr+float64(2*n+16)*u)*mag + 1e-30
			}
		}
	}
	return want, bound
}

func checkAttention(c Config) error {
	b := c.B
	r := rng(10)
	type tc struct {
		tq, tk, heads, kvHeads, d int
		causal                    bool
		pos0                      int
	}
	for _, t := range []tc{
		{1, 1, 1, 1, 4, false, 0},
		{7, 7, 2, 2, 16, false, 0},
		{13, 40, 4, 4, 8, false, 0},
		{1, 9, 4, 2, 8, true, 8},   // a decode step over a cache
		{6, 6, 4, 1, 8, true, 0},   // a prompt, multi-query
		{5, 30, 6, 3, 16, true, 3}, // a chunk mid-cache, GQA; keys past pos0+5 ignored
		{40, 40, 2, 2, 64, false, 0},
	} {
		q := Randn(r, t.tq*t.heads*t.d)
		k := Randn(r, t.tk*t.kvHeads*t.d)
		v := Randn(r, t.tk*t.kvHeads*t.d)
		dst := b.New(t.tq, t.heads*t.d)
		b.Attention(dst, upload(b, q, t.tq, t.heads*t.d), upload(b, k, t.tk, t.kvHeads*t.d), upload(b, v, t.tk, t.kvHeads*t.d),
			t.heads, t.kvHeads, t.causal, t.pos0)
		want, bound := attentionRef(q, k, v, t.tq, t.tk, t.heads, t.kvHeads, t.d, t.causal, t.pos0)
		if err := within(fmt.Sprintf("Attention %+v", t), download(b, dst), want, bound); err != nil {
			return err
		}
	}
	return nil
}

func checkEmbed(c Config) error {
	b := c.B
	r := rng(11)
	const vocab, d = 50, 12
	for _, dt := range weightTypes {
		wt, vals := Weight(Randn(r, vocab*d), dt, vocab, d)
		table := load(b, wt)
		ids := []int32{0, 49, 7, 7, 3}
		dst := b.New(len(ids), d)
		b.Embed(dst, table, ids)
		want := make([]float32, 0, len(ids)*d)
		for _, id := range ids {
			want = append(want, vals[int(id)*d:int(id+1)*d]...)
		}
		if err := exact(fmt.Sprintf("Embed %v", dt), download(b, dst), want); err != nil {
			return err
		}
	}
	return nil
}

// checkNearest checks the codebook search: where float64 scores separate
// the best code from the rest by more than the fp32 error of a score (a
// dot product of D terms, doubled, plus the norm's rounding), the index must
// be the reference's, and the score and margin within that error; exact
// ties (duplicate codes) must go to the smallest index with margin 0.
func checkNearest(c Config) error {
	b := c.B
	r := rng(13)
	for _, dt := range weightTypes {
		for _, s := range [][3]int{{1, 16, 1}, {5, 8, 3}, {577, 64, 256}, {40, 33, 1000}} {
			n, d, k := s[0], s[1], s[2]
			x := Randn(r, n*d)
			wt, cb := Weight(Randn(r, k*d), dt, k, d)
			if k >= 3 {
				copy(cb[2*d:3*d], cb[d:2*d]) // codes 1 and 2 equal: a planted tie
				wt, cb = Weight(cb, dt, k, d)
				copy(x[:d], cb[d:2*d]) // row 0 sits on them
			}
			norms := make([]float32, k)
			for j := range k {
				v := 0.0
				for e := range d {
					v += float64(cb[j*d+e]) * float64(cb[j*d+e])
				}
				norms[j] = float32(v)
			}
			idx, best, margin := make([]int32, n), make([]float32, n), make([]float32, n)
			b.Nearest(idx, best, margin, upload(b, x, n, d), load(b, wt), norms)
			for t := range n {
				sc, bound := make([]float64, k), make([]float64, k)
				for j := range k {
					dot, mag := 0.0, 0.0
					for e := range d {
						p := float64(x[t*d+e]) * float64(cb[j*d+e])
						dot, mag = dot+p, mag+math.Abs(p)
					}
					sc[j] = float64(norms[j]) - 2*dot
					bound[j] = 2*dotBound(d, mag) + 2*u*(math.Abs(float64(norms[j]))+2*math.Abs(dot))
				}
				i1, i2 := 0, -1
				for j := 1; j < k; j++ {
					if sc[j] < sc[i1] {
						i1, i2 = j, i1
					} else if i2 < 0 || sc[j] < sc[i2] {
						i2 = j
					}
				}
				what := fmt.Sprintf("Nearest %v N=%d D=%d K=%d row %d", dt, n, d, k, t)
				if k >= 3 && t == 0 {
					if idx[0] != 1 || margin[0] != 0 {
						return fmt.Errorf("%s: tie between codes 1 and 2 gave index %d, margin %g; want 1 and 0", what, idx[0], margin[0])
					}
					continue
				}
				if k == 1 {
					if idx[t] != 0 || !math.IsInf(float64(margin[t]), 1) {
						return fmt.Errorf("%s: one code gave index %d, margin %g; want 0 and +Inf", what, idx[t], margin[t])
					}
					continue
				}
				if sc[i2]-sc[i1] > bound[i1]+bound[i2] && int(idx[t]) != i1 {
					return fmt.Errorf("%s: index %d, reference %d (scores %g and %g apart by more than their error)", what, idx[t], i1, sc[i1], sc[i2])
				}
				if d := math.Abs(float64(best[t]) - sc[idx[t]]); !(d <= bound[idx[t]]) {
					return fmt.Errorf("%s: best score %g, reference %g for that code", what, best[t], sc[idx[t]])
				}
			}
		}
	}
	return nil
}

// --- errors ------------------------------------------------------------------

// panics runs f and reports whether it panicked with a "backend:" message
// that names the op and shows the shapes involved.
func panics(op string, f func()) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			err = fmt.Errorf("%s with mismatched shapes did not panic", op)
			return
		}
		if msg := fmt.Sprint(r); !strings.HasPrefix(msg, "backend:") || !strings.Contains(msg, op) || !strings.Contains(msg, "[") {
			err = fmt.Errorf("%s panicked with %q; want a \"backend: %s ...\" message with the shapes", op, msg, op)
		}
	}()
	f()
	return nil
}

func checkBadShapes(c Config) error {
	b := c.B
	w := load(b, tensor.New(tensor.F32, 4, 3))
	cases := []struct {
		op string
		f  func()
	}{
		{"MatMul", func() { b.MatMul(b.New(2, 4), b.New(2, 5), w, nil) }},
		{"MatMul", func() { b.MatMul(b.New(2, 3), b.New(2, 3), w, nil) }},
		{"LayerNorm", func() { b.LayerNorm(b.New(2, 5), b.New(2, 4), b.New(4), nil, 1e-5) }},
		{"RMSNorm", func() { b.RMSNorm(b.New(2, 4), b.New(2, 4), b.New(5), 1e-5) }},
		{"Attention", func() { b.Attention(b.New(3, 8), b.New(3, 8), b.New(3, 6), b.New(3, 6), 2, 2, false, 0) }},
		{"Attention", func() { b.Attention(b.New(3, 8), b.New(3, 8), b.New(2, 8), b.New(2, 8), 2, 2, true, 0) }},
		{"Embed", func() { b.Embed(b.New(2, 4), w, []int32{0}) }},
		{"Nearest", func() { b.Nearest(make([]int32, 2), make([]float32, 2), nil, b.New(2, 3), w, make([]float32, 3)) }},
		{"Copy", func() { b.Copy(b.New(2, 3), 1, b.New(2, 3)) }},
		{"Write", func() { b.Write(b.New(2, 3), make([]float32, 5)) }},
	}
	if g, ok := b.(backend.Grad); ok {
		cases = append(cases, []struct {
			op string
			f  func()
		}{
			{"MatMulNN", func() { g.MatMulNN(b.New(2, 4), b.New(2, 5), w, false) }},
			{"LayerNormBackward", func() { g.LayerNormBackward(b.New(2, 4), b.New(2, 4), b.New(2, 4), b.New(5), 1e-5) }},
			{"AttentionBackward", func() {
				g.AttentionBackward(b.New(3, 8), b.New(3, 8), b.New(3, 8), b.New(3, 8), b.New(3, 8), b.New(3, 6), b.New(3, 8), 2)
			}},
		}...)
	}
	for _, cs := range cases {
		if err := panics(cs.op, cs.f); err != nil {
			return err
		}
	}
	return nil
}

// --- determinism ---------------------------------------------------------------

// checkDeterminism runs the reductions of every op on each variant and
// expects B's bits.
func checkDeterminism(c Config) error {
	if len(c.Variants) == 0 {
		return nil
	}
	run := func(b backend.Backend) [][]float32 {
		r := rng(12)
		var outs [][]float32
		for _, s := range [][3]int{{1, 4096, 64}, {37, 300, 200}, {130, 512, 96}} {
			m, k, n := s[0], s[1], s[2]
			for _, dt := range weightTypes {
				wt, _ := Weight(Randn(r, n*k), dt, n, k)
				dst := b.New(m, n)
				b.MatMul(dst, upload(b, Randn(r, m*k), m, k), load(b, wt), nil)
				outs = append(outs, download(b, dst))
			}
		}
		x := upload(b, Randn(r, 9*1024), 9, 1024)
		ln := b.New(9, 1024)
		b.LayerNorm(ln, x, upload(b, Randn(r, 1024), 1024), upload(b, Randn(r, 1024), 1024), 1e-5)
		outs = append(outs, download(b, ln))
		q, k, v := upload(b, Randn(r, 33*64), 33, 64), upload(b, Randn(r, 33*64), 33, 64), upload(b, Randn(r, 33*64), 33, 64)
		att := b.New(33, 64)
		b.Attention(att, q, k, v, 4, 4, false, 0)
		outs = append(outs, download(b, att))
		k2, v2 := upload(b, Randn(r, 33*32), 33, 32), upload(b, Randn(r, 33*32), 33, 32)
		b.Attention(att, q, k2, v2, 4, 2, true, 0)
		return append(outs, download(b, att))
	}
	want := run(c.B)
	for _, vb := range c.Variants {
		for i, got := range run(vb) {
			if err := exact(fmt.Sprintf("result %d on %s against %s", i, vb.Name(), c.B.Name()), got, want[i]); err != nil {
				return err
			}
		}
	}
	return nil
}
