package vq

import (
	"fmt"
	"math"
	"strconv"

	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

// ModuleData is a module's content on the host, as calibration produces it.
type ModuleData struct {
	Block        int
	Site         string
	Codebook     []float32 // [K, D]
	K, D         int
	DLPIn        *DLPData // nil: no DLP (identity); DLPIn and DLPOut go together
	DLPOut       *DLPData
	Scale, Shift []float32 // [D], sites ln1 and ln2 only
}

// DLPData is one side of the DLP: weight [D, D] (PyTorch's [out, in]), bias
// [D] and the gate γ before tanh.
type DLPData struct {
	Weight, Bias []float32
	Gamma        float32
}

// WriteModule writes md as an alignedvq.safetensors file (F32, the spec's
// tensor names and __metadata__), refusing content that Load would refuse.
func WriteModule(path string, md *ModuleData) error {
	entries, err := md.entries()
	if err != nil {
		return fmt.Errorf("vq: %s: %w", path, err)
	}
	if err := safetensors.WriteFile(path, entries, md.metadata()); err != nil {
		return fmt.Errorf("vq: %w", err)
	}
	return nil
}

func (md *ModuleData) metadata() map[string]string {
	return map[string]string{"format": "alignedvq", "version": "1", "block": strconv.Itoa(md.Block), "site": md.Site}
}

// entries checks md and returns its tensors in the order they are written.
func (md *ModuleData) entries() ([]safetensors.Entry, error) {
	k, d := md.K, md.D
	switch {
	case !ValidSite(md.Site):
		return nil, fmt.Errorf("site %q, want ln1, attn, ln2 or ffn", md.Site)
	case md.Block < 0:
		return nil, fmt.Errorf("block %d, want ≥ 0", md.Block)
	case k < 1 || d < 1 || uint64(k) > MaxK:
		return nil, fmt.Errorf("codebook [%d, %d]: K must be in [1, %d] and D ≥ 1", k, d, uint64(MaxK))
	case (md.DLPIn == nil) != (md.DLPOut == nil):
		return nil, fmt.Errorf("only one DLP side given (all six DLP tensors or none)")
	case SiteIsNorm(md.Site) != (md.Scale != nil || md.Shift != nil):
		return nil, fmt.Errorf("site %s: residual.scale/shift are required for ln1 and ln2 and not allowed otherwise", md.Site)
	}
	var entries []safetensors.Entry
	add := func(name string, v []float32, shape ...int) error {
		if len(v) != tensor.Shape(shape).Numel() {
			return fmt.Errorf("tensor %q: %d values, want %v", name, len(v), tensor.Shape(shape))
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("tensor %q: element %d is %v", name, i, x)
			}
		}
		entries = append(entries, safetensors.Entry{Name: name, T: tensor.FromF32(v, shape...)})
		return nil
	}
	if err := add("codebook", md.Codebook, k, d); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		name string
		p    *DLPData
	}{{"dlp_in", md.DLPIn}, {"dlp_out", md.DLPOut}} {
		if side.p == nil {
			continue
		}
		if err := add(side.name+".weight", side.p.Weight, d, d); err != nil {
			return nil, err
		}
		if err := add(side.name+".bias", side.p.Bias, d); err != nil {
			return nil, err
		}
		if err := add(side.name+".gamma", []float32{side.p.Gamma}, 1); err != nil {
			return nil, err
		}
	}
	if SiteIsNorm(md.Site) {
		if err := add("residual.scale", md.Scale, d); err != nil {
			return nil, err
		}
		if err := add("residual.shift", md.Shift, d); err != nil {
			return nil, err
		}
	}
	return entries, nil
}
