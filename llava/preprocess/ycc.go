package preprocess

import (
	"fmt"
	"image"
)

// Go's image/jpeg and x/image/vp8 return the decoded planes at their stored
// resolution. Pillow's libraries upsample chroma and convert to RGB in ways
// Go's image/color does not reproduce (Go's JPEG path differs by up to ~100
// levels at colour edges), so both are redone here, each following the C
// library Pillow 9.4 links: libjpeg-turbo 2.1 for JPEG, libwebp 1.2 for WebP.

// subsampling returns the horizontal and vertical chroma expansion factors.
func subsampling(r image.YCbCrSubsampleRatio) (hs, vs int, err error) {
	switch r {
	case image.YCbCrSubsampleRatio444:
		return 1, 1, nil
	case image.YCbCrSubsampleRatio422:
		return 2, 1, nil
	case image.YCbCrSubsampleRatio420:
		return 2, 2, nil
	case image.YCbCrSubsampleRatio440:
		return 1, 2, nil
	case image.YCbCrSubsampleRatio411:
		return 4, 1, nil
	case image.YCbCrSubsampleRatio410:
		return 4, 2, nil
	}
	return 0, 0, fmt.Errorf("unsupported chroma subsampling %v", r)
}

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

// libjpeg's YCbCr->RGB tables (jdcolor.c build_ycc_rgb_table): ITU-R 601
// full range in 16-bit fixed point, each chroma term rounded by ONE_HALF.
type jpegYCCTables struct {
	crR, cbB [256]int32 // already descaled
	crG, cbG [256]int32 // scaled by 1<<16; cbG carries ONE_HALF
}

var jpegYCC = buildJPEGYCC()

func buildJPEGYCC() *jpegYCCTables {
	const scaleBits = 16
	const oneHalf = 1 << (scaleBits - 1)
	fix := func(x float64) int32 { return int32(float64(x*(1<<scaleBits)) + 0.5) }
	t := new(jpegYCCTables)
	for i := range 256 {
		x := int32(i - 128)
		t.crR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		t.cbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		t.crG[i] = -fix(0.71414) * x
		t.cbG[i] = -fix(0.34414)*x + oneHalf
	}
	return t
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

// jpegToRGB converts a decoded YCbCr JPEG the way libjpeg-turbo does with
// Pillow's defaults (do_fancy_upsampling on, JDCT_ISLOW, JCS_RGB output).
func jpegToRGB(m *image.YCbCr) (*Image, error) {
	hs, vs, err := subsampling(m.SubsampleRatio)
	if err != nil {
		return nil, err
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw, ch := (w+hs-1)/hs, (h+vs-1)/vs // libjpeg's downsampled_width/height
	if err := checkPlanes(m, cw, ch); err != nil {
		return nil, err
	}
	cb := jpegUpsample(m.Cb, m.CStride, cw, ch, hs, vs, w, h)
	cr := jpegUpsample(m.Cr, m.CStride, cw, ch, hs, vs, w, h)
	t := jpegYCC
	out := &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		o := out.Pix[3*y*w : 3*(y+1)*w]
		for x, yv := range yrow {
			cbv, crv, yy := cb[y*w+x], cr[y*w+x], int32(yv)
			o[3*x] = clampU8(yy + t.crR[crv])
			o[3*x+1] = clampU8(yy + (t.cbG[cbv]+t.crG[crv])>>16)
			o[3*x+2] = clampU8(yy + t.cbB[cbv])
		}
	}
	return out, nil
}

// jpegUpsample expands one chroma plane (cw x ch samples, row stride stride)
// to w x h as libjpeg-turbo's jdsample.c does: triangular "fancy" filters for
// h2v1, h1v2 and h2v2 (h2 ones only when the plane is wider than 2 samples),
// box replication otherwise. Rows above the first and below the last repeat
// them, as jdmainct.c's context-row pointers do.
func jpegUpsample(src []uint8, stride, cw, ch, hs, vs, w, h int) []uint8 {
	out := make([]uint8, w*h)
	row := func(cy int) []uint8 {
		cy = min(max(cy, 0), ch-1)
		return src[cy*stride : cy*stride+cw]
	}
	wide := make([]uint8, hs*cw) // one output row before trimming to w
	switch {
	case hs == 1 && vs == 1:
		for y := range h {
			copy(out[y*w:(y+1)*w], row(y))
		}
	case hs == 2 && vs == 1 && cw > 2:
		for y := range h {
			h2v1Fancy(wide, row(y))
			copy(out[y*w:(y+1)*w], wide)
		}
	case hs == 1 && vs == 2:
		for y := range h {
			near, far, bias := row(y/2), row(y/2-1), int32(1)
			if y%2 == 1 {
				far, bias = row(y/2+1), 2
			}
			o := out[y*w : (y+1)*w]
			for i := range o {
				o[i] = uint8((3*int32(near[i]) + int32(far[i]) + bias) >> 2)
			}
		}
	case hs == 2 && vs == 2 && cw > 2:
		sums := make([]int32, cw)
		for y := range h {
			near, far := row(y/2), row(y/2-1)
			if y%2 == 1 {
				far = row(y/2 + 1)
			}
			for i := range sums {
				sums[i] = 3*int32(near[i]) + int32(far[i])
			}
			h2v2Fancy(wide, sums)
			copy(out[y*w:(y+1)*w], wide)
		}
	default: // int_upsample, h2v1_upsample, h2v2_upsample: replication
		for y := range h {
			r := row(y / vs)
			o := out[y*w : (y+1)*w]
			for x := range o {
				o[x] = r[x/hs]
			}
		}
	}
	return out
}

// h2v1Fancy is jdsample.c's h2v1_fancy_upsample for one row (len(in) > 2):
// each output is 3/4 of the nearer input plus 1/4 of the further one, with
// rounding biases alternating 1 and 2; the end samples are copied.
func h2v1Fancy(out []uint8, in []uint8) {
	n := len(in)
	for i := range n {
		prev, next := int32(in[max(i-1, 0)]), int32(in[min(i+1, n-1)])
		v := 3 * int32(in[i])
		out[2*i] = uint8((v + prev + 1) >> 2)
		out[2*i+1] = uint8((v + next + 2) >> 2)
	}
}

// h2v2Fancy is the horizontal half of jdsample.c's h2v2_fancy_upsample, given
// the vertical column sums 3*nearer row + further row: weights 9/16, 3/16,
// 3/16, 1/16 with rounding biases alternating 8 and 7.
func h2v2Fancy(out []uint8, sums []int32) {
	n := len(sums)
	for i, s := range sums {
		prev, next := sums[max(i-1, 0)], sums[min(i+1, n-1)]
		out[2*i] = uint8((3*s + prev + 8) >> 4)
		out[2*i+1] = uint8((3*s + next + 7) >> 4)
	}
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
