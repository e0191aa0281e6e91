package preprocess

import (
	"bytes"
	"encoding/binary"
)

// exifOrientation returns the EXIF Orientation tag (1-8) of a JPEG (first
// APP1 "Exif" segment, as Pillow keeps), PNG (eXIf chunk) or WebP (EXIF
// chunk), or 1 when there is none or it cannot be read. A damaged EXIF block
// is ignored rather than refused: orientation is an optional extra.
func exifOrientation(f format, b []byte) int {
	var tiff []byte
	switch f {
	case formatJPEG:
		tiff = jpegEXIF(b)
	case formatPNG:
		tiff = pngChunk(b, "eXIf")
	case formatWebP:
		tiff = riffChunk(b, "EXIF")
	}
	tiff = bytes.TrimPrefix(tiff, []byte("Exif\x00\x00"))
	return tiffOrientation(tiff)
}

func jpegEXIF(b []byte) []byte {
	pos := 2 // after SOI
	for pos+4 <= len(b) && b[pos] == 0xff {
		marker := b[pos+1]
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image
			return nil
		}
		n := int(binary.BigEndian.Uint16(b[pos+2:]))
		if n < 2 || pos+2+n > len(b) {
			return nil
		}
		seg := b[pos+4 : pos+2+n]
		if marker == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return seg
		}
		pos += 2 + n
	}
	return nil
}

func pngChunk(b []byte, typ string) []byte {
	pos := 8
	for pos+12 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[pos:]))
		if n < 0 || n > len(b)-pos-12 {
			return nil
		}
		if string(b[pos+4:pos+8]) == typ {
			return b[pos+8 : pos+8+n]
		}
		if string(b[pos+4:pos+8]) == "IDAT" {
			return nil // Pillow reads metadata up to the image data
		}
		pos += 12 + n
	}
	return nil
}

func riffChunk(b []byte, fourcc string) []byte {
	pos := 12
	for pos+8 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[pos+4:]))
		if n < 0 || n > len(b)-pos-8 {
			return nil
		}
		if string(b[pos:pos+4]) == fourcc {
			return b[pos+8 : pos+8+n]
		}
		pos += 8 + n + n&1
	}
	return nil
}

// tiffOrientation reads tag 0x0112 (a SHORT) from IFD0 of a TIFF block.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 1
	}
	n := int64(bo.Uint16(t[ifd:]))
	for i := range n {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 && bo.Uint32(t[e+4:]) == 1 {
			if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// orient applies an EXIF orientation as Pillow's exif_transpose does:
// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
// 7 transverse, 8 rotate 90 counter-clockwise.
func orient(img *Image, o int) *Image {
	if o <= 1 || o > 8 {
		return img
	}
	w, h := img.W, img.H
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	out := &Image{W: ow, H: oh, Pix: make([]uint8, len(img.Pix))}
	for y := range oh {
		for x := range ow {
			var sx, sy int // source pixel of output (x, y)
			switch o {
			case 2:
				sx, sy = w-1-x, y
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sx, sy = x, h-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8:
				sx, sy = w-1-y, x
			}
			copy(out.Pix[3*(y*ow+x):3*(y*ow+x)+3], img.Pix[3*(sy*w+sx):])
		}
	}
	return out
}
