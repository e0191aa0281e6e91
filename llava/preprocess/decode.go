package preprocess

import (
	"bytes"
	"fmt"
	"image"
	"image/gif"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/webp"

	"github.com/avq/avq/jpeg"
)

// Image is an 8-bit RGB image, row-major HWC: channel c of pixel (x, y) is
// Pix[(y*W+x)*3+c].
type Image struct {
	W, H int
	Pix  []uint8
}

// DecodeOptions tunes Decode.
type DecodeOptions struct {
	// ApplyEXIF rotates and flips the image as its EXIF Orientation tag
	// (1-8) says, as Pillow's ImageOps.exif_transpose would. The LLaVA
	// reference does not, so it is off by default.
	ApplyEXIF bool
	// MaxPixels refuses images with more pixels; 0 means DefaultMaxPixels.
	MaxPixels int
}

// Limits checked against the header before any pixel is decoded.
const (
	DefaultMaxPixels = 100_000_000
	MaxSide          = 32768
	maxFileBytes     = 1 << 30
)

type format int

const (
	formatUnknown format = iota
	formatJPEG
	formatPNG
	formatGIF
	formatWebP
)

func (f format) String() string {
	return [...]string{"unknown", "JPEG", "PNG", "GIF", "WebP"}[f]
}

func sniff(b []byte) format {
	switch {
	case bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return formatJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return formatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return formatGIF
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return formatWebP
	}
	return formatUnknown
}

// Decode decodes a JPEG, PNG, GIF (first frame) or WebP (still) file and
// converts it to RGB as Pillow 9.4's Image.open(f).convert("RGB") does.
func Decode(b []byte, opt DecodeOptions) (*Image, error) {
	img, err := decode(b, opt)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	return img, nil
}

// DecodeFile reads and decodes the image file at path; errors name the file.
func DecodeFile(path string, opt DecodeOptions) (*Image, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	img, err := decode(b, opt)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %s: %w", path, err)
	}
	return img, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxFileBytes {
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d an image may have", path, st.Size(), maxFileBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s: file grew past %d bytes while being read", path, maxFileBytes)
	}
	return b, nil
}

func decode(b []byte, opt DecodeOptions) (*Image, error) {
	f := sniff(b)
	maxPixels := opt.MaxPixels
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if f == formatJPEG {
		return decodeJPEG(b, opt, maxPixels)
	}
	var decodeConfig func(io.Reader) (image.Config, error)
	var decodeImage func(io.Reader) (image.Image, error)
	switch f {
	case formatPNG:
		decodeConfig, decodeImage = png.DecodeConfig, png.Decode
	case formatGIF:
		decodeConfig, decodeImage = gif.DecodeConfig, gif.Decode
	case formatWebP:
		decodeConfig, decodeImage = webp.DecodeConfig, webp.Decode
	default:
		if len(b) == 0 {
			return nil, fmt.Errorf("not a JPEG, PNG, GIF or WebP file (empty)")
		}
		return nil, fmt.Errorf("not a JPEG, PNG, GIF or WebP file (starts % x)", b[:min(len(b), 12)])
	}
	cfg, err := decodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reading %v header: %w", f, err)
	}
	if err := checkSize(cfg.Width, cfg.Height, maxPixels); err != nil {
		return nil, err
	}
	m, err := decodeImage(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decoding %v: %w", f, err)
	}
	var img *Image
	switch f {
	case formatPNG:
		img, err = fromPNG(m, b)
	case formatGIF:
		img, err = fromGIF(m, b, cfg)
	case formatWebP:
		img, err = fromWebP(m)
	}
	if err != nil {
		return nil, fmt.Errorf("converting %v to RGB: %w", f, err)
	}
	if img.W != cfg.Width || img.H != cfg.Height {
		return nil, fmt.Errorf("%v header says %dx%d but the image decoded as %dx%d", f, cfg.Width, cfg.Height, img.W, img.H)
	}
	if opt.ApplyEXIF {
		img = orient(img, exifOrientation(f, b))
	}
	return img, nil
}

// decodeJPEG decodes with the libjpeg-exact decoder, which reads the frame
// header and applies the pixel limit before it allocates anything.
func decodeJPEG(b []byte, opt DecodeOptions, maxPixels int) (*Image, error) {
	cfg, err := jpeg.DecodeConfig(b)
	if err != nil {
		return nil, fmt.Errorf("reading JPEG header: %w", err)
	}
	if err := checkSize(cfg.Width, cfg.Height, maxPixels); err != nil {
		return nil, err
	}
	m, err := jpeg.Decode(b, jpeg.Options{MaxPixels: maxPixels})
	if err != nil {
		return nil, fmt.Errorf("decoding JPEG: %w", err)
	}
	img := fromJPEG(m)
	if opt.ApplyEXIF {
		img = orient(img, exifOrientation(formatJPEG, b))
	}
	return img, nil
}

func checkSize(w, h, maxPixels int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("image is %dx%d, which has no pixels", w, h)
	}
	if w > MaxSide || h > MaxSide || int64(w)*int64(h) > int64(maxPixels) {
		return fmt.Errorf("image is %dx%d (%.1f megapixels); the limit is %d pixels a side and %.1f megapixels",
			w, h, float64(w)*float64(h)/1e6, MaxSide, float64(maxPixels)/1e6)
	}
	return nil
}
