package vq

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/nn"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

var sites = [...]string{"ln1", "attn", "ln2", "ffn"}

// ValidSite reports whether s names a split site: "ln1", "attn", "ln2" or
// "ffn" (vit's site names, lower case as the module metadata spells them).
func ValidSite(s string) bool { return slices.Contains(sites[:], s) }

// SiteIsNorm reports whether site s is a LayerNorm output (ln1, ln2), whose
// residual stream the cloud must rebuild.
func SiteIsNorm(s string) bool { return s == "ln1" || s == "ln2" }

// MaxK is the largest codebook size: indices travel as int32, so the largest
// index, K−1, must fit one.
const MaxK = 1 << 31

// BitsFor is the frame's bits per index for a codebook of k entries:
// ceil(log2 k), at least 1.
func BitsFor(k int) int { return max(1, bits.Len(uint(max(k, 1)-1))) }

// DLP is one side of the Dual Linear Projection: x + Gate·Linear(x).
type DLP struct {
	Linear *nn.Linear // "dlp_in" / "dlp_out": weight [D, D], bias [D]
	Gamma  float32    // the stored gate γ, before tanh
	Gate   float32    // tanh(γ)
}

// Module is one loaded AlignedVQ module.
type Module struct {
	Path        string
	Block       int
	Site        string
	K, D, Bits  int            // Bits = max(1, ceil(log2 K))
	Codebook    backend.Tensor // [K, D] as loaded onto the backend
	In, Out     *DLP           // nil when the file has no DLP tensors (identity, γ = 0)
	Scale       backend.Tensor // residual.scale [D]; nil for attn/ffn
	Shift       backend.Tensor // residual.shift [D]; nil for attn/ffn
	Fingerprint [8]byte        // first 8 bytes of SHA-256 of the codebook as LE fp32, row-major

	codebook []float32 // host copy, fp32, [K, D]
	norms    []float32 // ‖e_j‖², computed in float64 and rounded once
}

var dlpTensors = [...]string{
	"dlp_in.weight", "dlp_in.bias", "dlp_in.gamma",
	"dlp_out.weight", "dlp_out.bias", "dlp_out.gamma",
}

// Load reads and validates an alignedvq.safetensors file and loads it onto b.
// Every tensor is widened to fp32 and copied, so the file is closed before
// Load returns and the module owns its memory (it is small next to the
// models: K·D + 2·D² values).
func Load(path string, b backend.Backend) (*Module, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vq: %w", err)
	}
	defer f.Close()
	m, err := load(ownedSource{f}, f.Metadata(), path, b)
	if err != nil {
		return nil, fmt.Errorf("vq: %s: %w", path, err)
	}
	return m, nil
}

// NewModule builds a module from host data, as Load would after WriteModule
// (the calibration tool uses it to evaluate a codebook before writing it).
// The data is copied.
func NewModule(md *ModuleData, b backend.Backend) (*Module, error) {
	entries, err := md.entries()
	if err != nil {
		return nil, fmt.Errorf("vq: module data: %w", err)
	}
	m, err := load(ownedSource{entrySource(entries)}, md.metadata(), "(module data)", b)
	if err != nil {
		return nil, fmt.Errorf("vq: module data: %w", err)
	}
	return m, nil
}

func load(src nn.Source, meta map[string]string, path string, b backend.Backend) (*Module, error) {
	m := &Module{Path: path}
	if err := m.readMetadata(meta); err != nil {
		return nil, err
	}
	w := nn.NewWeights(src, b, nil)
	cb := w.Host("codebook")
	if cb == nil {
		return nil, w.Err()
	}
	if len(cb.Shape()) != 2 || cb.Dim(0) < 1 || cb.Dim(1) < 1 {
		return nil, fmt.Errorf("tensor \"codebook\": shape %v, want [K, D] with K, D ≥ 1", cb.Shape())
	}
	m.K, m.D = cb.Dim(0), cb.Dim(1)
	if uint64(m.K) > MaxK {
		return nil, fmt.Errorf("tensor \"codebook\": K = %d entries exceeds the limit of %d", m.K, MaxK)
	}
	m.Bits = BitsFor(m.K)
	m.codebook = cb.F32()
	m.norms = rowNorms(m.codebook, m.K, m.D)
	m.Fingerprint = fingerprint(m.codebook)
	var err error
	if m.Codebook, err = b.Load(cb); err != nil {
		return nil, fmt.Errorf("tensor \"codebook\": %w", err)
	}

	var have, missing []string
	for _, name := range dlpTensors {
		if w.Has(name) {
			have = append(have, name)
		} else {
			missing = append(missing, name)
		}
	}
	if len(have) > 0 && len(missing) > 0 {
		return nil, fmt.Errorf("partial DLP: has %s but lacks %s (all six tensors or none)",
			strings.Join(have, ", "), strings.Join(missing, ", "))
	}
	if len(have) > 0 {
		m.In = loadDLP(w, "dlp_in", m.D)
		m.Out = loadDLP(w, "dlp_out", m.D)
	}
	if SiteIsNorm(m.Site) {
		m.Scale = w.Tensor("residual.scale", m.D)
		m.Shift = w.Tensor("residual.shift", m.D)
	}
	if err := w.Err(); err != nil {
		return nil, err
	}
	if extra := w.Unused(""); len(extra) > 0 {
		return nil, fmt.Errorf("unexpected tensors for site %s: %s", m.Site, strings.Join(extra, ", "))
	}
	return m, nil
}

// readMetadata checks __metadata__: format, version, block, site.
func (m *Module) readMetadata(meta map[string]string) error {
	for _, kv := range [][2]string{{"format", "alignedvq"}, {"version", "1"}} {
		v, ok := meta[kv[0]]
		if !ok {
			return fmt.Errorf("metadata field %q is missing (want %q)", kv[0], kv[1])
		}
		if v != kv[1] {
			return fmt.Errorf("metadata field %q is %q, want %q", kv[0], v, kv[1])
		}
	}
	s, ok := meta["block"]
	if !ok {
		return errors.New("metadata field \"block\" is missing")
	}
	k, err := strconv.Atoi(s)
	if err != nil || k < 0 || strconv.Itoa(k) != s {
		return fmt.Errorf("metadata field \"block\" is %q, want a block number ≥ 0", s)
	}
	site, ok := meta["site"]
	if !ok {
		return errors.New("metadata field \"site\" is missing")
	}
	if !ValidSite(site) {
		return fmt.Errorf("metadata field \"site\" is %q, want one of %s", site, strings.Join(sites[:], ", "))
	}
	m.Block, m.Site = k, site
	return nil
}

func loadDLP(w *nn.Weights, name string, d int) *DLP {
	lin := w.Linear(name, d, d, true)
	g := w.Sub(name).Host("gamma", 1)
	if g == nil {
		return nil
	}
	gamma := g.F32()[0]
	return &DLP{Linear: lin, Gamma: gamma, Gate: float32(math.Tanh(float64(gamma)))}
}

// CheckModel checks the module against the vision model it is inserted into.
func (m *Module) CheckModel(hiddenSize, blocks int) error {
	if m.D != hiddenSize {
		return fmt.Errorf("vq: %s: codebook width D = %d, but the vision model's hidden size is %d", m.Path, m.D, hiddenSize)
	}
	if m.Block >= blocks {
		return fmt.Errorf("vq: %s: block %d, but the vision model has %d blocks", m.Path, m.Block, blocks)
	}
	return nil
}

// ownedSource reads tensors as fp32 copies, refusing dtypes other than F32,
// F16 and BF16 and values that are not finite.
type ownedSource struct{ src nn.Source }

func (s ownedSource) Names() []string { return s.src.Names() }

func (s ownedSource) Tensor(name string) (*tensor.Tensor, error) {
	t, err := s.src.Tensor(name)
	if err != nil {
		return nil, err
	}
	switch t.DType() {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		return nil, fmt.Errorf("%w %v (want F32, F16 or BF16)", nn.ErrDType, t.DType())
	}
	v := t.ToF32()
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("element %d is %v", i, x)
		}
	}
	return tensor.FromF32(v, t.Shape()...), nil
}

// entrySource serves the entries WriteModule would write.
type entrySource []safetensors.Entry

func (s entrySource) Names() []string {
	names := make([]string, len(s))
	for i, e := range s {
		names[i] = e.Name
	}
	return names
}

func (s entrySource) Tensor(name string) (*tensor.Tensor, error) {
	for _, e := range s {
		if e.Name == name {
			return e.T, nil
		}
	}
	return nil, fmt.Errorf("no tensor %q", name)
}

// rowNorms returns ‖row‖² of each row of a [rows, cols] matrix, summed in
// float64 and rounded once to fp32.
func rowNorms(v []float32, rows, cols int) []float32 {
	out := make([]float32, rows)
	for r := range rows {
		var s float64
		for _, x := range v[r*cols : (r+1)*cols] {
			s += float64(x) * float64(x)
		}
		out[r] = float32(s)
	}
	return out
}

// fingerprint is the first 8 bytes of SHA-256 over the codebook's values as
// little-endian fp32, row-major.
func fingerprint(codebook []float32) [8]byte {
	h := sha256.New()
	var buf [4096]byte
	for len(codebook) > 0 {
		n := min(len(codebook), len(buf)/4)
		for i, x := range codebook[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		h.Write(buf[:4*n])
		codebook = codebook[n:]
	}
	var fp [8]byte
	copy(fp[:], h.Sum(nil))
	return fp
}
