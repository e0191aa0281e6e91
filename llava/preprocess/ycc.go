package preprocess

import (
	"fmt"
	"image"
)

// x/image/vp8 returns the decoded planes at their stored resolution.
// Pillow's libwebp upsamples chroma and converts to RGB in ways Go's
// image/color does not reproduce, so both are redone here as libwebp 1.2
// does. (JPEG's equivalents live in package jpeg.)

// checkPlanes verifies that m's planes hold every sample the converters read
// (the decoders guarantee it; this keeps a decoder bug from becoming a panic).
func checkPlanes(m *image.YCbCr, cw, ch int) error {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	if m.Rect.Min != (image.Point{}) || w <= 0 || h <= 0 ||
		m.YStride < w || len(m.Y) < (h-1)*m.YStride+w ||
		m.CStride < cw || len(m.Cb) < (ch-1)*m.CStride+cw || len(m.Cr) < (ch-1)*m.CStride+cw {
		return fmt.Errorf("decoder returned inconsistent YCbCr planes for %v", m.Rect)
	}
	return nil
}

func clampU8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// webpToRGB converts a lossy WebP's 4:2:0 planes as libwebp does with its
// default fancy upsampling (src/dec/io_dec.c EmitFancyRGB and
// src/dsp/upsampling.c): each output row takes its nearer chroma row and the
// one beyond it (rows past the edges repeat), interpolates them and the
// neighbouring columns with libwebp's packed-average arithmetic, and converts
// with the BT.601 limited-range fixed-point formulas of src/dsp/yuv.h. Alpha,
// if any, is dropped as Pillow's convert("RGB") drops it.
func webpToRGB(m *image.YCbCr) (*Image, error) {
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return nil, fmt.Errorf("unexpected WebP chroma subsampling %v", m.SubsampleRatio)
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	if err := checkPlanes(m, cw, ch); err != nil {
		return nil, err
	}
	crow := func(p []uint8, cy int) []uint8 {
		cy = min(max(cy, 0), ch-1)
		return p[cy*m.CStride : cy*m.CStride+cw]
	}
	out := &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	us, vs := make([]uint8, w), make([]uint8, w)
	for y := range h {
		// Output row 2k-1 is nearer chroma row k-1, row 2k nearer row k.
		far := y/2 - 1
		if y%2 == 1 {
			far = y/2 + 1
		}
		webpUpsampleRow(us, crow(m.Cb, y/2), crow(m.Cb, far))
		webpUpsampleRow(vs, crow(m.Cr, y/2), crow(m.Cr, far))
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		o := out.Pix[3*y*w : 3*(y+1)*w]
		for x, yv := range yrow {
			yy, u, v := int32(yv), int32(us[x]), int32(vs[x])
			o[3*x] = webpClip8(multHi(yy, 19077) + multHi(v, 26149) - 14234)
			o[3*x+1] = webpClip8(multHi(yy, 19077) - multHi(u, 6419) - multHi(v, 13320) + 8708)
			o[3*x+2] = webpClip8(multHi(yy, 19077) + multHi(u, 33050) - 17685)
		}
	}
	return out, nil
}

// webpUpsampleRow is one chroma channel of libwebp's UPSAMPLE_FUNC for one
// output row: near is the chroma row nearer to it, far the other. The packed
// two-channel arithmetic of the C code never carries between channels, so
// per channel it is exactly this.
func webpUpsampleRow(out, near, far []uint8) {
	w := len(out)
	out[0] = uint8((3*int32(near[0]) + int32(far[0]) + 2) >> 2)
	last := (w - 1) >> 1
	for x := 1; x <= last; x++ {
		n0, n1 := int32(near[x-1]), int32(near[x])
		f0, f1 := int32(far[x-1]), int32(far[x])
		avg := n0 + n1 + f0 + f1 + 8
		out[2*x-1] = uint8((((avg + 2*(n1+f0)) >> 3) + n0) >> 1)
		out[2*x] = uint8((((avg + 2*(n0+f1)) >> 3) + n1) >> 1)
	}
	if w%2 == 0 {
		out[w-1] = uint8((3*int32(near[last]) + int32(far[last]) + 2) >> 2)
	}
}

func multHi(v, coeff int32) int32 { return (v * coeff) >> 8 }

// webpClip8 is libwebp's VP8Clip8 (YUV_FIX2 = 6).
func webpClip8(v int32) uint8 {
	if v&^(256<<6-1) == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}
