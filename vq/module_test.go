package vq

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/safetensors"
	"github.com/avq/avq/tensor"
)

// fixtureEntries reads a fixture module's tensors and metadata as they are
// stored.
func fixtureEntries(t *testing.T, name string) (map[string]*tensor.Tensor, map[string]string) {
	t.Helper()
	md := fixtureData(t, name)
	entries, err := md.entries()
	if err != nil {
		t.Fatal(err)
	}
	ts := map[string]*tensor.Tensor{}
	for _, e := range entries {
		ts[e.Name] = e.T
	}
	return ts, md.metadata()
}

func writeEntries(t *testing.T, ts map[string]*tensor.Tensor, meta map[string]string) string {
	t.Helper()
	var entries []safetensors.Entry
	for _, name := range slices.Sorted(maps.Keys(ts)) {
		entries = append(entries, safetensors.Entry{Name: name, T: ts[name]})
	}
	path := filepath.Join(t.TempDir(), "alignedvq.safetensors")
	if err := safetensors.WriteFile(path, entries, meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadRefuses(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	f16 := func(v *tensor.Tensor) *tensor.Tensor {
		out := tensor.New(tensor.F16, v.Shape()...)
		for i, x := range v.ToF32() {
			out.U16()[i] = tensor.F32ToF16(x)
		}
		return out
	}
	cases := []struct {
		name  string
		edit  func(ts map[string]*tensor.Tensor, meta map[string]string)
		wants []string // substrings of the error, besides the file path
	}{
		{"no codebook", func(ts map[string]*tensor.Tensor, _ map[string]string) { delete(ts, "codebook") }, []string{`"codebook"`, "missing"}},
		{"no residual.scale", func(ts map[string]*tensor.Tensor, _ map[string]string) { delete(ts, "residual.scale") }, []string{`"residual.scale"`}},
		{"no residual.shift", func(ts map[string]*tensor.Tensor, _ map[string]string) { delete(ts, "residual.shift") }, []string{`"residual.shift"`}},
		{"partial DLP", func(ts map[string]*tensor.Tensor, _ map[string]string) { delete(ts, "dlp_out.gamma") }, []string{"partial DLP", "dlp_out.gamma"}},
		{"DLP weight [64, 63]", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			ts["dlp_in.weight"] = tensor.New(tensor.F32, 64, 63)
		}, []string{`"dlp_in.weight"`, "shape"}},
		{"DLP bias [65]", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			ts["dlp_out.bias"] = tensor.New(tensor.F32, 65)
		}, []string{`"dlp_out.bias"`}},
		{"gamma [2]", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			ts["dlp_in.gamma"] = tensor.New(tensor.F32, 2)
		}, []string{`"dlp_in.gamma"`}},
		{"scale [63]", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			ts["residual.scale"] = tensor.New(tensor.F32, 63)
		}, []string{`"residual.scale"`}},
		{"codebook 1-D", func(ts map[string]*tensor.Tensor, _ map[string]string) { ts["codebook"] = tensor.New(tensor.F32, 64) }, []string{`"codebook"`, "[K, D]"}},
		{"codebook I32", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			ts["codebook"] = tensor.New(tensor.I32, 256, 64)
		}, []string{`"codebook"`, "dtype I32"}},
		{"codebook F64", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			ts["codebook"] = tensor.New(tensor.F64, 256, 64)
		}, []string{`"codebook"`, "dtype F64"}},
		{"NaN in a weight", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			w := tensor.New(tensor.F16, 64, 64)
			w.U16()[70] = 0x7e00
			ts["dlp_out.weight"] = w
		}, []string{`"dlp_out.weight"`, "element 70"}},
		{"unknown site", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["site"] = "ln3" }, []string{`"site"`, `"ln3"`}},
		{"site in capitals", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["site"] = "LN1" }, []string{`"site"`}},
		{"no site", func(_ map[string]*tensor.Tensor, meta map[string]string) { delete(meta, "site") }, []string{`"site"`, "missing"}},
		{"format pt", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["format"] = "pt" }, []string{`"format"`, `"pt"`}},
		{"no format", func(_ map[string]*tensor.Tensor, meta map[string]string) { delete(meta, "format") }, []string{`"format"`}},
		{"version 2", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["version"] = "2" }, []string{`"version"`, `"2"`}},
		{"block -1", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["block"] = "-1" }, []string{`"block"`, `"-1"`}},
		{"block +1", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["block"] = "+1" }, []string{`"block"`}},
		{"block x", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["block"] = "x" }, []string{`"block"`}},
		{"no block", func(_ map[string]*tensor.Tensor, meta map[string]string) { delete(meta, "block") }, []string{`"block"`}},
		{"residual for site attn", func(_ map[string]*tensor.Tensor, meta map[string]string) { meta["site"] = "attn" }, []string{"unexpected", "residual.scale"}},
		{"stray tensor", func(ts map[string]*tensor.Tensor, _ map[string]string) {
			ts["codebook_ema"] = tensor.New(tensor.F32, 1)
		}, []string{"unexpected", "codebook_ema"}},
	}
	for _, c := range cases {
		ts, meta := fixtureEntries(t, "block0_ln1")
		c.edit(ts, meta)
		path := writeEntries(t, ts, meta)
		_, err := Load(path, b)
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		for _, w := range append(c.wants, path, "vq: ") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
	// F16 and BF16 files load; the fingerprint hashes the widened values.
	ts, meta := fixtureEntries(t, "block0_ln1")
	ts["codebook"] = f16(ts["codebook"])
	m, err := Load(writeEntries(t, ts, meta), b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Fingerprint != fingerprint(ts["codebook"].ToF32()) {
		t.Error("F16 codebook: fingerprint is not that of its fp32 values")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.safetensors"), b); err == nil || !strings.HasPrefix(err.Error(), "vq: ") {
		t.Errorf("missing file: %v", err)
	}
}

func TestModuleWithoutDLP(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	md := fixtureData(t, "block1_ln2")
	md.DLPIn, md.DLPOut = nil, nil
	m, err := NewModule(md, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.In != nil || m.Out != nil {
		t.Fatal("DLP present")
	}
	// Identity DLP: U = Z, and Z_out is the codebook row itself.
	z := tensor.FromF32(md.Codebook[3*md.D:5*md.D], 2, md.D)
	u := make([]float32, 2*md.D)
	b.Read(u, m.DLPIn(b, z))
	if !slices.Equal(u, z.F32()) {
		t.Error("DLPIn without DLP is not the identity")
	}
	q, err := m.Quantize(b, z)
	if err != nil || q.Indices[0] != 3 || q.Indices[1] != 4 {
		t.Errorf("codebook rows quantize to %v (%v), want [3 4]", q.Indices, err)
	}
	zout, err := m.Dequantize(b, []int32{4, 3})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 2*md.D)
	b.Read(got, zout)
	if !slices.Equal(got[:md.D], z.F32()[md.D:]) || !slices.Equal(got[md.D:], z.F32()[:md.D]) {
		t.Error("Dequantize without DLP is not the codebook lookup")
	}
	if _, err := m.Dequantize(b, []int32{0, int32(md.K)}); err == nil {
		t.Error("index K dequantized")
	}
	if _, err := m.Dequantize(b, []int32{-1}); err == nil {
		t.Error("index −1 dequantized")
	}
	if _, err := m.Quantize(b, tensor.New(tensor.F32, 2, md.D+1)); err == nil {
		t.Error("features of the wrong width quantized")
	}
	bad := tensor.New(tensor.F32, 1, md.D)
	bad.F32()[0] = float32(nan())
	if _, err := m.Quantize(b, bad); err == nil {
		t.Error("NaN features quantized")
	}
}

func TestWriteModuleRoundTrip(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	for _, name := range modules {
		md := fixtureData(t, name)
		path := filepath.Join(t.TempDir(), "alignedvq.safetensors")
		if err := WriteModule(path, md); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path, b)
		if err != nil {
			t.Fatal(err)
		}
		want := loadFixture(t, b, name)
		if got.Fingerprint != want.Fingerprint || got.K != want.K || got.D != want.D || got.Block != want.Block ||
			got.Site != want.Site || got.In.Gamma != want.In.Gamma || got.Out.Gamma != want.Out.Gamma {
			t.Errorf("%s: round trip changed the module", name)
		}
		f, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Names() {
			x, _ := f.Tensor(n)
			if x.DType() != tensor.F32 {
				t.Errorf("%s: %s written as %v", name, n, x.DType())
			}
		}
		f.Close()
	}
	md := fixtureData(t, "block0_ln1")
	bad := []func(md *ModuleData){
		func(md *ModuleData) { md.Site = "mlp" },
		func(md *ModuleData) { md.Block = -1 },
		func(md *ModuleData) { md.Codebook = md.Codebook[1:] },
		func(md *ModuleData) { md.DLPOut = nil },
		func(md *ModuleData) { md.Scale = nil },
		func(md *ModuleData) { md.Site = "ffn" },
		func(md *ModuleData) { md.DLPIn.Bias = md.DLPIn.Bias[:3] },
		func(md *ModuleData) { md.Shift[2] = float32(inf()) },
	}
	for i, edit := range bad {
		c := *md
		c.Codebook = slices.Clone(md.Codebook)
		c.Shift = slices.Clone(md.Shift)
		in := *md.DLPIn
		c.DLPIn = &in
		edit(&c)
		if err := WriteModule(filepath.Join(t.TempDir(), "x.safetensors"), &c); err == nil {
			t.Errorf("bad module data %d written", i)
		}
	}
}

func TestCheckModel(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	m := loadFixture(t, b, "block1_ln2")
	if err := m.CheckModel(1024, 24); err == nil || !strings.Contains(err.Error(), "64") || !strings.Contains(err.Error(), "1024") {
		t.Errorf("D mismatch: %v", err)
	}
	if err := m.CheckModel(64, 1); err == nil || !strings.Contains(err.Error(), "block 1") || !strings.Contains(err.Error(), "1 blocks") {
		t.Errorf("block outside the model: %v", err)
	}
	if err := m.CheckModel(64, 2); err != nil {
		t.Error(err)
	}
}

func TestSites(t *testing.T) {
	for _, s := range []string{"ln1", "attn", "ln2", "ffn"} {
		if !ValidSite(s) {
			t.Errorf("%s invalid", s)
		}
		if SiteIsNorm(s) != (s == "ln1" || s == "ln2") {
			t.Errorf("SiteIsNorm(%s)", s)
		}
	}
	for _, s := range []string{"", "LN1", "mlp", "ln3"} {
		if ValidSite(s) {
			t.Errorf("%q valid", s)
		}
	}
}
