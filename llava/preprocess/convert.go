package preprocess

import (
	"fmt"
	"image"
	"image/color"

	"github.com/avq/avq/jpeg"
)

// Conversions from what Go's decoders return to RGB, each following the mode
// Pillow 9.4 opens that file in and its convert("RGB") from that mode
// (libImaging/Convert.c, Unpack.c):
//   - L, LA, P, RGB, RGBA: grey replicated, palette looked up (indices past
//     the file's palette are grey), alpha dropped (never composited);
//   - 16-bit PNG colour (RGB;16B, RGBA;16B, LA;16B raw modes): the high byte;
//   - 16-bit grey PNG opens as mode I, and I->RGB clips: min(v, 255);
//   - JPEG (decoded by package jpeg as libjpeg does): L replicated; CMYK,
//     whether stored as CMYK or YCCK, opened Adobe-inverted ("CMYK;I")
//     then cmyk2rgb's nk - nk*c/255.

// fromJPEG converts what libjpeg returns as Pillow does from the mode it
// opens the file in: L replicated, RGB as is, CMYK through "CMYK;I".
func fromJPEG(m *jpeg.Image) *Image {
	r := image.Rect(0, 0, m.Width, m.Height)
	switch m.ColorSpace {
	case jpeg.Gray:
		return fromGray(m.Pix, m.Width, r)
	case jpeg.CMYK:
		return from4(m.Pix, 4*m.Width, r, invertedCMYKToRGB)
	}
	return &Image{W: m.Width, H: m.Height, Pix: m.Pix}
}

// fromPNG handles what image/png returns. b is the file, already validated by
// the decoder, whose IHDR tells 16-bit grey (mode I in Pillow) apart.
func fromPNG(m image.Image, b []byte) (*Image, error) {
	const ihdrDepth, ihdrColorType = 8 + 8 + 8, 8 + 8 + 9 // signature, chunk header, width, height
	gray16 := len(b) > ihdrColorType && b[ihdrDepth] == 16 && b[ihdrColorType] == 0
	switch m := m.(type) {
	case *image.Gray:
		return fromGray(m.Pix, m.Stride, m.Rect), nil
	case *image.Gray16:
		img := newImage(m.Rect)
		for y := range img.H {
			row := m.Pix[y*m.Stride:]
			for x := range img.W {
				v := clip16to8(row[2*x], row[2*x+1])
				img.Pix[3*(y*img.W+x)], img.Pix[3*(y*img.W+x)+1], img.Pix[3*(y*img.W+x)+2] = v, v, v
			}
		}
		return img, nil
	case *image.RGBA: // opaque colour
		return from4(m.Pix, m.Stride, m.Rect, copyRGB), nil
	case *image.NRGBA: // colour+alpha, grey+alpha, or tRNS colour keys
		return from4(m.Pix, m.Stride, m.Rect, copyRGB), nil
	case *image.RGBA64: // opaque 16-bit colour
		return from8(m.Pix, m.Stride, m.Rect, highBytes), nil
	case *image.NRGBA64:
		if gray16 { // 16-bit grey with a tRNS key: still mode I in Pillow
			return from8(m.Pix, m.Stride, m.Rect, clipGray16), nil
		}
		return from8(m.Pix, m.Stride, m.Rect, highBytes), nil
	case *image.Paletted:
		return fromPaletted(m, paletteRGB(m.Palette, len(pngChunk(b, "PLTE"))/3)), nil
	}
	return nil, fmt.Errorf("unexpected PNG image type %T", m)
}

// fromWebP handles what x/image/webp returns.
func fromWebP(m image.Image) (*Image, error) {
	switch m := m.(type) {
	case *image.YCbCr:
		return webpToRGB(m)
	case *image.NYCbCrA:
		return webpToRGB(&m.YCbCr)
	case *image.NRGBA: // lossless
		return from4(m.Pix, m.Stride, m.Rect, copyRGB), nil
	}
	return nil, fmt.Errorf("unexpected WebP image type %T", m)
}

func newImage(r image.Rectangle) *Image {
	return &Image{W: r.Dx(), H: r.Dy(), Pix: make([]uint8, 3*r.Dx()*r.Dy())}
}

func fromGray(pix []uint8, stride int, r image.Rectangle) *Image {
	img := newImage(r)
	for y := range img.H {
		row := pix[y*stride : y*stride+img.W]
		o := img.Pix[3*y*img.W:]
		for x, v := range row {
			o[3*x], o[3*x+1], o[3*x+2] = v, v, v
		}
	}
	return img
}

// from4 converts a 4-byte-per-pixel image with per-pixel function f.
func from4(pix []uint8, stride int, r image.Rectangle, f func(dst, src []uint8)) *Image {
	img := newImage(r)
	for y := range img.H {
		row := pix[y*stride:]
		for x := range img.W {
			f(img.Pix[3*(y*img.W+x):], row[4*x:])
		}
	}
	return img
}

// from8 converts an 8-byte-per-pixel (16 bits a channel, big-endian) image.
func from8(pix []uint8, stride int, r image.Rectangle, f func(dst, src []uint8)) *Image {
	img := newImage(r)
	for y := range img.H {
		row := pix[y*stride:]
		for x := range img.W {
			f(img.Pix[3*(y*img.W+x):], row[8*x:])
		}
	}
	return img
}

func copyRGB(dst, src []uint8) { dst[0], dst[1], dst[2] = src[0], src[1], src[2] }

func highBytes(dst, src []uint8) { dst[0], dst[1], dst[2] = src[0], src[2], src[4] }

func clipGray16(dst, src []uint8) {
	v := clip16to8(src[0], src[1])
	dst[0], dst[1], dst[2] = v, v, v
}

// clip16to8 is Pillow's i2rgb on an I;16B sample: values above 255 clip.
func clip16to8(hi, lo uint8) uint8 {
	if hi != 0 {
		return 255
	}
	return lo
}

// invertedCMYKToRGB is Pillow's "CMYK;I" unpacking (each sample inverted,
// as Adobe stores CMYK) followed by its cmyk2rgb: nk = 255-k, channel =
// nk - nk*c/255 with MULDIV255's rounding.
func invertedCMYKToRGB(dst, src []uint8) {
	nk := int32(src[3]) // 255 - (255 - stored k)
	for i := range 3 {
		t := (255-int32(src[i]))*nk + 128
		dst[i] = clampU8(nk - ((t>>8)+t)>>8)
	}
}

// paletteRGB flattens the first n entries of a Go palette to RGB, without
// the premultiplication color.Color.RGBA would apply. Indices past them are
// grey (i, i, i): Pillow 9.4 starts every palette as a grey ramp and copies
// the file's entries over it (palettes start black only from Pillow 10.1).
func paletteRGB(p color.Palette, n int) *[256][3]uint8 {
	t := greyRamp()
	for i, c := range p[:min(len(p), n, 256)] {
		switch c := c.(type) {
		case color.RGBA:
			t[i] = [3]uint8{c.R, c.G, c.B}
		case color.NRGBA:
			t[i] = [3]uint8{c.R, c.G, c.B}
		default:
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			t[i] = [3]uint8{n.R, n.G, n.B}
		}
	}
	return t
}

func greyRamp() *[256][3]uint8 {
	var t [256][3]uint8
	for i := range t {
		t[i] = [3]uint8{uint8(i), uint8(i), uint8(i)}
	}
	return &t
}

func fromPaletted(m *image.Paletted, pal *[256][3]uint8) *Image {
	img := newImage(m.Rect)
	for y := range img.H {
		row := m.Pix[y*m.Stride : y*m.Stride+img.W]
		o := img.Pix[3*y*img.W:]
		for x, v := range row {
			copy(o[3*x:3*x+3], pal[v][:])
		}
	}
	return img
}
