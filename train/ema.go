package train

import "math/rand/v2"

// ema is the codebook's exponential moving average (docs/alignedvq.md):
// per step over the batch's tokens,
//
//	n_j ← γ n_j + (1−γ)·|{t : i_t = j}|
//	m_j ← γ m_j + (1−γ)·Σ_{t: i_t = j} U_t
//	e_j = m_j / ((n_j + ε)/(Σn + Kε)·Σn)
//
// n starts at the batch's mean count per entry, N_b/K, and m at n·e, so the
// first step starts from the initial codebook exactly. An entry whose n_j
// falls below deadFraction of the mean Σn/K is re-seeded from a random
// token of the batch: n_j ← Σn/K, m_j ← n_j·U_t.
type ema struct {
	k, d  int
	decay float64
	n     []float32 // [K]
	m     []float32 // [K, D]
	dead  int       // entries re-seeded at the last update
}

const (
	emaEps       = 1e-5
	deadFraction = 0.01
)

func newEMA(codebook []float32, k, d, batchTokens int, decay float64) *ema {
	e := &ema{k: k, d: d, decay: decay, n: make([]float32, k), m: make([]float32, k*d)}
	n0 := float32(float64(batchTokens) / float64(k))
	for j := range k {
		e.n[j] = n0
		for c := range d {
			e.m[j*d+c] = n0 * codebook[j*d+c]
		}
	}
	return e
}

// update folds in the batch's inputs u (each [T, D], host) and their codes,
// re-seeds dead entries with rng, and writes the new codebook to cb.
func (e *ema) update(us [][]float32, idx [][]int32, rng *rand.Rand, cb []float32) {
	k, d, g := e.k, e.d, e.decay
	count := make([]float64, k)
	sum := make([]float64, k*d)
	var tokens [][]float32 // every token of the batch, in order, for re-seeding
	for b, u := range us {
		for t, j := range idx[b] {
			row := u[t*d : (t+1)*d]
			count[j]++
			for c, v := range row {
				sum[int(j)*d+c] += float64(v)
			}
			tokens = append(tokens, row)
		}
	}
	var total float64
	for j := range k {
		e.n[j] = float32(g*float64(e.n[j]) + (1-g)*count[j])
		for c := range d {
			e.m[j*d+c] = float32(g*float64(e.m[j*d+c]) + (1-g)*sum[j*d+c])
		}
		total += float64(e.n[j])
	}
	e.dead = 0
	mean := total / float64(k)
	for j := range k {
		if float64(e.n[j]) >= deadFraction*mean {
			continue
		}
		row := tokens[rng.IntN(len(tokens))]
		total += mean - float64(e.n[j])
		e.n[j] = float32(mean)
		for c, v := range row {
			e.m[j*d+c] = float32(mean * float64(v))
		}
		e.dead++
	}
	for j := range k {
		s := (float64(e.n[j]) + emaEps) / (total + float64(k)*emaEps) * total
		for c := range d {
			cb[j*d+c] = float32(float64(e.m[j*d+c]) / s)
		}
	}
}
