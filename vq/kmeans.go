package vq

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/tensor"
)

// KMeansOptions configures KMeans.
type KMeansOptions struct {
	K      int // codebook size
	Iters  int // most Lloyd iterations; 0 keeps the k-means++ seeds
	Sample int // points the seeding draws from; ≤ 0 or ≥ n: all points
	Seed   uint64
	// Progress, when not nil, is called from KMeans's goroutine after each
	// seed ("seed", centres chosen, K) and each iteration ("lloyd", done, Iters).
	Progress func(stage string, done, total int)
}

// KMeansResult is a fitted codebook and how well it fits.
type KMeansResult struct {
	Codebook []float32 // [K, D]
	MSE      float64   // mean ‖x − e_i‖² per point, i the point's code
	Dead     int       // codes no point uses at the end
	Iters    int       // Lloyd iterations run
	Usage    []int     // [K] points per code
	History  []float64 // MSE of the seeds, then after each iteration (Iters+1 values)
	Reseeded int       // empty clusters re-seeded over all iterations
}

// KMeans fits a K-entry codebook to points [n, d]: k-means++ seeding
// (Arthur & Vassilvitskii 2007) on a sample, then Lloyd iterations whose
// assignment step is the argmin Quantize uses (one GEMM per block of points
// plus the norm vector). A cluster left empty is re-seeded with the point of
// largest error not yet used; iterations stop early once no assignment
// changes. K above the number of distinct points is refused.
//
// The result depends only on the inputs and the seed, never on the thread
// count: every per-point quantity is computed independently of the others,
// and every sum over points runs sequentially in point order.
func KMeans(b backend.Backend, points []float32, n, d int, opt KMeansOptions) (*KMeansResult, error) {
	switch {
	case n < 1 || d < 1 || len(points) != n*d:
		return nil, fmt.Errorf("vq: k-means: %d values are not [n, d] = [%d, %d] with n, d ≥ 1", len(points), n, d)
	case opt.K < 1 || uint64(opt.K) > MaxK:
		return nil, fmt.Errorf("vq: k-means: K = %d is outside [1, %d]", opt.K, uint64(MaxK))
	case opt.Iters < 0:
		return nil, fmt.Errorf("vq: k-means: %d iterations", opt.Iters)
	}
	for i, x := range points {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("vq: k-means: point %d, channel %d is %v", i/d, i%d, x)
		}
	}
	if got := countDistinct(points, nil, d, opt.K); got < opt.K {
		return nil, fmt.Errorf("vq: k-means: K = %d, but the %d points hold only %d distinct vectors", opt.K, n, got)
	}
	km := &kmeans{b: b, points: points, n: n, d: d, k: opt.K, threads: threadsOf(b), progress: opt.Progress}
	if km.progress == nil {
		km.progress = func(string, int, int) {}
	}
	pts, err := b.Load(tensor.FromF32(points, n, d))
	if err != nil {
		return nil, fmt.Errorf("vq: k-means: %w", err)
	}
	km.pts = pts
	rng := rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15)
	codebook, err := km.seed(rng, opt.Sample)
	if err != nil {
		return nil, err
	}
	return km.lloyd(codebook, opt.Iters)
}

type kmeans struct {
	b        backend.Backend
	pts      backend.Tensor // points on the backend, [n, d]
	points   []float32
	n, d, k  int
	threads  int
	progress func(string, int, int)
}

// assignment is the nearest code of every point and its squared distance.
type assignment struct {
	idx []int32
	err []float64 // ‖x − e_idx‖², exact (float64 over fp32 differences)
	mse float64
}

func (km *kmeans) assign(codebook []float32) (*assignment, error) {
	ct, err := km.b.Load(tensor.FromF32(codebook, km.k, km.d))
	if err != nil {
		return nil, fmt.Errorf("vq: k-means: %w", err)
	}
	a := &assignment{idx: make([]int32, km.n), err: make([]float64, km.n)}
	best := make([]float32, km.n)
	nearest(km.b, km.pts, km.n, ct, rowNorms(codebook, km.k, km.d), a.idx, best, nil)
	d := km.d
	parallelFor(km.threads, km.n, d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			a.err[i] = sqDist(km.points[i*d:(i+1)*d], codebook[int(a.idx[i])*d:(int(a.idx[i])+1)*d])
		}
	})
	for _, e := range a.err {
		a.mse += e
	}
	a.mse /= float64(km.n)
	return a, nil
}

func (km *kmeans) lloyd(codebook []float32, iters int) (*KMeansResult, error) {
	a, err := km.assign(codebook)
	if err != nil {
		return nil, err
	}
	res := &KMeansResult{History: []float64{a.mse}}
	for it := range iters {
		next, reseeded := km.update(a, codebook)
		na, err := km.assign(next)
		if err != nil {
			return nil, err
		}
		res.Iters++
		res.Reseeded += reseeded
		res.History = append(res.History, na.mse)
		km.progress("lloyd", it+1, iters)
		converged := reseeded == 0 && slices.Equal(na.idx, a.idx)
		codebook, a = next, na
		if converged {
			break
		}
	}
	res.Codebook, res.MSE = codebook, a.mse
	res.Usage = make([]int, km.k)
	for _, j := range a.idx {
		res.Usage[j]++
	}
	for _, u := range res.Usage {
		if u == 0 {
			res.Dead++
		}
	}
	return res, nil
}

// update returns the means of a's clusters (float64 sums in point order),
// with every empty cluster re-seeded on a point of largest error (or, when
// no suitable point is left, kept where it was in old), and how many were
// re-seeded.
func (km *kmeans) update(a *assignment, old []float32) ([]float32, int) {
	d := km.d
	sums := make([]float64, km.k*d)
	counts := make([]int, km.k)
	for i, j := range a.idx {
		counts[j]++
		s := sums[int(j)*d : (int(j)+1)*d]
		for c, x := range km.points[i*d : (i+1)*d] {
			s[c] += float64(x)
		}
	}
	next := make([]float32, km.k*d)
	var empty []int
	for j, cnt := range counts {
		if cnt == 0 {
			empty = append(empty, j)
			copy(next[j*d:(j+1)*d], old[j*d:(j+1)*d])
			continue
		}
		for c := range d {
			next[j*d+c] = float32(sums[j*d+c] / float64(cnt))
		}
	}
	if len(empty) == 0 {
		return next, 0
	}
	// Candidates by decreasing error, ties to the lower index. A point with
	// zero error sits on a centre; a point equal to a chosen point or to a
	// new mean would make two equal centres, one of which would empty again.
	order := make([]int, km.n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(p, q int) int {
		if c := cmp.Compare(a.err[q], a.err[p]); c != 0 {
			return c
		}
		return cmp.Compare(p, q)
	})
	var chosen []int
	for _, i := range order {
		if len(chosen) == len(empty) || a.err[i] == 0 {
			break
		}
		p := km.points[i*d : (i+1)*d]
		if slices.ContainsFunc(chosen, func(c int) bool { return rowsEqual(km.points[c*d:(c+1)*d], p) }) ||
			km.isMean(next, counts, p) {
			continue
		}
		copy(next[empty[len(chosen)]*d:], km.points[i*d:(i+1)*d])
		chosen = append(chosen, i)
	}
	return next, len(chosen)
}

// isMean reports whether p equals the mean of a non-empty cluster.
func (km *kmeans) isMean(means []float32, counts []int, p []float32) bool {
	for j, cnt := range counts {
		if cnt > 0 && rowsEqual(means[j*km.d:(j+1)*km.d], p) {
			return true
		}
	}
	return false
}

// seed picks K centres by k-means++ among a sample of the points: the first
// uniformly, each next one with probability proportional to its squared
// distance to the nearest centre chosen so far. The sample is widened to all
// points when it holds fewer than K distinct vectors.
func (km *kmeans) seed(rng *rand.PCG, sample int) ([]float32, error) {
	d := km.d
	pool := km.points
	if sample > 0 && sample < km.n {
		idx := sampleIndices(rng, km.n, sample)
		if countDistinct(km.points, idx, d, km.k) >= km.k {
			pool = make([]float32, 0, sample*d)
			for _, i := range idx {
				pool = append(pool, km.points[i*d:(i+1)*d]...)
			}
		}
	}
	s := len(pool) / d
	pt := km.pts
	if s != km.n {
		var err error
		if pt, err = km.b.Load(tensor.FromF32(pool, s, d)); err != nil {
			return nil, fmt.Errorf("vq: k-means: %w", err)
		}
	}
	norms := make([]float64, s)
	zero := make([]float32, d)
	for i := range s {
		norms[i] = sqDist(pool[i*d:(i+1)*d], zero)
	}
	dots := km.b.New(s, 1)
	dotsHost := make([]float32, s)
	d2 := make([]float64, s)
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	codebook := make([]float32, 0, km.k*d)
	c := int(rng.Uint64() % uint64(s))
	for {
		codebook = append(codebook, pool[c*d:(c+1)*d]...)
		chosen := len(codebook) / d
		km.progress("seed", chosen, km.k)
		if chosen == km.k {
			return codebook, nil
		}
		// Squared distances to the new centre from one matrix-vector product
		// ‖x‖² − 2⟨x, c⟩ + ‖c‖²; where that is small next to the norms the
		// cancellation makes it inexact, so it is recomputed directly. A
		// point equal to a centre thus gets exactly 0 and is never drawn.
		km.b.MatMul(dots, pt, km.b.Rows(pt, c, c+1), nil)
		km.b.Read(dotsHost, dots)
		centre := pool[c*d : (c+1)*d]
		parallelFor(km.threads, s, 16, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				g := norms[i] - 2*float64(dotsHost[i]) + norms[c]
				if g <= 1e-3*(norms[i]+norms[c]) {
					g = sqDist(pool[i*d:(i+1)*d], centre)
				}
				d2[i] = min(d2[i], g)
			}
		})
		d2[c] = 0
		var total float64
		for _, v := range d2 {
			total += v
		}
		r := float64(rng.Uint64()>>11) / (1 << 53) * total
		c = -1
		var cum float64
		for i, v := range d2 {
			if v == 0 {
				continue
			}
			c = i
			if cum += v; cum > r {
				break
			}
		}
		if c < 0 {
			// Unreachable while the pool holds ≥ K distinct vectors, which
			// seed's caller and the sample check guarantee.
			panic("vq: k-means++ ran out of distinct points")
		}
	}
}

// sampleIndices draws m distinct indices from [0, n) (a partial
// Fisher–Yates shuffle) and returns them in increasing order.
func sampleIndices(rng *rand.PCG, n, m int) []int {
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := range m {
		j := i + int(rng.Uint64()%uint64(n-i))
		perm[i], perm[j] = perm[j], perm[i]
	}
	idx := perm[:m]
	slices.Sort(idx)
	return idx
}

// countDistinct counts the distinct rows among points [*, d] (the rows in
// idx, or all when idx is nil), stopping once it reaches limit. Rows are
// compared by value, so −0 equals +0.
func countDistinct(points []float32, idx []int, d, limit int) int {
	rows := len(points) / d
	if idx != nil {
		rows = len(idx)
	}
	buckets := map[uint64][]int{}
	count := 0
	for r := 0; r < rows && count < limit; r++ {
		i := r
		if idx != nil {
			i = idx[r]
		}
		row := points[i*d : (i+1)*d]
		h := uint64(14695981039346656037) // FNV-1a over the values' bits
		for _, x := range row {
			if x == 0 {
				x = 0
			}
			h = (h ^ uint64(math.Float32bits(x))) * 1099511628211
		}
		if slices.ContainsFunc(buckets[h], func(j int) bool { return rowsEqual(points[j*d:(j+1)*d], row) }) {
			continue
		}
		buckets[h] = append(buckets[h], i)
		count++
	}
	return count
}

func rowsEqual(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sqDist is ‖a − b‖², accumulated in float64.
func sqDist(a, b []float32) float64 {
	var s float64
	for i := range a {
		v := float64(a[i]) - float64(b[i])
		s += v * v
	}
	return s
}
