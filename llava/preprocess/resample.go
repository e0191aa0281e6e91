package preprocess

import "math"

// Pillow's BICUBIC resize, ported from libImaging/Resample.c (Pillow 9.4,
// python-pillow/Pillow src/libImaging/Resample.c): per output pixel a window
// of input pixels weighted by the a = -0.5 cubic, its support widened by the
// scale factor when shrinking; weights normalised in float64, then rounded to
// 22-bit fixed point (PRECISION_BITS = 32-8-2); a horizontal pass then a
// vertical pass, each rounding and clipping to uint8. Floating-point steps
// are written with explicit float64 conversions so no compiler may fuse a
// multiply-add and round differently from the C code.

const precisionBits = 32 - 8 - 2

func bicubicFilter(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 { // ((a+2)*x - (a+3))*x*x + 1
		t := float64((a + 2) * x)
		t = float64(float64(t-(a+3)) * x)
		return float64(t*x) + 1
	}
	if x < 2 { // (((x-5)*x + 8)*x - 4)*a
		t := float64((x - 5) * x)
		t = float64((t + 8) * x)
		return float64((t - 4) * a)
	}
	return 0
}

// coeffs are one pass's weights for a run of output pixels.
type coeffs struct {
	lo, n []int   // input window [lo, lo+n) of each output pixel
	k     []int32 // fixed-point weights, ksize per output pixel
	ksize int
}

// precomputeCoeffs is Pillow's precompute_coeffs followed by
// normalize_coeffs_8bpc, for output pixels [first, first+count) of a resize
// from inSize to outSize (box = the whole input). Computing a subset gives the
// same weights as computing all of them, which lets the resize produce only
// the centre crop.
func precomputeCoeffs(inSize, outSize, first, count int) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := 2 * filterscale // BICUBIC's support is 2
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{lo: make([]int, count), n: make([]int, count), k: make([]int32, count*ksize), ksize: ksize}
	w := make([]float64, ksize)
	for i := range count {
		center := float64((float64(first+i) + 0.5) * scale)
		ss := 1 / filterscale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		ww := 0.0
		for x := range xmax {
			w[x] = bicubicFilter(float64((float64(x+xmin) - center + 0.5) * ss))
			ww += w[x]
		}
		k := c.k[i*ksize : i*ksize+xmax]
		for x := range k {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + float64(v*(1<<precisionBits)))
			} else {
				k[x] = int32(0.5 + float64(v*(1<<precisionBits)))
			}
		}
		c.lo[i], c.n[i] = xmin, xmax
	}
	return c
}

// clip8 is Pillow's clip8: drop the fraction, clamp to [0, 255].
func clip8(ss int32) uint8 {
	v := ss >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

const roundHalf = 1 << (precisionBits - 1)

// canvas is the image being resized: the decoded image, in pad mode pasted on
// a square of fill colour that is never materialised (a 32768x3000 image
// would make a 3 GB square).
type canvas struct {
	img        *Image
	w, h       int // canvas size
	offX, offY int // where img sits on it
	fill       [3]uint8
}

// rowInImage reports whether canvas row y crosses the image.
func (c *canvas) rowInImage(y int) bool { return y >= c.offY && y < c.offY+c.img.H }

// pixel returns canvas pixel (x, y).
func (c *canvas) pixel(x, y int) []uint8 {
	ix, iy := x-c.offX, y-c.offY
	if ix < 0 || iy < 0 || ix >= c.img.W || iy >= c.img.H {
		return c.fill[:]
	}
	return c.img.Pix[3*(iy*c.img.W+ix) : 3*(iy*c.img.W+ix)+3]
}

// resizeWindow returns the (x0, y0, cw, ch) window of Pillow's
// resize((outW, outH), BICUBIC) of the canvas, without computing the rest.
func resizeWindow(c *canvas, outW, outH, x0, y0, cw, ch int) *Image {
	if outW == c.w && outH == c.h { // Pillow returns a copy: no filtering
		out := &Image{W: cw, H: ch, Pix: make([]uint8, 3*cw*ch)}
		for y := range ch {
			for x := range cw {
				copy(out.Pix[3*(y*cw+x):], c.pixel(x0+x, y0+y))
			}
		}
		return out
	}
	// Rows of the intermediate image the vertical pass reads.
	needV := outH != c.h
	var vert coeffs
	rowLo, rowHi := y0, y0+ch
	if needV {
		vert = precomputeCoeffs(c.h, outH, y0, ch)
		rowLo, rowHi = vert.lo[0], vert.lo[ch-1]+vert.n[ch-1]
	}
	tmp := horizontalPass(c, outW, x0, cw, rowLo, rowHi)
	if !needV {
		return tmp
	}
	out := &Image{W: cw, H: ch, Pix: make([]uint8, 3*cw*ch)}
	for yy := range ch {
		k := vert.k[yy*vert.ksize : yy*vert.ksize+vert.n[yy]]
		base := vert.lo[yy] - rowLo
		o := out.Pix[3*yy*cw : 3*(yy+1)*cw]
		for xx := range cw {
			s0, s1, s2 := int32(roundHalf), int32(roundHalf), int32(roundHalf)
			for y, kv := range k {
				p := tmp.Pix[3*((base+y)*cw+xx):]
				s0 += int32(p[0]) * kv
				s1 += int32(p[1]) * kv
				s2 += int32(p[2]) * kv
			}
			o[3*xx], o[3*xx+1], o[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
	return out
}

// horizontalPass computes columns [x0, x0+cw) of canvas rows [rowLo, rowHi)
// resized horizontally to outW (or copied, when the width is unchanged, as
// Pillow then skips the pass). Fill pixels contribute fill*weight whatever the
// row, so their weights are summed once; integer sums are exact, so the order
// does not change the result.
func horizontalPass(c *canvas, outW, x0, cw, rowLo, rowHi int) *Image {
	nrows := rowHi - rowLo
	tmp := &Image{W: cw, H: nrows, Pix: make([]uint8, 3*cw*nrows)}
	if outW == c.w {
		for y := range nrows {
			for x := range cw {
				copy(tmp.Pix[3*(y*cw+x):], c.pixel(x0+x, rowLo+y))
			}
		}
		return tmp
	}
	hor := precomputeCoeffs(c.w, outW, x0, cw)
	// Per output column: the taps that land on the image, and the summed
	// weight of those that land on fill (all of them, for rows off the image).
	imgLo, imgHi := make([]int, cw), make([]int, cw)
	fillK, allK := make([]int32, cw), make([]int32, cw)
	for xx := range cw {
		k := hor.k[xx*hor.ksize : xx*hor.ksize+hor.n[xx]]
		lo := min(max(c.offX-hor.lo[xx], 0), len(k))
		hi := max(min(c.offX+c.img.W-hor.lo[xx], len(k)), lo)
		imgLo[xx], imgHi[xx] = lo, hi
		for t, kv := range k {
			allK[xx] += kv
			if t < lo || t >= hi {
				fillK[xx] += kv
			}
		}
	}
	var fillRow []uint8 // a row entirely off the image, computed once
	for y := range nrows {
		o := tmp.Pix[3*y*cw : 3*(y+1)*cw]
		cy := rowLo + y
		if !c.rowInImage(cy) {
			if fillRow == nil {
				fillRow = make([]uint8, 3*cw)
				for xx := range cw {
					for ch := range 3 {
						fillRow[3*xx+ch] = clip8(roundHalf + int32(c.fill[ch])*allK[xx])
					}
				}
			}
			copy(o, fillRow)
			continue
		}
		src := c.img.Pix[3*(cy-c.offY)*c.img.W : 3*(cy-c.offY+1)*c.img.W]
		for xx := range cw {
			fk := fillK[xx]
			s0 := roundHalf + int32(c.fill[0])*fk
			s1 := roundHalf + int32(c.fill[1])*fk
			s2 := roundHalf + int32(c.fill[2])*fk
			k := hor.k[xx*hor.ksize+imgLo[xx] : xx*hor.ksize+imgHi[xx]]
			var p []uint8
			if len(k) > 0 {
				p = src[3*(hor.lo[xx]+imgLo[xx]-c.offX):]
			}
			for t, kv := range k {
				s0 += int32(p[3*t]) * kv
				s1 += int32(p[3*t+1]) * kv
				s2 += int32(p[3*t+2]) * kv
			}
			o[3*xx], o[3*xx+1], o[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
	return tmp
}
