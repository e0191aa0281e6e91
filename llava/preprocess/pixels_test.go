package preprocess

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

func randomImage(rng *rand.Rand, w, h int) *Image {
	img := &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	return img
}

// expandToSquare builds expand2square's canvas for real, as the reference
// does, to check the virtual canvas against.
func expandToSquare(img *Image, fill [3]uint8) *Image {
	side := max(img.W, img.H)
	out := &Image{W: side, H: side, Pix: make([]uint8, 3*side*side)}
	for i := 0; i < len(out.Pix); i += 3 {
		copy(out.Pix[i:], fill[:])
	}
	ox, oy := (side-img.W)/2, (side-img.H)/2
	for y := range img.H {
		copy(out.Pix[3*((oy+y)*side+ox):], img.Pix[3*y*img.W:3*(y+1)*img.W])
	}
	return out
}

func TestPadCanvasMatchesMaterialisedSquare(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := DefaultConfig()
	c.Size, c.CropSize = 40, 32
	fill := [3]uint8{padFill(c.Mean[0]), padFill(c.Mean[1]), padFill(c.Mean[2])}
	for range 60 {
		img := randomImage(rng, 1+rng.IntN(120), 1+rng.IntN(120))
		got := c.PixelValues(img, Pad)
		want := c.PixelValues(expandToSquare(img, fill), Crop)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%dx%d: value %d = %v, materialised square gives %v", img.W, img.H, i, got[i], want[i])
			}
		}
	}
}

func TestResizeWindowMatchesFullResize(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 60 {
		img := randomImage(rng, 1+rng.IntN(50), 1+rng.IntN(50))
		cv := &canvas{img: img, w: img.W, h: img.H}
		outW, outH := 1+rng.IntN(60), 1+rng.IntN(60)
		switch rng.IntN(4) { // keep one side, as Pillow then skips a pass
		case 0:
			outW = img.W
		case 1:
			outH = img.H
		}
		full := resizeWindow(cv, outW, outH, 0, 0, outW, outH)
		x0, y0 := rng.IntN(outW), rng.IntN(outH)
		cw, ch := 1+rng.IntN(outW-x0), 1+rng.IntN(outH-y0)
		win := resizeWindow(cv, outW, outH, x0, y0, cw, ch)
		for y := range ch {
			if !bytes.Equal(win.Pix[3*y*cw:3*(y+1)*cw], full.Pix[3*((y0+y)*outW+x0):3*((y0+y)*outW+x0+cw)]) {
				t.Fatalf("%dx%d -> %dx%d window (%d,%d,%d,%d) row %d differs from the full resize",
					img.W, img.H, outW, outH, x0, y0, cw, ch, y)
			}
		}
	}
}

// A uniform image stays uniform through padding with its own colour, any
// resize and the crop; extreme shapes stay cheap because neither the square
// nor the resized image outside the crop is built.
func TestExtremeShapes(t *testing.T) {
	c := DefaultConfig()
	fill := [3]uint8{padFill(c.Mean[0]), padFill(c.Mean[1]), padFill(c.Mean[2])}
	for _, wh := range [][2]int{{20000, 2}, {3, 30000}, {1, 1}, {224, 224}} {
		img := &Image{W: wh[0], H: wh[1], Pix: make([]uint8, 3*wh[0]*wh[1])}
		for i := 0; i < len(img.Pix); i += 3 {
			copy(img.Pix[i:], fill[:])
		}
		want := c.normalize(&Image{W: 1, H: 1, Pix: fill[:]})
		for _, a := range []Aspect{Pad, Crop} {
			got := c.PixelValues(img, a)
			if len(got) != 3*c.CropSize*c.CropSize {
				t.Fatalf("%v %v: %d values", wh, a, len(got))
			}
			for i, v := range got {
				if v != want[i/(c.CropSize*c.CropSize)] {
					t.Fatalf("%v %v: value %d = %v, want %v", wh, a, i, v, want[i/(c.CropSize*c.CropSize)])
				}
			}
		}
	}
}

func TestNormalizeOptions(t *testing.T) {
	img := &Image{W: 1, H: 1, Pix: []uint8{255, 0, 51}}
	c := DefaultConfig()
	c.DoRescale, c.DoNormalize = false, false
	if got := c.normalize(img); got[0] != 255 || got[1] != 0 || got[2] != 51 {
		t.Errorf("no rescale, no normalise: %v", got)
	}
	c.DoRescale = true
	if got := c.normalize(img); got[0] != float32(255*(1.0/255)) || got[2] != float32(51*(1.0/255)) {
		t.Errorf("rescale only: %v", got)
	}
}

func TestPixelValuesPanicsOnBadImage(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a short Pix")
		}
	}()
	DefaultConfig().PixelValues(&Image{W: 2, H: 2, Pix: make([]uint8, 5)}, Crop)
}

func BenchmarkPixelValues640x360(b *testing.B) {
	img := randomImage(rand.New(rand.NewPCG(9, 10)), 640, 360)
	c := DefaultConfig()
	c.Size, c.CropSize = 336, 336
	for _, a := range []Aspect{Crop, Pad} {
		b.Run(a.String(), func(b *testing.B) {
			for b.Loop() {
				c.PixelValues(img, a)
			}
		})
	}
}

// TestModelImageIsWhatTheModelSees: the model image, preprocessed again,
// gives the same pixel values bit for bit (its resize and crop are the
// identity), so a baseline that sends it loses nothing but its encoding.
func TestModelImageIsWhatTheModelSees(t *testing.T) {
	c := DefaultConfig()
	for _, key := range pngFixtures {
		img, err := DecodeFile(filepath.Join(fixtureDir, "images", key+".png"), DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []Aspect{Crop, Pad} {
			m := c.ModelImage(img, a)
			if m.W != c.CropSize || m.H != c.CropSize {
				t.Fatalf("%s %v: model image %dx%d", key, a, m.W, m.H)
			}
			exactValues(t, key, c.PixelValues(m, a), c.PixelValues(img, a))
		}
	}
}
