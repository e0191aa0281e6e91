package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

// A checkpoint holds everything a run's future depends on — the parameters,
// AdamW's moments, the EMA's counts and sums, the codebook and the step —
// in fp32 exactly as held, so a resumed run computes the same bits as one
// that never stopped (the batches and the re-seeding draws are functions of
// the seed and the step). It also records the run's settings and a hash of
// its initial module and data, and refuses to resume another run.

const checkpointFormat = "avq-train-checkpoint"

// runID identifies a run: its options, initial module and cached samples.
func (t *Trainer) runID() string {
	h := sha256.New()
	opt, _ := json.Marshal(t.opt)
	h.Write(opt)
	put := func(v []float32) {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(len(v)))
		h.Write(buf[:])
		for _, x := range v {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(x))
			h.Write(buf[:])
		}
	}
	fmt.Fprintf(h, "%d %s %d %d", t.md.Block, t.md.Site, t.md.K, t.md.D)
	for _, v := range [][]float32{t.init.Codebook, t.init.Scale, t.init.Shift, t.init.DLPIn.Weight, t.init.DLPIn.Bias,
		{t.init.DLPIn.Gamma}, t.init.DLPOut.Weight, t.init.DLPOut.Bias, {t.init.DLPOut.Gamma}} {
		put(v)
	}
	for _, s := range t.train {
		put(s.zin)
		put(s.target)
	}
	for _, s := range t.tasks {
		fmt.Fprintf(h, "%d %v", s.prompt, s.ids)
	}
	if t.opt.Task != nil {
		for _, l := range t.dec.loras { // the adapter continued, if any
			put(l.pa.value)
			put(l.pb.value)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// SaveCheckpoint writes the run's state to path (atomically).
func (t *Trainer) SaveCheckpoint(path string) error {
	var entries []safetensors.Entry
	add := func(name string, v []float32) {
		entries = append(entries, safetensors.Entry{Name: name, T: tensor.FromF32(append([]float32(nil), v...), len(v))})
	}
	for _, p := range t.params {
		add(p.name, p.value)
		add(p.name+".adam_m", p.m)
		add(p.name+".adam_v", p.v)
	}
	if t.ema != nil {
		add("codebook", t.md.Codebook)
		add("ema.n", t.ema.n)
		add("ema.m", t.ema.m)
	}
	meta := map[string]string{"format": checkpointFormat, "version": "1", "run": t.id,
		"step": strconv.Itoa(t.step), "reseeded": strconv.Itoa(t.reseeded)}
	if err := safetensors.WriteFile(path, entries, meta); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

// Resume restores the state saved by SaveCheckpoint from a run with the same
// settings, initial module and images.
func (t *Trainer) Resume(path string) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("train: --resume: %w", err)
	}
	defer f.Close()
	meta := f.Metadata()
	if meta["format"] != checkpointFormat || meta["version"] != "1" {
		return fmt.Errorf("train: --resume %s: not an avq train checkpoint (format %q, version %q)", path, meta["format"], meta["version"])
	}
	if meta["run"] != t.id {
		return fmt.Errorf("train: --resume %s: saved by a run with other settings, initial module or images", path)
	}
	step, err1 := strconv.Atoi(meta["step"])
	reseeded, err2 := strconv.Atoi(meta["reseeded"])
	if err1 != nil || err2 != nil || step < 0 || step > t.opt.Steps {
		return fmt.Errorf("train: --resume %s: metadata step %q, reseeded %q", path, meta["step"], meta["reseeded"])
	}
	read := func(name string, dst []float32) error {
		v, err := f.Tensor(name)
		if err != nil {
			return fmt.Errorf("train: --resume %s: %w", path, err)
		}
		if v.DType() != tensor.F32 || v.Numel() != len(dst) {
			return fmt.Errorf("train: --resume %s: tensor %q is %v, want F32 [%d]", path, name, v, len(dst))
		}
		copy(dst, v.F32())
		return nil
	}
	for _, p := range t.params {
		for _, x := range []struct {
			suffix string
			dst    []float32
		}{{"", p.value}, {".adam_m", p.m}, {".adam_v", p.v}} {
			if err := read(p.name+x.suffix, x.dst); err != nil {
				return err
			}
		}
	}
	if t.ema != nil {
		for name, dst := range map[string][]float32{"codebook": t.md.Codebook, "ema.n": t.ema.n, "ema.m": t.ema.m} {
			if err := read(name, dst); err != nil {
				return err
			}
		}
	}
	t.step, t.reseeded = step, reseeded
	t.sync()
	return nil
}
