package llava

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

type vqCase struct {
	Image        string  `json:"image"`
	Question     string  `json:"question"`
	GeneratedIDs []int32 `json:"generated_ids"`
	Text         string  `json:"generated_text"`
}

// TestCloudTailFromReferenceFrames feeds each module's reference frames to
// the cloud tail: Z_out, the selected features and the projector output
// within 1e-4 of the reference, and the greedy ids identical. The edge head's
// frames must equal the reference's except at near-ties.
func TestCloudTailFromReferenceFrames(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	for _, module := range []string{"block0_ln1", "block1_ln2"} {
		t.Run(module, func(t *testing.T) {
			ck, err := Open(testutil.Testdata("tiny-llava"), OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			mod, err := vq.Load(testutil.Testdata("vq", module, "alignedvq.safetensors"), b)
			if err != nil {
				t.Fatal(err)
			}
			cloud := loadSplit(t, ck, b, mod, ck.CloudParts)
			edge := loadSplit(t, ck, b, mod, ck.EdgeParts)
			ref := testutil.Ref(t, "ref", "vq", module, "vq.safetensors")
			pix := testutil.Ref(t, "ref", "images.safetensors")
			raw, err := os.ReadFile(testutil.Testdata("ref", "vq", module, "cases.json"))
			if err != nil {
				t.Fatal(err)
			}
			var f struct{ Cases []vqCase }
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatal(err)
			}
			if len(f.Cases) != 6 {
				t.Fatalf("ref/vq/%s/cases.json holds %d cases, want the 6 images", module, len(f.Cases))
			}
			tmpl := mustTemplate(t, "vicuna_v1")
			for _, c := range f.Cases {
				frame := testutil.Tensor(t, ref, c.Image+".frame").Bytes()
				res, err := cloud.DecodeFrame(frame)
				if err != nil {
					t.Fatal(err)
				}
				zout := make([]float32, res.ZOut.Shape().Numel())
				b.Read(zout, res.ZOut)
				testutil.Close(t, c.Image+" Z_out", zout, testutil.F32(t, ref, c.Image+".Z_out"), 1e-4, 0.99999)
				sel := make([]float32, res.Selected.Shape().Numel())
				b.Read(sel, res.Selected)
				testutil.Close(t, c.Image+" selected", sel, testutil.F32(t, ref, c.Image+".selected"), 1e-4, 0.99999)
				proj := make([]float32, res.Projected.Shape().Numel())
				b.Read(proj, res.Projected)
				testutil.Close(t, c.Image+" projector", proj, testutil.F32(t, ref, c.Image+".projector"), 1e-4, 0.99999)
				out, err := cloud.Generate(context.Background(), Request{Prompt: tmpl.Prompt(c.Question, true), Image: res.Projected, MaxTokens: 24})
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(out.IDs) != fmt.Sprint(c.GeneratedIDs) || out.Text != c.Text {
					t.Fatalf("%s: ids\n got %v\nwant %v", c.Image, out.IDs, c.GeneratedIDs)
				}

				// The edge head: indices equal but at near-ties; the frame
				// byte-identical when they are.
				e, err := edge.EncodeFrame(testutil.F32(t, pix, c.Image+".pixel_values.pad"), false)
				if err != nil {
					t.Fatal(err)
				}
				checkIndices(t, c.Image, e, ref)
			}
		})
	}
}

// TestSelfCheckEverySite is the spec's self-check: with a codebook that holds
// every site feature of an image exactly (one entry per token, DLP identity),
// the split forward equals the unsplit one. At attn and ffn sites the stream
// itself is quantized, so the result is bit-identical; at ln sites the frame's
// token statistics rebuild the residual up to their fp16 rounding, and the
// affine map only as well as it fits.
func TestSelfCheckEverySite(t *testing.T) {
	b := cpu.New(0)
	defer b.Close()
	ck, err := Open(testutil.Testdata("tiny-llava"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, err := Load(ck, b, LoadOptions{Parts: ck.AllParts()})
	if err != nil {
		t.Fatal(err)
	}
	pixels := testutil.F32(t, testutil.Ref(t, "ref", "images.safetensors"), "tall_200x500.pixel_values.pad")
	want, err := m.Features(pixels, false)
	if err != nil {
		t.Fatal(err)
	}
	d := ck.Vision.HiddenSize
	for _, block := range []int{0, 1} {
		for site := vit.SiteLN1; site <= vit.SiteFFN; site++ {
			sp := vit.Split{Block: block, Site: site}
			// The features at the site, and the residual they came from.
			s := m.Vision.NewStream(b)
			m.Vision.Run(b, s, pixels, vit.Pixels, sp)
			z, x := m.host(s.X, 0).F32(), m.host(s.X, 0).F32()
			if site.IsNorm() {
				z = m.host(s.Z, 0).F32()
			}
			n := len(z) / d
			md := &vq.ModuleData{Block: block, Site: site.String(), Codebook: z, K: n, D: d}
			if site.IsNorm() {
				md.Scale, md.Shift, _ = vq.FitResidual(x, z, n, d) // its mean squared error is not needed here
			}
			path := filepath.Join(t.TempDir(), "alignedvq.safetensors")
			if err := vq.WriteModule(path, md); err != nil {
				t.Fatal(err)
			}
			mod, err := vq.Load(path, b)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.AttachVQ(mod); err != nil {
				t.Fatal(err)
			}
			for _, stats := range []bool{false, true} {
				if stats && !site.IsNorm() {
					continue
				}
				got, err := m.FeaturesVQ(pixels, nil, stats)
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%v stats=%v", sp, stats)
				for i, idx := range got.Indices.I32() {
					if int(idx) != i {
						t.Fatalf("%s: token %d quantized to %d", name, i, idx)
					}
				}
				switch {
				case !site.IsNorm():
					testutil.Exact(t, name, got.Projected.F32(), want.Projected.F32())
				case stats:
					st := testutil.Close(t, name, got.Projected.F32(), want.Projected.F32(), 5e-3, 0.99999)
					t.Logf("%s (fp16 token statistics): %v", name, st)
				default:
					// The map cannot carry each token's own mean and scale;
					// it must still keep the features pointing the same way.
					st := testutil.Compare(got.Projected.F32(), want.Projected.F32())
					t.Logf("%s (affine residual map fitted on this image): %v", name, st)
					if st.Cosine < 0.99 {
						t.Errorf("%s: the affine residual map lost the features: %v", name, st)
					}
				}
			}
		}
	}
}
