package preprocess

import (
	"bytes"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/webp"
)

// refWebPToRGB is libwebp's EmitFancyRGB over a whole frame with
// UPSAMPLE_FUNC's packed (u | v<<16) arithmetic and VP8YuvToRgb.
func refWebPToRGB(m *image.YCbCr) []uint8 {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dst := make([]uint8, 3*w*h)
	put := func(row, x int, y, u, v uint32) {
		p := dst[3*(row*w+x):]
		yy, uu, vv := int32(y), int32(u), int32(v)
		p[0] = webpClip8(multHi(yy, 19077) + multHi(vv, 26149) - 14234)
		p[1] = webpClip8(multHi(yy, 19077) - multHi(uu, 6419) - multHi(vv, 13320) + 8708)
		p[2] = webpClip8(multHi(yy, 19077) + multHi(uu, 33050) - 17685)
	}
	yRow := func(r int) []uint8 { return m.Y[r*m.YStride:] }
	uvRow := func(r int) (u, v []uint8) { return m.Cb[r*m.CStride:], m.Cr[r*m.CStride:] }
	load := func(u, v []uint8, i int) uint32 { return uint32(u[i]) | uint32(v[i])<<16 }
	upsample := func(topY []uint8, topRow int, bottomY []uint8, bottomRow int, tu, tv, cu, cv []uint8) {
		lastPair := (w - 1) >> 1
		tl, l := load(tu, tv, 0), load(cu, cv, 0)
		uv0 := (3*tl + l + 0x00020002) >> 2
		put(topRow, 0, uint32(topY[0]), uv0&0xff, uv0>>16)
		if bottomY != nil {
			uv0 := (3*l + tl + 0x00020002) >> 2
			put(bottomRow, 0, uint32(bottomY[0]), uv0&0xff, uv0>>16)
		}
		for x := 1; x <= lastPair; x++ {
			tuv, uv := load(tu, tv, x), load(cu, cv, x)
			avg := tl + tuv + l + uv + 0x00080008
			diag12 := (avg + 2*(tuv+l)) >> 3
			diag03 := (avg + 2*(tl+uv)) >> 3
			a, b := (diag12+tl)>>1, (diag03+tuv)>>1
			put(topRow, 2*x-1, uint32(topY[2*x-1]), a&0xff, a>>16)
			put(topRow, 2*x, uint32(topY[2*x]), b&0xff, b>>16)
			if bottomY != nil {
				a, b := (diag03+l)>>1, (diag12+uv)>>1
				put(bottomRow, 2*x-1, uint32(bottomY[2*x-1]), a&0xff, a>>16)
				put(bottomRow, 2*x, uint32(bottomY[2*x]), b&0xff, b>>16)
			}
			tl, l = tuv, uv
		}
		if w&1 == 0 {
			uv0 := (3*tl + l + 0x00020002) >> 2
			put(topRow, w-1, uint32(topY[w-1]), uv0&0xff, uv0>>16)
			if bottomY != nil {
				uv0 := (3*l + tl + 0x00020002) >> 2
				put(bottomRow, w-1, uint32(bottomY[w-1]), uv0&0xff, uv0>>16)
			}
		}
	}
	cu, cv := uvRow(0)
	upsample(yRow(0), 0, nil, 0, cu, cv, cu, cv)
	y, uvr := 0, 0
	for ; y+2 < h; y += 2 {
		tu, tv := cu, cv
		uvr++
		cu, cv = uvRow(uvr)
		upsample(yRow(y+1), y+1, yRow(y+2), y+2, tu, tv, cu, cv)
	}
	if h&1 == 0 {
		upsample(yRow(h-1), h-1, nil, 0, cu, cv, cu, cv)
	}
	return dst
}

func TestWebPUpsampleMatchesLibwebpLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		w, h := 1+rng.IntN(33), 1+rng.IntN(33)
		m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		for _, p := range [][]uint8{m.Y, m.Cb, m.Cr} {
			for i := range p {
				p[i] = uint8(rng.IntN(256))
			}
		}
		got, err := webpToRGB(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Pix, refWebPToRGB(m)) {
			t.Fatalf("%dx%d: RGB differs from libwebp's loops", w, h)
		}
	}
}

func absDiff(a, b uint8) int { return max(int(a)-int(b), int(b)-int(a)) }

func meanAbsDiff(t *testing.T, a, b *Image) float64 {
	t.Helper()
	if a.W != b.W || a.H != b.H {
		t.Fatalf("sizes %dx%d and %dx%d differ", a.W, a.H, b.W, b.H)
	}
	s := 0
	for i := range a.Pix {
		s += absDiff(a.Pix[i], b.Pix[i])
	}
	return float64(s) / float64(len(a.Pix))
}

// goRGB converts with Go's image/color, the baseline this package corrects.
func goRGB(m image.Image) *Image {
	r := m.Bounds()
	img := newImage(r)
	for y := range img.H {
		for x := range img.W {
			c := color.RGBAModel.Convert(m.At(x+r.Min.X, y+r.Min.Y)).(color.RGBA)
			copy(img.Pix[3*(y*img.W+x):], []uint8{c.R, c.G, c.B})
		}
	}
	return img
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Lossy WebP is BT.601 limited range; decoding it as full-range JFIF (what
// image/color does) is visibly further from the source picture.
func TestLossyWebP(t *testing.T) {
	b := readTestdata(t, "video-001.lossy.webp")
	ours, err := Decode(b, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := Decode(readTestdata(t, "video-001.png"), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := webp.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dOurs, dGo := meanAbsDiff(t, ours, src), meanAbsDiff(t, goRGB(m), src)
	t.Logf("mean |Δ| to source: libwebp conversion %.3f, image/color %.3f", dOurs, dGo)
	if dOurs >= dGo {
		t.Errorf("libwebp-style conversion (%.3f) is not closer to the source than JFIF (%.3f)", dOurs, dGo)
	}
}

// Lossless WebP keeps RGB under transparent pixels, as the PNG of the same
// picture does; both must drop alpha without compositing.
func TestLosslessWebPDropsAlpha(t *testing.T) {
	got, err := Decode(readTestdata(t, "gopher-doc.with-alpha.lossless.webp"), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Decode(readTestdata(t, "gopher-doc.with-alpha.png"), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
		t.Errorf("lossless WebP RGB differs from the PNG's")
	}
}
