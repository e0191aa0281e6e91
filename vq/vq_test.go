package vq

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/tensor"
)

var modules = []string{"block0_ln1", "block1_ln2"}

// cases is the part of ref/vq/<module>/cases.json these tests read.
type cases struct {
	Block       int    `json:"block"`
	Site        string `json:"site"`
	K           int    `json:"K"`
	D           int    `json:"D"`
	B           int    `json:"b"`
	Fingerprint string `json:"fingerprint"`
	FrameBytes  int    `json:"frame_bytes"`
	BadFrames   []struct {
		Name string `json:"name"`
		Kind string `json:"parse_error_kind_in_reference"`
	} `json:"bad_frames"`
	Cases []struct {
		Image              string  `json:"image"`
		N                  int     `json:"N"`
		CRC32C             string  `json:"crc32c"`
		ResidualRebuildMSE float64 `json:"residual_rebuild_mse"`
		QuantMSEU          float64 `json:"quant_mse_U"`
		UniqueIndices      int     `json:"unique_indices"`
	} `json:"cases"`
}

func readCases(t testing.TB, module string) *cases {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("ref", "vq", module, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c cases
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func loadFixture(t testing.TB, b *cpu.CPU, module string) *Module {
	t.Helper()
	m, err := Load(testutil.Testdata("vq", module, "alignedvq.safetensors"), b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFixtureModulesLoad(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	for _, name := range modules {
		m := loadFixture(t, b, name)
		c := readCases(t, name)
		if m.Block != c.Block || m.Site != c.Site || m.K != c.K || m.D != c.D || m.Bits != c.B {
			t.Errorf("%s: block %d site %s K %d D %d bits %d, want %d %s %d %d %d",
				name, m.Block, m.Site, m.K, m.D, m.Bits, c.Block, c.Site, c.K, c.D, c.B)
		}
		if got := hex.EncodeToString(m.Fingerprint[:]); got != c.Fingerprint {
			t.Errorf("%s: fingerprint %s, want %s", name, got, c.Fingerprint)
		}
		if m.In == nil || m.Out == nil || m.Scale == nil || m.Shift == nil {
			t.Fatalf("%s: DLP or residual missing", name)
		}
		// FIXTURES.md: γ_in 0.3, γ_out −0.2.
		if m.In.Gamma != 0.3 || m.Out.Gamma != -0.2 || m.In.Gate != float32(math.Tanh(float64(float32(0.3)))) {
			t.Errorf("%s: gates γ_in %v γ_out %v (tanh %v)", name, m.In.Gamma, m.Out.Gamma, m.In.Gate)
		}
		if err := m.CheckModel(64, 4); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestEdgeMatchesReference runs the edge half on every reference image:
// DLP_in, the argmin with its scores, and the frame bytes.
func TestEdgeMatchesReference(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	for _, name := range modules {
		m := loadFixture(t, b, name)
		c := readCases(t, name)
		ref := testutil.Ref(t, "ref", "vq", name, "vq.safetensors")
		differ, nearTies, worst := 0, 0, 0.0
		for _, cs := range c.Cases {
			img := cs.Image
			zin := testutil.F32(t, ref, img+".Z_in")
			n := len(zin) / m.D
			z := tensor.FromF32(zin, n, m.D)

			u := make([]float32, n*m.D)
			b.Read(u, m.DLPIn(b, z))
			testutil.Close(t, name+" "+img+" U", u, testutil.F32(t, ref, img+".U"), 1e-5, 0.999999)

			q, err := m.Quantize(b, z)
			if err != nil {
				t.Fatal(err)
			}
			want := testutil.Tensor(t, ref, img+".indices").I32()
			best := testutil.F32(t, ref, img+".score_best")
			margin := testutil.F32(t, ref, img+".margin")
			for tok := range n {
				// The spec's near tie: the two smallest scores differ by at
				// most 1e-5·|s_best|, so summation order may flip the token.
				tie := margin[tok] <= 1e-5*abs32(best[tok])
				if tie {
					nearTies++
				}
				if q.Indices[tok] != want[tok] {
					differ++
					t.Logf("%s %s token %d: index %d, reference %d (margin %g, score %g)", name, img, tok, q.Indices[tok], want[tok], margin[tok], best[tok])
					if !tie {
						t.Errorf("%s %s token %d: index %d, want %d (margin %g, score %g): not a near tie",
							name, img, tok, q.Indices[tok], want[tok], margin[tok], best[tok])
					}
					continue
				}
				// The score cancels two terms, ‖e‖² and 2⟨U, e⟩, so its fp32
				// error scales with their size T, not with the score: the
				// D-term dot product in another order, over a U that itself
				// differs from the reference's by fp32 rounding.
				e := m.codebook[int(want[tok])*m.D : (int(want[tok])+1)*m.D]
				var size float64
				for k, ek := range e {
					size += float64(ek)*float64(ek) + 2*math.Abs(float64(ek)*float64(u[tok*m.D+k]))
				}
				tol := float32(1e-6 * size)
				if d := abs32(q.ScoreBest[tok] - best[tok]); d > tol {
					t.Errorf("%s %s token %d: score %g, want %g (tolerance %g)", name, img, tok, q.ScoreBest[tok], best[tok], tol)
				}
				if d := abs32(q.Margin[tok] - margin[tok]); d > 2*tol {
					t.Errorf("%s %s token %d: margin %g, want %g (tolerance %g)", name, img, tok, q.Margin[tok], margin[tok], 2*tol)
				}
				worst = max(worst, float64(abs32(q.ScoreBest[tok]-best[tok]))/size)
			}

			frame := testutil.Tensor(t, ref, img+".frame").Bytes()
			got, err := m.EncodeFrame(want, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, frame) {
				t.Errorf("%s %s: frame differs from the reference (%d vs %d bytes)", name, img, len(got), len(frame))
			}
			if len(got) != c.FrameBytes {
				t.Errorf("%s %s: %d-byte frame, want %d", name, img, len(got), c.FrameBytes)
			}
			if crc := fmt.Sprintf("%08x", binary.LittleEndian.Uint32(got[len(got)-4:])); crc != cs.CRC32C {
				t.Errorf("%s %s: CRC %s, want %s", name, img, crc, cs.CRC32C)
			}
		}
		t.Logf("%s: %d of %d tokens differ from the reference, all near ties (%d near ties in all); worst score error %.2g of the terms' size",
			name, differ, len(c.Cases)*577, nearTies, worst)
	}
}

// TestCloudMatchesReference runs the cloud half from the reference frames.
func TestCloudMatchesReference(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	for _, name := range modules {
		m := loadFixture(t, b, name)
		c := readCases(t, name)
		ref := testutil.Ref(t, "ref", "vq", name, "vq.safetensors")
		for _, cs := range c.Cases {
			img := cs.Image
			want := testutil.Tensor(t, ref, img+".indices").I32()
			f, err := m.DecodeFrame(testutil.Tensor(t, ref, img+".frame").Bytes(), cs.N)
			if err != nil {
				t.Fatalf("%s %s: %v", name, img, err)
			}
			if !equalI32(f.Indices, want) || f.Stats != nil || f.Flags != 0 {
				t.Errorf("%s %s: decoded frame differs from the reference indices", name, img)
			}
			zout, err := m.Dequantize(b, f.Indices)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, cs.N*m.D)
			b.Read(got, zout)
			testutil.Close(t, name+" "+img+" Z_out", got, testutil.F32(t, ref, img+".Z_out"), 1e-5, 0.999999)

			uniq := map[int32]bool{}
			for _, i := range want {
				uniq[i] = true
			}
			if len(uniq) != cs.UniqueIndices {
				t.Errorf("%s %s: %d unique indices, cases.json says %d", name, img, len(uniq), cs.UniqueIndices)
			}
		}
	}
}

// TestResidualRebuildsX0 checks the residual affine of block0_ln1, whose
// true residual x_0 (hidden_states[0]) is in the tiny-llava reference: the
// rebuild error equals cases.json's, and FitResidual on the 3462 tokens
// reproduces the stored map. It also inverts LN1 exactly with the token
// statistics.
func TestResidualRebuildsX0(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	const name = "block0_ln1"
	m := loadFixture(t, b, name)
	c := readCases(t, name)
	ref := testutil.Ref(t, "ref", "vq", name, "vq.safetensors")
	vision := testutil.Ref(t, "ref", "tiny-llava", "vision.safetensors")
	model := testutil.Ref(t, "tiny-llava", "model.safetensors")
	const ln1 = "vision_tower.vision_model.encoder.layers.0.layer_norm1."
	gamma, beta := testutil.F32(t, model, ln1+"weight"), testutil.F32(t, model, ln1+"bias")
	var allX, allZ []float32
	for _, cs := range c.Cases {
		img := cs.Image
		x0 := testutil.F32(t, vision, img+".hidden_states.0")
		zoutRef := testutil.F32(t, ref, img+".Z_out")
		allX, allZ = append(allX, x0...), append(allZ, zoutRef...)

		rebuilt := make([]float32, len(x0))
		b.Read(rebuilt, m.Residual(b, tensor.FromF32(zoutRef, cs.N, m.D)))
		var mse float64
		for i := range x0 {
			d := float64(rebuilt[i]) - float64(x0[i])
			mse += d * d
		}
		mse /= float64(len(x0))
		if rel := math.Abs(mse-cs.ResidualRebuildMSE) / cs.ResidualRebuildMSE; rel > 1e-5 {
			t.Errorf("%s: residual rebuild MSE %.9g, cases.json %.9g", img, mse, cs.ResidualRebuildMSE)
		}

		zin := testutil.F32(t, ref, img+".Z_in")
		stats := TokenStats(x0, cs.N, m.D, 1e-5)
		inv := InvertLayerNorm(zin, cs.N, m.D, stats, gamma, beta)
		checkInverted(t, img, inv, x0, stats, cs.N, m.D)
	}
	scale, shift, _ := FitResidual(allX, allZ, len(allX)/m.D, m.D)
	wantScale, wantShift := make([]float32, m.D), make([]float32, m.D)
	b.Read(wantScale, m.Scale)
	b.Read(wantShift, m.Shift)
	t.Logf("fitted scale: %v", testutil.Close(t, "fitted scale", scale, wantScale, 1e-7, 0.999999))
	t.Logf("fitted shift: %v", testutil.Close(t, "fitted shift", shift, wantShift, 1e-7, 0.999999))
}

// checkInverted checks x̂ against x: the only error allowed is what the
// fp16 rounding of μ and σ explains (|Δμ| + |Δσ|·|x − μ|/σ, with the
// rounding at most half an fp16 ulp, 2⁻¹¹ relative), plus fp32 noise of the
// LayerNorm output that was inverted.
func checkInverted(t *testing.T, name string, got, x []float32, stats []uint16, n, d int) {
	t.Helper()
	for tok := range n {
		var mean, ss float64
		for _, v := range x[tok*d : (tok+1)*d] {
			mean += float64(v)
		}
		mean /= float64(d)
		for _, v := range x[tok*d : (tok+1)*d] {
			ss += (float64(v) - mean) * (float64(v) - mean)
		}
		sigma := math.Sqrt(ss/float64(d) + 1e-5)
		mu16 := float64(tensor.F16ToF32(stats[2*tok]))
		s16 := float64(tensor.F16ToF32(stats[2*tok+1]))
		for c := range d {
			v := float64(x[tok*d+c])
			bound := math.Abs(mu16-mean) + math.Abs(s16-sigma)*math.Abs(v-mean)/sigma +
				1e-5*(1+math.Abs(v))
			if e := math.Abs(float64(got[tok*d+c]) - v); e > bound {
				t.Fatalf("%s token %d channel %d: x̂ %g, x %g (|Δ| %g > %g)", name, tok, c, got[tok*d+c], v, e, bound)
			}
		}
	}
}

func equalI32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }
