package jpeg

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it must return an image
// of the size its header states or an error, never panic or hang. The seeds
// are the corpus files and cuts of them.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/corpus/*.jpg")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 4096 {
			f.Add(b)
		}
		f.Add(b[:len(b)/3])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Decode(b, Options{MaxPixels: 1 << 20})
		if err != nil {
			return
		}
		cfg, err := DecodeConfig(b)
		if err != nil {
			t.Fatalf("Decode succeeded but DecodeConfig fails: %v", err)
		}
		if img.Width != cfg.Width || img.Height != cfg.Height || img.ColorSpace != cfg.ColorSpace ||
			len(img.Pix) != img.Width*img.Height*img.ColorSpace.Channels() {
			t.Fatalf("image %dx%d %v with %d samples; header says %dx%d %v",
				img.Width, img.Height, img.ColorSpace, len(img.Pix), cfg.Width, cfg.Height, cfg.ColorSpace)
		}
	})
}
