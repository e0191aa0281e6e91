package preprocess

import (
	"bytes"
	"image"
	"image/png"
	"path/filepath"
	"testing"
)

// TestLossyWebPMatchesPillow decodes the corpus of testdata/webp (made by its
// make_webp.py: 32 lossy files, 1×1 to 600×400, quality 0–100, methods 0–6,
// alpha, the normal and simple loop filters) and compares every RGB value
// with Pillow 9.4's Image.open(f).convert("RGB") (libwebp 1.2.4). Measured:
// all 925,440 values identical (x/image/vp8's reconstruction is the
// bit-exact VP8 decoding process, and webpToRGB is libwebp's fancy
// upsampler and YUV→RGB). The test pins that: one differing value fails it.
func TestLossyWebPMatchesPillow(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "webp", "*.webp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 32 {
		t.Fatalf("testdata/webp holds %d .webp files, make_webp.py writes 32", len(files))
	}
	var values, exact, within1, maxDiff int
	for _, f := range files {
		got, err := Decode(readTestdata(t, filepath.Join("webp", filepath.Base(f))), DecodeOptions{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := pngRGB(t, f+".rgb.png")
		if got.W != want.W || got.H != want.H {
			t.Fatalf("%s: decoded %dx%d, Pillow %dx%d", f, got.W, got.H, want.W, want.H)
		}
		differ := 0
		for i, g := range got.Pix {
			d := int(g) - int(want.Pix[i])
			d = max(d, -d)
			values++
			if d == 0 {
				exact++
			} else {
				differ++
			}
			if d <= 1 {
				within1++
			}
			maxDiff = max(maxDiff, d)
		}
		if differ > 0 {
			t.Errorf("%s: %d of %d RGB values differ from Pillow's", f, differ, len(got.Pix))
		}
	}
	t.Logf("%d files, %d values: %d exact, %d within 1, max |Δ| %d", len(files), values, exact, within1, maxDiff)
	if values != 925440 {
		t.Errorf("the corpus holds %d RGB values, make_webp.py's holds 925440", values)
	}
}

// pngRGB reads a reference RGB PNG written by make_webp.py.
func pngRGB(t *testing.T, path string) *Image {
	t.Helper()
	m, err := png.Decode(bytes.NewReader(readTestdata(t, filepath.Join("webp", filepath.Base(path)))))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rgba, ok := m.(*image.RGBA)
	if !ok || rgba.Rect.Min != (image.Point{}) {
		t.Fatalf("%s: %T, want an 8-bit RGB PNG", path, m)
	}
	w, h := rgba.Rect.Dx(), rgba.Rect.Dy()
	out := &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		for x := range w {
			p := rgba.Pix[y*rgba.Stride+4*x:]
			copy(out.Pix[3*(y*w+x):], p[:3])
		}
	}
	return out
}
