package jpeg

import (
	"errors"
	"fmt"
)

// ColorSpace is the colour space of the decoded samples: what libjpeg's
// default out_color_space is for the file.
type ColorSpace int

const (
	Gray ColorSpace = iota + 1 // 1 channel
	RGB                        // 3 channels, from YCbCr or stored as RGB
	CMYK                       // 4 channels as stored (Adobe files store them inverted), from CMYK or YCCK
)

func (c ColorSpace) String() string {
	switch c {
	case Gray:
		return "grayscale"
	case RGB:
		return "RGB"
	case CMYK:
		return "CMYK"
	}
	return fmt.Sprintf("ColorSpace(%d)", int(c))
}

// Channels is the number of samples per pixel.
func (c ColorSpace) Channels() int {
	return map[ColorSpace]int{Gray: 1, RGB: 3, CMYK: 4}[c]
}

// Image holds decoded samples, row-major and interleaved: channel c of pixel
// (x, y) is Pix[(y*Width+x)*Channels+c].
type Image struct {
	Width, Height int
	ColorSpace    ColorSpace
	Pix           []uint8
}

// Config is what the header says about an image.
type Config struct {
	Width, Height int
	Components    int
	ColorSpace    ColorSpace
	Progressive   bool
}

// Options tunes Decode.
type Options struct {
	// MaxPixels refuses, before anything is allocated for them, images with
	// more pixels; 0 means no limit beyond the format's 65500 a side.
	MaxPixels int
}

// ErrTruncated is wrapped by the error for data that ends too early.
var ErrTruncated = errors.New("image file is truncated")

// ErrUnsupported is wrapped by the error for a legal JPEG this package does
// not decode (arithmetic coding, lossless, 12-bit, ...).
var ErrUnsupported = errors.New("unsupported JPEG")

// FormatError reports invalid or corrupt data and where it was found.
type FormatError struct {
	Offset int // byte offset in the file
	Msg    string
	Err    error // ErrTruncated, ErrUnsupported or nil
}

func (e *FormatError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("jpeg: byte %d: %v: %s", e.Offset, e.Err, e.Msg)
	}
	return fmt.Sprintf("jpeg: byte %d: %s", e.Offset, e.Msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

// maxDimension is libjpeg's JPEG_MAX_DIMENSION.
const maxDimension = 65500

// maxBlocksInMCU is libjpeg's D_MAX_BLOCKS_IN_MCU: interleaved scans whose
// MCU holds more blocks are refused.
const maxBlocksInMCU = 10

type component struct {
	id     uint8
	h, v   int // sampling factors
	tq     int // quantisation table selector
	q      *[64]int32
	bw, bh int // blocks across and down, padded to whole MCUs
	cw, ch int // real samples across and down (libjpeg's downsampled size)
	plane  []uint8
	coefs  []int16   // progressive only: bw*bh blocks of 64, natural order
	bits   [64]int32 // progressive: successive-approximation state, -1 = never sent
	scans  int
}

type decoder struct {
	data []byte
	opt  Options

	qt      [4]*[64]int32
	dc, ac  [4]*huffSpec
	restart int

	sawSOF, progressive bool
	jfif, adobe         bool
	adobeTransform      uint8
	width, height       int
	comps               []component
	hmax, vmax          int
	mcusX, mcusY        int
	colorSpace          ColorSpace
	ycck                bool
	rgbStored           bool
	scanCount           int
	dcPred              [4]int32
	eobrun              int32
	br                  bitReader
	allocated           bool
}

func (d *decoder) errorf(off int, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) unsupported(off int, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}

func (d *decoder) truncated(off int, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: ErrTruncated}
}

// DecodeConfig reads the header up to the frame and returns what it says.
func DecodeConfig(b []byte) (Config, error) {
	d := &decoder{data: b}
	if err := d.run(true); err != nil {
		return Config{}, err
	}
	return Config{Width: d.width, Height: d.height, Components: len(d.comps),
		ColorSpace: d.colorSpace, Progressive: d.progressive}, nil
}

// Decode decodes a whole JPEG file held in b.
func Decode(b []byte, opt Options) (*Image, error) {
	d := &decoder{data: b, opt: opt}
	if err := d.run(false); err != nil {
		return nil, err
	}
	return d.output(), nil
}

// nextMarker finds the marker at or after p as libjpeg's next_marker does
// (stray bytes and fill 0xFFs skipped) and returns its code and the offset
// just past it; ok is false at the end of the data.
func nextMarker(b []byte, p int) (code uint8, start, next int, ok bool) {
	for {
		for p < len(b) && b[p] != 0xff {
			p++
		}
		start = p
		for p < len(b) && b[p] == 0xff {
			p++
		}
		if p >= len(b) {
			return 0, start, p, false
		}
		if b[p] != 0 {
			return b[p], p - 1, p + 1, true
		}
		p++
	}
}

// run parses the file; with headerOnly it stops at the frame header.
func (d *decoder) run(headerOnly bool) error {
	b := d.data
	if len(b) < 2 || b[0] != 0xff || b[1] != 0xd8 {
		return d.errorf(0, "not a JPEG file (no SOI marker)")
	}
	p := 2
	for {
		code, start, next, ok := nextMarker(b, p)
		if !ok {
			if d.scanCount > 0 {
				return d.truncated(len(b), "the data ends before the EOI marker")
			}
			return d.truncated(len(b), "the data ends before the first scan")
		}
		p = next
		switch {
		case code == 0xd9: // EOI
			if d.scanCount == 0 {
				return d.errorf(start, "EOI marker before any scan")
			}
			return d.finish(start)
		case code >= 0xd0 && code <= 0xd7:
			return d.errorf(start, "restart marker RST%d outside a scan", code-0xd0)
		case code == 0xd8:
			return d.errorf(start, "second SOI marker")
		case code == 0x01: // TEM: no parameters
			continue
		}
		if p+2 > len(b) {
			return d.truncated(p, "marker 0x%02X has no length", code)
		}
		n := int(b[p])<<8 | int(b[p+1])
		if n < 2 {
			return d.errorf(p, "marker 0x%02X has length %d", code, n)
		}
		if p+n > len(b) {
			return d.truncated(p, "marker 0x%02X segment of %d bytes runs past the end", code, n)
		}
		seg := b[p+2 : p+n]
		segOff := p + 2
		p += n
		var err error
		switch {
		case code == 0xc0 || code == 0xc1 || code == 0xc2:
			err = d.sof(seg, segOff, code == 0xc2)
		case code == 0xc3:
			err = d.unsupported(start, "lossless JPEG (SOF3)")
		case code == 0xc5 || code == 0xc6 || code == 0xc7:
			err = d.unsupported(start, "hierarchical JPEG (SOF%d)", code-0xc0)
		case code >= 0xc9 && code <= 0xcf && code != 0xcc:
			err = d.unsupported(start, "arithmetic-coded JPEG (SOF%d)", code-0xc0)
		case code == 0xc8:
			err = d.unsupported(start, "JPEG extension frame (JPG marker)")
		case code == 0xcc:
			err = d.unsupported(start, "arithmetic coding conditioning (DAC)")
		case code == 0xc4:
			err = d.dht(seg, segOff)
		case code == 0xdb:
			err = d.dqt(seg, segOff)
		case code == 0xdd:
			err = d.dri(seg, segOff)
		case code == 0xdc:
			err = d.unsupported(start, "DNL marker (image height defined after the first scan)")
		case code == 0xda:
			if !d.sawSOF {
				return d.errorf(start, "SOS marker before SOF")
			}
			if d.scanCount == 0 {
				// libjpeg settles the colour space when it reaches the
				// first scan, so markers between SOF and SOS count.
				d.colorSpace = d.guessColorSpace()
				if headerOnly {
					return nil
				}
			}
			p, err = d.sos(seg, segOff, p)
		case code == 0xe0:
			// libjpeg's examine_app0: JFIF needs 14 bytes.
			if len(seg) >= 14 && string(seg[:5]) == "JFIF\x00" {
				d.jfif = true
			}
		case code == 0xee:
			// examine_app14: Adobe needs 12 bytes; the transform is the last.
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				d.adobe, d.adobeTransform = true, seg[11]
			}
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) dqt(seg []byte, off int) error {
	for i := 0; i < len(seg); {
		pq, tq := seg[i]>>4, seg[i]&15
		if tq > 3 {
			return d.errorf(off+i, "quantization table %d (at most 3)", tq)
		}
		if pq > 1 {
			return d.errorf(off+i, "quantization table precision %d (0 or 1)", pq)
		}
		size := 64 << pq
		if i+1+size > len(seg) {
			return d.errorf(off+i, "quantization table %d runs past its segment", tq)
		}
		t := new([64]int32)
		for k := range 64 {
			v := int32(seg[i+1+k])
			if pq == 1 {
				v = int32(seg[i+1+2*k])<<8 | int32(seg[i+2+2*k])
			}
			t[zigzag[k]] = v
		}
		d.qt[tq] = t
		i += 1 + size
	}
	return nil
}

func (d *decoder) dht(seg []byte, off int) error {
	for i := 0; i < len(seg); {
		if i+17 > len(seg) {
			return d.errorf(off+i, "Huffman table header runs past its segment")
		}
		tc, th := seg[i]>>4, seg[i]&15
		if tc > 1 || th > 3 {
			return d.errorf(off+i, "Huffman table class %d, slot %d (class 0 or 1, slot at most 3)", tc, th)
		}
		s := new(huffSpec)
		n := 0
		for l := range 16 {
			s.counts[l] = seg[i+1+l]
			n += int(s.counts[l])
		}
		if n > 256 {
			return d.errorf(off+i, "Huffman table has %d codes (at most 256)", n)
		}
		if i+17+n > len(seg) {
			return d.errorf(off+i, "Huffman table runs past its segment")
		}
		s.vals = append([]uint8(nil), seg[i+17:i+17+n]...)
		if tc == 0 {
			d.dc[th] = s
		} else {
			d.ac[th] = s
		}
		i += 17 + n
	}
	return nil
}

func (d *decoder) dri(seg []byte, off int) error {
	if len(seg) != 2 {
		return d.errorf(off, "DRI segment of %d bytes (2 expected)", len(seg))
	}
	d.restart = int(seg[0])<<8 | int(seg[1])
	return nil
}

func (d *decoder) sof(seg []byte, off int, progressive bool) error {
	if d.sawSOF {
		return d.errorf(off, "second SOF marker")
	}
	if len(seg) < 6 {
		return d.errorf(off, "SOF segment of %d bytes", len(seg))
	}
	if seg[0] != 8 {
		return d.unsupported(off, "%d-bit samples (only 8-bit)", seg[0])
	}
	d.height = int(seg[1])<<8 | int(seg[2])
	d.width = int(seg[3])<<8 | int(seg[4])
	nc := int(seg[5])
	if d.height == 0 {
		return d.unsupported(off, "image height 0 (defined later by a DNL marker)")
	}
	if d.width == 0 {
		return d.errorf(off, "image width 0")
	}
	if d.width > maxDimension || d.height > maxDimension {
		return d.errorf(off, "image is %dx%d; libjpeg's limit is %d a side", d.width, d.height, maxDimension)
	}
	if nc != 1 && nc != 3 && nc != 4 {
		return d.unsupported(off, "%d components (1, 3 or 4, as Pillow opens)", nc)
	}
	if len(seg) != 6+3*nc {
		return d.errorf(off, "SOF segment of %d bytes for %d components", len(seg), nc)
	}
	d.sawSOF, d.progressive = true, progressive
	d.comps = make([]component, nc)
	d.hmax, d.vmax = 1, 1
	for i := range d.comps {
		c := &d.comps[i]
		s := seg[6+3*i:]
		c.id, c.h, c.v, c.tq = s[0], int(s[1]>>4), int(s[1]&15), int(s[2])
		for j := range i {
			if d.comps[j].id == c.id {
				return d.errorf(off+6+3*i, "component id %d appears twice", c.id)
			}
		}
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return d.errorf(off+6+3*i, "component %d has sampling factors %dx%d (1 to 4 each)", c.id, c.h, c.v)
		}
		if c.tq > 3 {
			return d.errorf(off+6+3*i, "component %d uses quantization table %d (at most 3)", c.id, c.tq)
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
		for k := range c.bits {
			c.bits[k] = -1
		}
	}
	for i := range d.comps {
		c := &d.comps[i]
		if d.hmax%c.h != 0 || d.vmax%c.v != 0 {
			return d.unsupported(off, "fractional sampling: component %d is %dx%d of %dx%d", c.id, c.h, c.v, d.hmax, d.vmax)
		}
	}
	d.mcusX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcusY = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	for i := range d.comps {
		c := &d.comps[i]
		c.bw, c.bh = d.mcusX*c.h, d.mcusY*c.v
		c.cw = (d.width*c.h + d.hmax - 1) / d.hmax
		c.ch = (d.height*c.v + d.vmax - 1) / d.vmax
	}
	return nil
}

// guessColorSpace is libjpeg's default_decompress_parms.
func (d *decoder) guessColorSpace() ColorSpace {
	switch len(d.comps) {
	case 1:
		return Gray
	case 3:
		switch {
		case d.jfif:
		case d.adobe:
			d.rgbStored = d.adobeTransform == 0
		default:
			id := [3]uint8{d.comps[0].id, d.comps[1].id, d.comps[2].id}
			d.rgbStored = id == [3]uint8{'R', 'G', 'B'}
		}
		return RGB
	}
	d.ycck = d.adobe && d.adobeTransform != 0
	return CMYK
}

// allocate makes the sample planes (and, for a progressive file, the
// coefficient arrays) once the first scan starts, after the pixel limit.
func (d *decoder) allocate(off int) error {
	if d.allocated {
		return nil
	}
	if d.opt.MaxPixels > 0 && int64(d.width)*int64(d.height) > int64(d.opt.MaxPixels) {
		return d.errorf(off, "image is %dx%d, more than the %d pixels allowed", d.width, d.height, d.opt.MaxPixels)
	}
	for i := range d.comps {
		c := &d.comps[i]
		c.plane = make([]uint8, c.bw*8*c.bh*8)
		if d.progressive {
			c.coefs = make([]int16, c.bw*c.bh*64)
		}
	}
	d.allocated = true
	return nil
}

// zigzag maps the k-th coefficient of a scan to its natural position.
var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}
