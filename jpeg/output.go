package jpeg

// The output stage: each component upsampled to the image size as
// libjpeg-turbo's jdsample.c does with do_fancy_upsampling on (its default,
// which Pillow keeps), then converted by jdcolor.c's tables.

// libjpeg's YCbCr->RGB tables (jdcolor.c build_ycc_rgb_table): ITU-R 601
// full range in 16-bit fixed point, each chroma term rounded by ONE_HALF.
var yccTables = func() (t struct {
	crR, cbB [256]int32 // already descaled
	crG, cbG [256]int32 // scaled by 1<<16; cbG carries ONE_HALF
}) {
	const scaleBits = 16
	const oneHalf = 1 << (scaleBits - 1)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	for i := range 256 {
		x := int32(i - 128)
		t.crR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		t.cbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		t.crG[i] = -fix(0.71414) * x
		t.cbG[i] = -fix(0.34414)*x + oneHalf
	}
	return t
}()

// clampTab[v+clampOff] is v limited to 0..255 for every v the colour
// conversions produce (libjpeg's sample_range_limit).
const clampOff = 384

var clampTab = func() (t [1024]uint8) {
	for i := range t {
		t[i] = clamp8(int32(i - clampOff))
	}
	return t
}()

type upsampleMethod int

const (
	fullSize  upsampleMethod = iota
	h2v1Fancy                // h2v1_fancy_upsample
	h1v2Fancy                // h1v2_fancy_upsample
	h2v2Fancy                // h2v2_fancy_upsample
	replicate                // int_upsample, h2v1_upsample, h2v2_upsample
)

// upsampler produces one component's rows at the image width.
type upsampler struct {
	c      *component
	method upsampleMethod
	hf, vf int
	wide   []uint8 // hf*cw samples
	sums   []int32 // h2v2: column sums
}

// methodFor is jinit_upsampler's choice: fancy filters for the 2:1 cases
// (the horizontal ones only when the component is wider than 2 samples),
// replication for other integral factors.
func methodFor(hf, vf, cw int) upsampleMethod {
	switch {
	case hf == 1 && vf == 1:
		return fullSize
	case hf == 2 && vf == 1 && cw > 2:
		return h2v1Fancy
	case hf == 1 && vf == 2:
		return h1v2Fancy
	case hf == 2 && vf == 2 && cw > 2:
		return h2v2Fancy
	}
	return replicate
}

func (d *decoder) newUpsampler(c *component) *upsampler {
	u := &upsampler{c: c, hf: d.hmax / c.h, vf: d.vmax / c.v}
	u.method = methodFor(u.hf, u.vf, c.cw)
	u.wide = make([]uint8, u.hf*c.cw+8)
	u.sums = make([]int32, c.cw)
	return u
}

// planeRow returns sample row cy of the component, clamped to its real rows
// as jdmainct.c's context pointers repeat the first and last.
func (u *upsampler) planeRow(cy int) []uint8 {
	c := u.c
	cy = min(max(cy, 0), c.ch-1)
	stride := c.bw * 8
	return c.plane[cy*stride : cy*stride+c.cw]
}

// row returns output row y (at least width samples).
func (u *upsampler) row(y int) []uint8 {
	switch u.method {
	case fullSize:
		return u.planeRow(y)
	case h2v1Fancy:
		in := u.planeRow(y)
		out := u.wide
		n := len(in)
		out[0], out[1] = in[0], uint8((3*int32(in[0])+int32(in[1])+2)>>2)
		for i := 1; i < n-1; i++ {
			v := 3 * int32(in[i])
			out[2*i] = uint8((v + int32(in[i-1]) + 1) >> 2)
			out[2*i+1] = uint8((v + int32(in[i+1]) + 2) >> 2)
		}
		out[2*n-2], out[2*n-1] = uint8((3*int32(in[n-1])+int32(in[n-2])+1)>>2), in[n-1]
		return out
	case h1v2Fancy:
		near, far, bias := u.planeRow(y/2), u.planeRow(y/2-1), int32(1)
		if y%2 == 1 {
			far, bias = u.planeRow(y/2+1), 2
		}
		out := u.wide[:len(near)]
		for i := range out {
			out[i] = uint8((3*int32(near[i]) + int32(far[i]) + bias) >> 2)
		}
		return out
	case h2v2Fancy:
		near, far := u.planeRow(y/2), u.planeRow(y/2-1)
		if y%2 == 1 {
			far = u.planeRow(y/2 + 1)
		}
		s := u.sums
		for i := range s {
			s[i] = 3*int32(near[i]) + int32(far[i])
		}
		out := u.wide
		n := len(s)
		out[0], out[1] = uint8((4*s[0]+8)>>4), uint8((3*s[0]+s[1]+7)>>4)
		for i := 1; i < n-1; i++ {
			v := 3 * s[i]
			out[2*i] = uint8((v + s[i-1] + 8) >> 4)
			out[2*i+1] = uint8((v + s[i+1] + 7) >> 4)
		}
		out[2*n-2], out[2*n-1] = uint8((3*s[n-1]+s[n-2]+8)>>4), uint8((4*s[n-1]+7)>>4)
		return out
	}
	in := u.planeRow(y / u.vf)
	out := u.wide
	for i, v := range in {
		for j := range u.hf {
			out[i*u.hf+j] = v
		}
	}
	return out
}

// output upsamples and converts the planes into the image libjpeg returns.
func (d *decoder) output() *Image {
	w, h := d.width, d.height
	nc := d.colorSpace.Channels()
	img := &Image{Width: w, Height: h, ColorSpace: d.colorSpace, Pix: make([]uint8, w*h*nc)}
	ups := make([]*upsampler, len(d.comps))
	for i := range d.comps {
		ups[i] = d.newUpsampler(&d.comps[i])
	}
	t := &yccTables
	for y := range h {
		o := img.Pix[y*w*nc : (y+1)*w*nc]
		switch {
		case nc == 1:
			copy(o, ups[0].row(y)[:w])
		case nc == 3 && d.rgbStored:
			r, g, b := ups[0].row(y)[:w], ups[1].row(y)[:w], ups[2].row(y)[:w]
			for x := range w {
				o[3*x], o[3*x+1], o[3*x+2] = r[x], g[x], b[x]
			}
		case nc == 3:
			yy, cb, cr := ups[0].row(y)[:w], ups[1].row(y)[:w], ups[2].row(y)[:w]
			cb, cr = cb[:len(yy)], cr[:len(yy)]
			for x, Y := range yy {
				Y, b, r := int32(Y)+clampOff, cb[x], cr[x]
				p := o[3*x : 3*x+3 : 3*x+3]
				p[0] = clampTab[(Y+t.crR[r])&1023]
				p[1] = clampTab[(Y+(t.cbG[b]+t.crG[r])>>16)&1023]
				p[2] = clampTab[(Y+t.cbB[b])&1023]
			}
		case d.ycck: // ycck_cmyk_convert: YCbCr->RGB, inverted; K as stored
			yy, cb, cr, k := ups[0].row(y)[:w], ups[1].row(y)[:w], ups[2].row(y)[:w], ups[3].row(y)[:w]
			for x := range w {
				Y, b, r := int32(yy[x]), cb[x], cr[x]
				o[4*x] = clamp8(255 - (Y + t.crR[r]))
				o[4*x+1] = clamp8(255 - (Y + (t.cbG[b]+t.crG[r])>>16))
				o[4*x+2] = clamp8(255 - (Y + t.cbB[b]))
				o[4*x+3] = k[x]
			}
		default:
			c, m, yl, k := ups[0].row(y)[:w], ups[1].row(y)[:w], ups[2].row(y)[:w], ups[3].row(y)[:w]
			for x := range w {
				o[4*x], o[4*x+1], o[4*x+2], o[4*x+3] = c[x], m[x], yl[x], k[x]
			}
		}
	}
	return img
}
