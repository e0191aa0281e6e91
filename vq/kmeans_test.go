package vq

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/tensor"
)

// clustered draws n points in d dimensions around c random centres.
func clustered(seed uint64, n, d, c int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	centres := make([]float64, c*d)
	for i := range centres {
		centres[i] = rng.NormFloat64() * 5
	}
	pts := make([]float32, n*d)
	for i := range n {
		k := rng.IntN(c)
		for j := range d {
			pts[i*d+j] = float32(centres[k*d+j] + rng.NormFloat64()*0.5)
		}
	}
	return pts
}

// exactMSE is the mean over points of min_j ‖x − e_j‖², by brute force in
// float64.
func exactMSE(pts, codebook []float32, d int) float64 {
	var sum float64
	for i := 0; i < len(pts); i += d {
		best := math.Inf(1)
		for j := 0; j < len(codebook); j += d {
			best = min(best, sqDist(pts[i:i+d], codebook[j:j+d]))
		}
		sum += best
	}
	return sum / float64(len(pts)/d)
}

func TestKMeansDeterministic(t *testing.T) {
	const n, d = 3000, 16
	pts := clustered(1, n, d, 20)
	opt := KMeansOptions{K: 24, Iters: 30, Sample: 1000, Seed: 11}
	run := func(threads int) *KMeansResult {
		b := cpu.New(threads)
		defer b.Close()
		r, err := KMeans(b, pts, n, d, opt)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := run(1)
	for _, threads := range []int{1, 3} {
		r := run(threads)
		if !slices.EqualFunc(r.Codebook, first.Codebook, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) ||
			!slices.Equal(r.Usage, first.Usage) || !slices.Equal(r.History, first.History) || r.Iters != first.Iters {
			t.Errorf("%d threads: the result differs from the first 1-thread run", threads)
		}
	}
	opt.Seed = 12
	b := cpu.New(1)
	defer b.Close()
	other, err := KMeans(b, pts, n, d, opt)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other.Codebook, first.Codebook) {
		t.Error("another seed gave the same codebook")
	}
}

func TestKMeansConverges(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	const n, d, k = 2000, 8, 32
	pts := clustered(2, n, d, 12)
	var seeds, iters int
	r, err := KMeans(b, pts, n, d, KMeansOptions{K: k, Iters: 100, Seed: 5, Progress: func(stage string, done, total int) {
		switch stage {
		case "seed":
			seeds++
		case "lloyd":
			iters++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if seeds != k || iters != r.Iters || len(r.History) != r.Iters+1 {
		t.Errorf("progress: %d seeds, %d iterations; result: %d iterations, %d history values", seeds, iters, r.Iters, len(r.History))
	}
	if r.Iters >= 100 {
		t.Errorf("no early stop in %d iterations", r.Iters)
	}
	// Lloyd never raises the MSE; the slack covers rounding the means to fp32.
	for i := 1; i < len(r.History); i++ {
		if r.History[i] > r.History[i-1]*(1+1e-6) {
			t.Errorf("iteration %d raised the MSE from %g to %g", i, r.History[i-1], r.History[i])
		}
	}
	if !(r.History[len(r.History)-1] < r.History[0]) || r.MSE != r.History[len(r.History)-1] {
		t.Errorf("history %v, MSE %g", r.History, r.MSE)
	}
	if want := exactMSE(pts, r.Codebook, d); math.Abs(r.MSE-want) > 1e-6*want {
		t.Errorf("MSE %g, brute force over the codebook gives %g", r.MSE, want)
	}
	total := 0
	for _, u := range r.Usage {
		total += u
	}
	if total != n || r.Dead != 0 || len(r.Codebook) != k*d {
		t.Errorf("usage sums to %d of %d points, %d dead codes", total, n, r.Dead)
	}
}

func TestKMeansErrorFallsWithK(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	const n, d = 1500, 8
	pts := clustered(3, n, d, 40)
	prev := math.Inf(1)
	for _, k := range []int{1, 2, 4, 8, 16, 32, 64} {
		r, err := KMeans(b, pts, n, d, KMeansOptions{K: k, Iters: 25, Sample: 600, Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		if !(r.MSE < prev) {
			t.Errorf("K = %d: MSE %g, not below %g", k, r.MSE, prev)
		}
		prev = r.MSE
	}
}

func TestKMeansDistinctPoints(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	const d = 3
	distinct := [][d]float32{{0, 0, 0}, {1, 0, 0}, {0, 2, 0}, {0, 0, 3}, {1, 1, 1}}
	var pts []float32
	for i := range 12 {
		p := distinct[i%len(distinct)]
		if i == 5 {
			p[1] = float32(math.Copysign(0, -1)) // −0 is the same point as +0
		}
		pts = append(pts, p[:]...)
	}
	n := len(pts) / d
	_, err := KMeans(b, pts, n, d, KMeansOptions{K: 6, Iters: 5})
	if err == nil || !strings.Contains(err.Error(), "5 distinct") {
		t.Errorf("K = 6 over 5 distinct points: %v", err)
	}
	for _, sample := range []int{0, 3} { // a sample of 3 holds too few: all points are used
		r, err := KMeans(b, pts, n, d, KMeansOptions{K: 5, Iters: 5, Sample: sample, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if r.MSE != 0 || r.Dead != 0 {
			t.Errorf("sample %d: K = 5 over 5 distinct points: MSE %g, %d dead", sample, r.MSE, r.Dead)
		}
		for _, p := range distinct {
			found := false
			for j := range 5 {
				found = found || rowsEqual(r.Codebook[j*d:(j+1)*d], p[:])
			}
			if !found {
				t.Errorf("sample %d: point %v is not in the codebook %v", sample, p, r.Codebook)
			}
		}
	}
	for _, c := range []struct {
		name string
		pts  []float32
		n    int
		opt  KMeansOptions
	}{
		{"NaN point", append(slices.Clone(pts[:len(pts)-1]), float32(math.NaN())), n, KMeansOptions{K: 2}},
		{"K = 0", pts, n, KMeansOptions{K: 0}},
		{"negative iterations", pts, n, KMeansOptions{K: 2, Iters: -1}},
		{"length not n·d", pts[1:], n, KMeansOptions{K: 2}},
		{"no points", nil, 0, KMeansOptions{K: 1}},
	} {
		if _, err := KMeans(b, c.pts, c.n, d, c.opt); err == nil || !strings.HasPrefix(err.Error(), "vq: k-means: ") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// newKMeans sets up the Lloyd stage directly, to start it from a chosen
// codebook.
func newKMeans(t *testing.T, b backend.Backend, pts []float32, n, d, k int) *kmeans {
	t.Helper()
	pt, err := b.Load(tensor.FromF32(pts, n, d))
	if err != nil {
		t.Fatal(err)
	}
	return &kmeans{b: b, pts: pt, points: pts, n: n, d: d, k: k, threads: 1, progress: func(string, int, int) {}}
}

// TestKMeansReseedsEmptyClusters starts Lloyd with a centre far from every
// point: it owns no point, so it must be moved onto the point of largest
// error, and no code is dead at the end.
func TestKMeansReseedsEmptyClusters(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	const n, d, k = 600, 4, 6
	pts := clustered(4, n, d, 6)
	init := slices.Clone(pts[:(k-1)*d])
	init = append(init, 1000, 1000, 1000, 1000)
	km := newKMeans(t, b, pts, n, d, k)

	a, err := km.assign(init)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0
	for i := range n {
		if a.err[i] > a.err[worst] {
			worst = i
		}
	}
	next, reseeded := km.update(a, init)
	if reseeded != 1 || !rowsEqual(next[(k-1)*d:], pts[worst*d:(worst+1)*d]) {
		t.Fatalf("re-seeded %d, centre %v, want the point of largest error %v", reseeded, next[(k-1)*d:], pts[worst*d:(worst+1)*d])
	}

	r, err := km.lloyd(init, 50)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reseeded < 1 || r.Dead != 0 {
		t.Errorf("re-seeded %d, %d dead codes at the end", r.Reseeded, r.Dead)
	}
	for _, v := range r.Codebook {
		if math.Abs(float64(v)) > 100 {
			t.Fatalf("a centre stayed far away: %v", r.Codebook)
		}
	}
}
