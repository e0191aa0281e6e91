package preprocess

import (
	"testing"
)

// FuzzDecode feeds arbitrary bytes through the decoders, the RGB conversion,
// EXIF orientation and a small PixelValues run: the result must be an error
// or a well-formed image, never a panic or a hang. The seed corpus in
// testdata/fuzz/FuzzDecode holds small fixture images of every format and
// damaged variants of them.
func FuzzDecode(f *testing.F) {
	c := DefaultConfig()
	c.Size, c.CropSize = 16, 12
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, exif := range []bool{false, true} {
			img, err := Decode(b, DecodeOptions{ApplyEXIF: exif, MaxPixels: 1 << 16})
			if err != nil {
				if img != nil {
					t.Fatal("image and error both returned")
				}
				continue
			}
			if img.W <= 0 || img.H <= 0 || len(img.Pix) != 3*img.W*img.H {
				t.Fatalf("malformed image %dx%d with %d bytes", img.W, img.H, len(img.Pix))
			}
			for _, a := range []Aspect{Crop, Pad} {
				if n := len(c.PixelValues(img, a)); n != 3*c.CropSize*c.CropSize {
					t.Fatalf("%d pixel values", n)
				}
			}
		}
	})
}
