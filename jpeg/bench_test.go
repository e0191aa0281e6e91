package jpeg

import (
	"bytes"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"math/rand/v2"
	"testing"
)

// benchJPEG encodes a synthetic photograph-like picture (gradients, a
// texture and noise) with Go's encoder at quality 90, 4:2:0.
func benchJPEG(b *testing.B, w, h int) []byte {
	b.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			n := uint8(rng.IntN(24))
			m.SetRGBA(x, y, color.RGBA{uint8(x*255/w) + n, uint8(y*255/h) + n, uint8((x^y)&63) + n, 255})
		}
	}
	var buf bytes.Buffer
	if err := stdjpeg.Encode(&buf, m, &stdjpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkDecode compares this decoder (to interleaved RGB) with
// image/jpeg (to YCbCr planes, no colour conversion) on the same files.
func BenchmarkDecode(b *testing.B) {
	for _, s := range []struct {
		name string
		w, h int
	}{{"640x480", 640, 480}, {"4032x3024", 4032, 3024}} {
		data := benchJPEG(b, s.w, s.h)
		b.Run(s.name+"/avq", func(b *testing.B) {
			b.SetBytes(int64(s.w * s.h))
			for b.Loop() {
				if _, err := Decode(data, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.name+"/image-jpeg", func(b *testing.B) {
			b.SetBytes(int64(s.w * s.h))
			for b.Loop() {
				if _, err := stdjpeg.Decode(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
