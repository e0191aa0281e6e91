package jpeg

import (
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

type manifest struct {
	Pillow  string            `json:"pillow"`
	Files   map[string]string `json:"files"`
	Refused map[string]struct {
		Error  string `json:"error"`
		Pillow string `json:"pillow"`
	} `json:"refused"`
}

func readManifest(t *testing.T) manifest {
	t.Helper()
	b, err := os.ReadFile("testdata/corpus/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) < 25 {
		t.Fatalf("corpus has %d references, want at least 25", len(m.Files))
	}
	return m
}

// pillowRGB converts decoded samples as Pillow 9.4's convert("RGB") does from
// the mode it opens the file in: L replicated, RGB as is, CMYK opened with
// raw mode "CMYK;I" (inverted) then cmyk2rgb.
func pillowRGB(img *Image) []uint8 {
	n := img.Width * img.Height
	out := make([]uint8, 3*n)
	for i := range n {
		switch img.ColorSpace {
		case Gray:
			v := img.Pix[i]
			out[3*i], out[3*i+1], out[3*i+2] = v, v, v
		case RGB:
			copy(out[3*i:3*i+3], img.Pix[3*i:3*i+3])
		case CMYK:
			nk := 255 - int32(255-img.Pix[4*i+3])
			for c := range 3 {
				tmp := int32(255-img.Pix[4*i+c])*nk + 128
				out[3*i+c] = clamp8(nk - ((tmp>>8)+tmp)>>8)
			}
		}
	}
	return out
}

func readPNG(t *testing.T, path string) (w, h int, pix []uint8) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r := m.Bounds()
	w, h = r.Dx(), r.Dy()
	pix = make([]uint8, 0, 3*w*h)
	switch m := m.(type) {
	case *image.RGBA:
		for i := 0; i < len(m.Pix); i += 4 {
			pix = append(pix, m.Pix[i:i+3]...)
		}
	case *image.NRGBA:
		for i := 0; i < len(m.Pix); i += 4 {
			pix = append(pix, m.Pix[i:i+3]...)
		}
	default:
		t.Fatalf("%s: reference decodes as %T, want 8-bit RGB", path, m)
	}
	return w, h, pix
}

// TestCorpus decodes every file of the corpus and compares it, value for
// value, with Pillow 9.4's RGB for it (testdata/make_corpus.py).
func TestCorpus(t *testing.T) {
	m := readManifest(t)
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/corpus", name+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := Decode(b, Options{})
			if err != nil {
				t.Fatalf("%s (%s): %v", name, m.Files[name], err)
			}
			w, h, want := readPNG(t, filepath.Join("testdata/corpus", name+".png"))
			if img.Width != w || img.Height != h {
				t.Fatalf("decoded %dx%d, Pillow %dx%d", img.Width, img.Height, w, h)
			}
			got := pillowRGB(img)
			diff, first := 0, -1
			for i := range got {
				if got[i] != want[i] {
					if first < 0 {
						first = i
					}
					diff++
				}
			}
			if diff > 0 {
				p := first / 3
				t.Fatalf("%s (%s, %v): %d of %d values differ from Pillow's; first at pixel (%d, %d) channel %d: %d, want %d",
					name, m.Files[name], img.ColorSpace, diff, len(got), p%w, p/w, first%3, got[first], want[first])
			}
		})
	}
}

// TestRefused checks that each file libjpeg would decode other than plainly
// (or not at all) gets an error naming why.
func TestRefused(t *testing.T) {
	m := readManifest(t)
	for name, r := range m.Refused {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/corpus", name+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Decode(b, Options{})
			if err == nil {
				t.Fatalf("decoded; want an error about %s (Pillow: %s)", r.Error, r.Pillow)
			}
			if !strings.Contains(err.Error(), r.Error) {
				t.Fatalf("error %q does not name %q", err, r.Error)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError", err)
			}
		})
	}
}
