package nn

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/tensor"
)

// mapSource is an in-memory Source.
type mapSource map[string]*tensor.Tensor

func (m mapSource) Names() []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func (m mapSource) Tensor(name string) (*tensor.Tensor, error) {
	t, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("no %q", name)
	}
	return t, nil
}

func seq(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = scale * float32(i%7-3)
	}
	return v
}

func TestWeightsErrors(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	src := mapSource{
		"model.layers.0.q_proj.weight": tensor.FromF32(seq(6, 1), 3, 2),
		"model.layers.0.ids":           tensor.New(tensor.I64, 2),
	}
	w := NewWeights(src, b, nil)
	if w.Sub("layers", 0).Tensor("q_proj.weight", 3, 2); !errors.Is(w.Err(), ErrMissingTensor) ||
		!strings.Contains(w.Err().Error(), "closest: model.layers.0.q_proj.weight") {
		t.Fatalf("missing tensor: %v", w.Err())
	}
	w = NewWeights(src, b, nil)
	if w.Sub("model", "layers", 0).Linear("q_proj", 3, 2, false); !errors.Is(w.Err(), ErrShape) {
		t.Fatalf("wrong shape: %v", w.Err())
	}
	w = NewWeights(src, b, nil)
	if w.Sub("model", "layers", 0).Tensor("ids"); !errors.Is(w.Err(), ErrDType) {
		t.Fatalf("integer weight: %v", w.Err())
	}
	w = NewWeights(src, b, nil)
	w.Sub("model", "layers", 0).Linear("q_proj", 2, 3, false)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	if u := w.Unused("model."); len(u) != 1 || u[0] != "model.layers.0.ids" {
		t.Fatalf("unused = %v", u)
	}
}

func TestAdapterConfigRefusals(t *testing.T) {
	ok := `{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj"],"lora_dropout":0.05}`
	if _, err := ParseAdapterConfig([]byte(ok)); err != nil {
		t.Fatal(err)
	}
	for field, cfg := range map[string]string{
		"use_dora":        `{"peft_type":"LORA","r":8,"lora_alpha":16,"use_dora":true}`,
		"fan_in_fan_out":  `{"peft_type":"LORA","r":8,"lora_alpha":16,"fan_in_fan_out":true}`,
		"bias":            `{"peft_type":"LORA","r":8,"lora_alpha":16,"bias":"all"}`,
		"modules_to_save": `{"peft_type":"LORA","r":8,"lora_alpha":16,"modules_to_save":["lm_head"]}`,
		"peft_type":       `{"peft_type":"IA3","r":8}`,
		"r":               `{"peft_type":"LORA","r":0}`,
	} {
		_, err := ParseAdapterConfig([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v, want an error naming it", field, err)
		}
	}
}

// TestLoRAOnTheFlyAndMerged checks y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, with rank and
// alpha patterns and rslora scaling, in both modes.
func TestLoRAOnTheFlyAndMerged(t *testing.T) {
	b := cpu.New(2)
	defer b.Close()
	in, out, r := 5, 4, 2
	wv, av, bv, xv := seq(out*in, 0.5), seq(r*in, 0.25), seq(out*r, 0.125), seq(3*in, 1)
	base := mapSource{"m.proj.weight": tensor.FromF32(wv, out, in)}
	ad := mapSource{
		"base_model.model.m.proj.lora_A.weight": tensor.FromF32(av, r, in),
		"base_model.model.m.proj.lora_B.weight": tensor.FromF32(bv, out, r),
	}
	cfg, err := ParseAdapterConfig([]byte(`{"peft_type":"LORA","r":16,"lora_alpha":4,"rank_pattern":{"proj":2},"alpha_pattern":{"m\\.proj":8},"use_rslora":true}`))
	if err != nil {
		t.Fatal(err)
	}
	scale := 8 / float32(1.4142135623730951) // alpha/√r with the patterns' r = 2, alpha = 8
	want := make([]float32, 3*out)
	for i := range 3 {
		for o := range out {
			var y, u float32
			for k := range in {
				y += xv[i*in+k] * wv[o*in+k]
			}
			for j := range r {
				var a float32
				for k := range in {
					a += xv[i*in+k] * av[j*in+k]
				}
				u += a * bv[o*r+j]
			}
			want[i*out+o] = y + scale*u
		}
	}
	rename := func(m string) (string, bool) { return m, m == "m.proj" }
	for _, merge := range []bool{false, true} {
		adapter, err := NewAdapter(cfg, ad, rename, merge)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWeights(base, b, adapter)
		l := w.Sub("m").Linear("proj", in, out, false)
		if err := w.Err(); err != nil {
			t.Fatal(err)
		}
		if u := adapter.Unused(); len(u) != 0 {
			t.Fatalf("unused adapter modules %v", u)
		}
		dst := b.New(3, out)
		l.Forward(b, dst, tensor.FromF32(xv, 3, in), NewScratch(b, 3*r))
		got := make([]float32, 3*out)
		b.Read(got, dst)
		for i := range got {
			if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
				t.Fatalf("merge=%v: y[%d] = %g want %g", merge, i, got[i], want[i])
			}
		}
	}
	// An adapter for a module the model lacks, and one whose rank disagrees.
	if _, err := NewAdapter(cfg, ad, func(string) (string, bool) { return "", false }, false); err == nil {
		t.Fatal("adapter for a missing module accepted")
	}
	cfg.RankPattern = nil
	if _, err := NewAdapter(cfg, ad, rename, false); err == nil || !strings.Contains(err.Error(), "rank 16") {
		t.Fatalf("rank mismatch: %v", err)
	}
}
