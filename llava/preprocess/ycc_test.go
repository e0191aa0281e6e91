package preprocess

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/webp"
)

// The references below transcribe the C loops statement by statement
// (pointer walks, context rows, packed arithmetic) so that the clamped-index
// formulation in ycc.go is checked against a second, literal reading.

// refContextRows is jdmainct.c's view of a chroma plane: rows -1 and ch
// repeat the first and last real rows.
func refContextRows(plane []uint8, stride, cw, ch int) func(int) []uint8 {
	return func(r int) []uint8 {
		r = min(max(r, 0), ch-1)
		return plane[r*stride : r*stride+cw]
	}
}

// refH2V1 is h2v1_fancy_upsample on one row.
func refH2V1(in []uint8) []uint8 {
	out := make([]uint8, 0, 2*len(in))
	p := 0
	invalue := int(in[p])
	p++
	out = append(out, uint8(invalue), uint8((invalue*3+int(in[p])+2)>>2))
	for colctr := len(in) - 2; colctr > 0; colctr-- {
		invalue = int(in[p]) * 3
		p++
		out = append(out, uint8((invalue+int(in[p-2])+1)>>2), uint8((invalue+int(in[p])+2)>>2))
	}
	invalue = int(in[p])
	out = append(out, uint8((invalue*3+int(in[p-1])+1)>>2), uint8(invalue))
	return out
}

// refH2V2 is h2v2_fancy_upsample for one input row group (two output rows).
func refH2V2(rows func(int) []uint8, inrow int) [2][]uint8 {
	var res [2][]uint8
	for v := range 2 {
		in0 := rows(inrow)
		in1 := rows(inrow - 1)
		if v == 1 {
			in1 = rows(inrow + 1)
		}
		out := make([]uint8, 0, 2*len(in0))
		p := 0
		thiscolsum := int(in0[p])*3 + int(in1[p])
		p++
		nextcolsum := int(in0[p])*3 + int(in1[p])
		p++
		out = append(out, uint8((thiscolsum*4+8)>>4), uint8((thiscolsum*3+nextcolsum+7)>>4))
		lastcolsum := thiscolsum
		thiscolsum = nextcolsum
		for colctr := len(in0) - 2; colctr > 0; colctr-- {
			nextcolsum = int(in0[p])*3 + int(in1[p])
			p++
			out = append(out, uint8((thiscolsum*3+lastcolsum+8)>>4), uint8((thiscolsum*3+nextcolsum+7)>>4))
			lastcolsum = thiscolsum
			thiscolsum = nextcolsum
		}
		out = append(out, uint8((thiscolsum*3+lastcolsum+8)>>4), uint8((thiscolsum*4+7)>>4))
		res[v] = out
	}
	return res
}

// refUpsample drives the references over a whole plane.
func refUpsample(plane []uint8, stride, cw, ch, hs, vs, w, h int) []uint8 {
	rows := refContextRows(plane, stride, cw, ch)
	full := make([][]uint8, 0, ch*vs)
	for r := range ch {
		switch {
		case hs == 2 && vs == 1 && cw > 2:
			full = append(full, refH2V1(rows(r)))
		case hs == 2 && vs == 2 && cw > 2:
			pair := refH2V2(rows, r)
			full = append(full, pair[0], pair[1])
		case hs == 1 && vs == 2: // h1v2_fancy_upsample
			for v, bias := range []int{1, 2} {
				in0, in1 := rows(r), rows(r-1)
				if v == 1 {
					in1 = rows(r + 1)
				}
				out := make([]uint8, cw)
				for i := range out {
					out[i] = uint8((int(in0[i])*3 + int(in1[i]) + bias) >> 2)
				}
				full = append(full, out)
			}
		default: // int_upsample
			out := make([]uint8, 0, cw*hs)
			for _, v := range rows(r) {
				for range hs {
					out = append(out, v)
				}
			}
			for range vs {
				full = append(full, out)
			}
		}
	}
	res := make([]uint8, 0, w*h)
	for y := range h {
		res = append(res, full[y][:w]...)
	}
	return res
}

func TestJPEGUpsampleMatchesLibjpegLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	factors := [][2]int{{1, 1}, {2, 1}, {1, 2}, {2, 2}, {4, 1}, {4, 2}}
	for trial := range 400 {
		f := factors[trial%len(factors)]
		hs, vs := f[0], f[1]
		w, h := 1+rng.IntN(40), 1+rng.IntN(40)
		cw, ch := (w+hs-1)/hs, (h+vs-1)/vs
		stride := cw + rng.IntN(5)
		plane := make([]uint8, stride*ch)
		for i := range plane {
			plane[i] = uint8(rng.IntN(256))
		}
		got := jpegUpsample(plane, stride, cw, ch, hs, vs, w, h)
		want := refUpsample(plane, stride, cw, ch, hs, vs, w, h)
		if !bytes.Equal(got, want) {
			t.Fatalf("h%dv%d %dx%d: upsampled plane differs from libjpeg's loops", hs, vs, w, h)
		}
	}
}

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

// libjpeg's tables and Go's color.YCbCrToRGB round the same ITU-R 601
// formulas differently, never by more than one level.
func TestJPEGColorTablesNearGo(t *testing.T) {
	tb := jpegYCC
	for cb := range 256 {
		for cr := range 256 {
			for y := range 256 {
				yy := int32(y)
				r := clampU8(yy + tb.crR[cr])
				g := clampU8(yy + (tb.cbG[cb]+tb.crG[cr])>>16)
				b := clampU8(yy + tb.cbB[cb])
				gr, gg, gb := color.YCbCrToRGB(uint8(y), uint8(cb), uint8(cr))
				if d := max(absDiff(r, gr), absDiff(g, gg), absDiff(b, gb)); d > 1 {
					t.Fatalf("YCbCr(%d,%d,%d): libjpeg tables give (%d,%d,%d), Go (%d,%d,%d)", y, cb, cr, r, g, b, gr, gg, gb)
				}
			}
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

// Every chroma layout decodes, and stays close to Go's own decode (which
// differs only in chroma upsampling and rounding).
func TestJPEGSubsamplings(t *testing.T) {
	for _, s := range []string{"444", "422", "420", "440", "411", "410"} {
		b := readTestdata(t, "video-001.q50."+s+".jpeg")
		ours, err := Decode(b, DecodeOptions{})
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		m, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if ycc, ok := m.(*image.YCbCr); !ok || ycc.SubsampleRatio.String() != "YCbCrSubsampleRatio"+s {
			t.Fatalf("%s: test file does not decode as %s YCbCr", s, s)
		}
		if d := meanAbsDiff(t, ours, goRGB(m)); d > 2 {
			t.Errorf("%s: mean |Δ| to Go's decode = %.3f levels", s, d)
		}
	}
}

func TestGrayJPEG(t *testing.T) {
	b := readTestdata(t, "video-005.gray.q50.jpeg")
	ours, err := Decode(b, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := m.(*image.Gray)
	if !ok {
		t.Fatalf("test file decodes as %T", m)
	}
	for y := range ours.H {
		for x := range ours.W {
			v := g.GrayAt(x, y).Y
			if p := ours.Pix[3*(y*ours.W+x):]; p[0] != v || p[1] != v || p[2] != v {
				t.Fatalf("pixel (%d,%d) = %v, want grey %d replicated", x, y, p[:3], v)
			}
		}
	}
}

// Go's test CMYK JPEG, against the PNG rendering Go ships with it.
func TestCMYKJPEG(t *testing.T) {
	ours, err := Decode(readTestdata(t, "video-001.cmyk.jpeg"), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Decode(readTestdata(t, "video-001.cmyk.png"), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(t, ours, want); d > 1 {
		t.Errorf("mean |Δ| to the reference rendering = %.3f levels", d)
	}
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
