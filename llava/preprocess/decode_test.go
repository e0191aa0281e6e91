package preprocess

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// insertPNGChunk puts a chunk right after IHDR.
func insertPNGChunk(b []byte, typ string, data []byte) []byte {
	const afterIHDR = 8 + 8 + 13 + 4
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	chunk = append(chunk, typ...)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := append([]byte{}, b[:afterIHDR]...)
	out = append(out, chunk...)
	return append(out, b[afterIHDR:]...)
}

func decodeOK(t *testing.T, b []byte) *Image {
	t.Helper()
	img, err := Decode(b, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func wantPixel(t *testing.T, img *Image, x, y int, want [3]uint8) {
	t.Helper()
	if got := [3]uint8(img.Pix[3*(y*img.W+x):]); got != want {
		t.Errorf("pixel (%d,%d) = %v, want %v", x, y, got, want)
	}
}

// Pillow's PNG raw modes: 16-bit colour keeps the high byte; 16-bit grey is
// mode I and clips to 255; alpha is dropped.
func TestPNGModes(t *testing.T) {
	t.Run("rgb16", func(t *testing.T) {
		m := image.NewRGBA64(image.Rect(0, 0, 2, 1))
		m.SetRGBA64(0, 0, color.RGBA64{0x12ff, 0x3400, 0xfe01, 0xffff})
		m.SetRGBA64(1, 0, color.RGBA64{0x0080, 0xff7f, 0x8000, 0xffff})
		img := decodeOK(t, encodePNG(t, m))
		wantPixel(t, img, 0, 0, [3]uint8{0x12, 0x34, 0xfe})
		wantPixel(t, img, 1, 0, [3]uint8{0x00, 0xff, 0x80})
	})
	t.Run("rgba16", func(t *testing.T) {
		m := image.NewNRGBA64(image.Rect(0, 0, 1, 1))
		m.SetNRGBA64(0, 0, color.NRGBA64{0xabcd, 0x0102, 0x7fff, 0x0000})
		wantPixel(t, decodeOK(t, encodePNG(t, m)), 0, 0, [3]uint8{0xab, 0x01, 0x7f})
	})
	t.Run("gray16", func(t *testing.T) {
		m := image.NewGray16(image.Rect(0, 0, 3, 1))
		for x, v := range []uint16{0x00c8, 0x00ff, 0x0100} {
			m.SetGray16(x, 0, color.Gray16{v})
		}
		b := encodePNG(t, m)
		img := decodeOK(t, b)
		for x, v := range []uint8{0xc8, 0xff, 0xff} {
			wantPixel(t, img, x, 0, [3]uint8{v, v, v})
		}
		// With a tRNS colour key Go decodes to NRGBA64; Pillow still has I.
		img = decodeOK(t, insertPNGChunk(b, "tRNS", []byte{0x00, 0xc8}))
		for x, v := range []uint8{0xc8, 0xff, 0xff} {
			wantPixel(t, img, x, 0, [3]uint8{v, v, v})
		}
	})
	t.Run("rgba8", func(t *testing.T) {
		m := image.NewNRGBA(image.Rect(0, 0, 2, 1))
		m.SetNRGBA(0, 0, color.NRGBA{200, 10, 30, 0}) // invisible, RGB kept
		m.SetNRGBA(1, 0, color.NRGBA{1, 2, 3, 128})
		img := decodeOK(t, encodePNG(t, m))
		wantPixel(t, img, 0, 0, [3]uint8{200, 10, 30})
		wantPixel(t, img, 1, 0, [3]uint8{1, 2, 3})
	})
	t.Run("palette", func(t *testing.T) {
		pal := color.Palette{color.RGBA{10, 20, 30, 255}, color.RGBA{250, 5, 99, 255}}
		m := image.NewPaletted(image.Rect(0, 0, 2, 1), pal)
		m.SetColorIndex(1, 0, 1)
		img := decodeOK(t, encodePNG(t, m))
		wantPixel(t, img, 0, 0, [3]uint8{10, 20, 30})
		wantPixel(t, img, 1, 0, [3]uint8{250, 5, 99})
	})
	t.Run("index past PLTE", func(t *testing.T) {
		pal := make(color.Palette, 20) // 8-bit indices, 20 PLTE entries
		for i := range pal {
			pal[i] = color.RGBA{uint8(i), 100, 50, 255}
		}
		m := image.NewPaletted(image.Rect(0, 0, 2, 1), pal)
		m.Pix[0], m.Pix[1] = 19, 200
		img := decodeOK(t, encodePNG(t, m))
		wantPixel(t, img, 0, 0, [3]uint8{19, 100, 50})
		wantPixel(t, img, 1, 0, [3]uint8{200, 200, 200}) // Pillow 9.4's grey ramp
	})
	t.Run("gray1", func(t *testing.T) {
		m := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.Gray{0}, color.Gray{255}})
		m.SetColorIndex(1, 0, 1)
		img := decodeOK(t, encodePNG(t, m))
		wantPixel(t, img, 0, 0, [3]uint8{0, 0, 0})
		wantPixel(t, img, 1, 0, [3]uint8{255, 255, 255})
	})
}

// gifBytes encodes frame (with rect inside a w x h screen) and then writes
// the transparent entry's real colour into the global table, since Go's
// encoder writes transparent entries as black.
func gifBytes(t *testing.T, w, h int, frame *image.Paletted, transparent int, trueColour [3]uint8) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := gif.EncodeAll(&buf, &gif.GIF{
		Image:  []*image.Paletted{frame},
		Delay:  []int{0},
		Config: image.Config{ColorModel: frame.Palette, Width: w, Height: h},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if transparent >= 0 {
		copy(b[13+3*transparent:], trueColour[:])
	}
	return b
}

func TestGIF(t *testing.T) {
	red, green := color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}
	t.Run("transparent fill and colour kept", func(t *testing.T) {
		pal := color.Palette{red, green, color.RGBA{}, color.RGBA{0, 0, 255, 255}}
		frame := image.NewPaletted(image.Rect(1, 1, 3, 2), pal)
		frame.SetColorIndex(1, 1, 1)
		frame.SetColorIndex(2, 1, 2)
		b := gifBytes(t, 4, 3, frame, 2, [3]uint8{9, 8, 7})
		img := decodeOK(t, b)
		if img.W != 4 || img.H != 3 {
			t.Fatalf("decoded %dx%d, want the 4x3 screen", img.W, img.H)
		}
		wantPixel(t, img, 0, 0, [3]uint8{9, 8, 7}) // outside the frame: transparent index
		wantPixel(t, img, 1, 1, [3]uint8{0, 255, 0})
		wantPixel(t, img, 2, 1, [3]uint8{9, 8, 7}) // transparent pixel keeps its colour
		wantPixel(t, img, 3, 2, [3]uint8{9, 8, 7})
	})
	t.Run("transparent index past the table", func(t *testing.T) {
		frame := image.NewPaletted(image.Rect(0, 0, 1, 1), color.Palette{red, green})
		b := gifBytes(t, 2, 1, frame, -1, [3]uint8{})
		gce := bytes.Index(b, []byte{0x21, 0xf9, 0x04})
		if gce < 0 {
			b = append(b[:13+6:13+6], append([]byte{0x21, 0xf9, 0x04, 0, 0, 0, 0, 0}, b[13+6:]...)...)
			gce = 13 + 6
		}
		b[gce+3] |= 1
		b[gce+6] = 7
		img := decodeOK(t, b)
		wantPixel(t, img, 0, 0, [3]uint8{255, 0, 0})
		wantPixel(t, img, 1, 0, [3]uint8{7, 7, 7}) // fill index 7: grey ramp
	})
	t.Run("opaque, smaller frame", func(t *testing.T) {
		pal := color.Palette{red, green}
		frame := image.NewPaletted(image.Rect(0, 0, 1, 1), pal)
		frame.SetColorIndex(0, 0, 1)
		img := decodeOK(t, gifBytes(t, 2, 2, frame, -1, [3]uint8{}))
		wantPixel(t, img, 0, 0, [3]uint8{0, 255, 0})
		wantPixel(t, img, 1, 1, [3]uint8{255, 0, 0}) // index 0 elsewhere
	})
}

// A simple-format (VP8) WebP and the same bitstream in an extended (VP8X)
// container decode alike.
func TestWebPContainers(t *testing.T) {
	b := readTestdata(t, "video-001.lossy.webp")
	simple := decodeOK(t, b)
	ext := webpWithEXIF(t, b, simple.W, simple.H, nil)
	if got := decodeOK(t, ext); !bytes.Equal(got.Pix, simple.Pix) {
		t.Error("VP8X-wrapped lossless WebP decodes differently")
	}
}

// webpWithEXIF rewraps a simple-format WebP as VP8X + EXIF + its chunk.
func webpWithEXIF(t *testing.T, b []byte, w, h int, exif []byte) []byte {
	t.Helper()
	if string(b[12:16]) != "VP8L" && string(b[12:16]) != "VP8 " {
		t.Fatalf("not a simple-format WebP")
	}
	vp8x := []byte{0, 0, 0, 0}
	if exif != nil {
		vp8x[0] = 1 << 3
	}
	vp8x = append(vp8x, byte(w-1), byte((w-1)>>8), byte((w-1)>>16), byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	body := []byte("WEBP")
	body = appendRIFFChunk(body, "VP8X", vp8x)
	if exif != nil {
		body = appendRIFFChunk(body, "EXIF", exif)
	}
	body = append(body, b[12:]...)
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...)
}

func appendRIFFChunk(b []byte, id string, data []byte) []byte {
	b = append(b, id...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// exifTIFF is a minimal big-endian TIFF block with one Orientation entry.
func exifTIFF(o uint16) []byte {
	b := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01")
	b = binary.BigEndian.AppendUint16(b, 0x0112)
	b = binary.BigEndian.AppendUint16(b, 3)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, o)
	return append(b, 0, 0, 0, 0, 0, 0)
}

// Two primitives, written independently of orient: mirror and rotate 90
// degrees clockwise; every EXIF orientation is a composition of them.
func mirror(img *Image) *Image {
	out := &Image{W: img.W, H: img.H, Pix: make([]uint8, len(img.Pix))}
	for y := range img.H {
		for x := range img.W {
			copy(out.Pix[3*(y*img.W+img.W-1-x):], img.Pix[3*(y*img.W+x):3*(y*img.W+x)+3])
		}
	}
	return out
}

func rotateCW(img *Image) *Image {
	out := &Image{W: img.H, H: img.W, Pix: make([]uint8, len(img.Pix))}
	for y := range img.H {
		for x := range img.W { // (x, y) lands on (H-1-y, x)
			copy(out.Pix[3*(x*out.W+img.H-1-y):], img.Pix[3*(y*img.W+x):3*(y*img.W+x)+3])
		}
	}
	return out
}

func TestEXIFOrientation(t *testing.T) {
	m := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 7)
	}
	for i := 3; i < len(m.Pix); i += 4 {
		m.Pix[i] = 255
	}
	plain := encodePNG(t, m)
	base := decodeOK(t, plain)
	r := rotateCW
	want := map[uint16]*Image{
		1: base, 2: mirror(base), 3: r(r(base)), 4: mirror(r(r(base))),
		5: mirror(r(base)), 6: r(base), 7: r(mirror(base)), 8: r(r(r(base))),
	}
	for o := uint16(1); o <= 8; o++ {
		b := insertPNGChunk(plain, "eXIf", exifTIFF(o))
		off := decodeOK(t, b)
		if !bytes.Equal(off.Pix, base.Pix) {
			t.Errorf("orientation %d applied without ApplyEXIF", o)
		}
		got, err := Decode(b, DecodeOptions{ApplyEXIF: true})
		if err != nil {
			t.Fatal(err)
		}
		if got.W != want[o].W || got.H != want[o].H || !bytes.Equal(got.Pix, want[o].Pix) {
			t.Errorf("orientation %d: wrong result", o)
		}
	}
	// The JPEG (APP1) and WebP (EXIF chunk) carriers.
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, m, nil); err != nil {
		t.Fatal(err)
	}
	app1 := append([]byte("Exif\x00\x00"), exifTIFF(6)...)
	seg := append([]byte{0xff, 0xe1}, binary.BigEndian.AppendUint16(nil, uint16(2+len(app1)))...)
	jpg := append(append(append([]byte{}, jb.Bytes()[:2]...), append(seg, app1...)...), jb.Bytes()[2:]...)
	wb := readTestdata(t, "video-001.lossy.webp")
	wimg := decodeOK(t, wb)
	for name, b := range map[string][]byte{"jpeg": jpg, "webp": webpWithEXIF(t, wb, wimg.W, wimg.H, exifTIFF(6))} {
		plain := decodeOK(t, b)
		got, err := Decode(b, DecodeOptions{ApplyEXIF: true})
		if err != nil {
			t.Fatal(err)
		}
		if w := rotateCW(plain); got.W != w.W || !bytes.Equal(got.Pix, w.Pix) {
			t.Errorf("%s: EXIF orientation 6 not applied", name)
		}
	}
}

// pngHeader is a PNG signature and IHDR declaring w x h 8-bit RGB, with no
// image data.
func pngHeader(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	chunk := append([]byte("IHDR"), ihdr...)
	b := append([]byte("\x89PNG\r\n\x1a\n"), binary.BigEndian.AppendUint32(nil, 13)...)
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

func TestBadInput(t *testing.T) {
	good := readTestdata(t, "video-001.q50.420.jpeg")
	goodPNG, err := os.ReadFile(filepath.Join(fixtureDir, "images", "tiny_32x24.png"))
	if err != nil {
		t.Fatal(err)
	}
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, image.NewPaletted(image.Rect(0, 0, 0, 0), color.Palette{color.Black}), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a JPEG, PNG, GIF or WebP"},
		{"text", []byte("hello, world"), "not a JPEG, PNG, GIF or WebP"},
		{"truncated jpeg", good[:len(good)/2], "decoding JPEG"},
		{"jpeg header only", good[:20], "JPEG header"},
		{"truncated png", goodPNG[:len(goodPNG)/2], "decoding PNG"},
		{"huge png", pngHeader(40000, 40000), "40000x40000"},
		{"too many pixels", pngHeader(20000, 20000), "20000x20000"},
		{"zero-size gif", gifBuf.Bytes(), "0x0"},
		{"riff not webp", []byte("RIFF\x04\x00\x00\x00WAVE"), "not a JPEG, PNG, GIF or WebP"},
		{"truncated webp", readTestdata(t, "video-001.lossy.webp")[:40], "WebP"},
	}
	for _, c := range cases {
		_, err := Decode(c.b, DecodeOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "preprocess: ") {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// DecodeFile names the file.
	path := filepath.Join(t.TempDir(), "broken.png")
	if err := os.WriteFile(path, goodPNG[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFile(path, DecodeOptions{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("DecodeFile error %v does not name %s", err, path)
	}
	if _, err := DecodeFile(filepath.Join(t.TempDir(), "missing.png"), DecodeOptions{}); err == nil {
		t.Error("missing file decoded")
	}
	// MaxPixels lowers the limit.
	if _, err := Decode(goodPNG, DecodeOptions{MaxPixels: 32*24 - 1}); err == nil || !strings.Contains(err.Error(), "32x24") {
		t.Errorf("MaxPixels not enforced: %v", err)
	}
}
