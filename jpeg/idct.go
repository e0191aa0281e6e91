package jpeg

// The accurate integer inverse DCT of libjpeg (jidctint.c, jpeg_idct_islow:
// the Loeffler-Ligtenberg-Moschytz algorithm in 13-bit fixed point with two
// extra bits between the passes). libjpeg-turbo's SIMD versions of it are
// bit-exact with the C code, so this is what Pillow's pixels come from.
const (
	constBits = 13
	pass1Bits = 2

	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_541196100 = 4433
	fix0_765366865 = 6270
	fix0_899976223 = 7373
	fix1_175875602 = 9633
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_562915447 = 20995
	fix3_072711026 = 25172
)

// rangeLimit is libjpeg's post-IDCT range-limit table (jdmaster.c
// prepare_range_limit_table) indexed by the descaled value masked to 10 bits:
// values wrap modulo 1024 around the centre 128, then clamp to 0..255. For
// coefficients a real encoder writes the wrap never happens; for corrupt ones
// it is what libjpeg outputs.
var rangeLimit = func() (t [1024]uint8) {
	for i := range t {
		v := int32(i)
		if v >= 512 {
			v -= 1024
		}
		t[i] = clamp8(v + 128)
	}
	return t
}()

func clamp8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// idct dequantises the coefficients of one block (natural order) with
// quantisation table q and writes the 8x8 samples at out with row stride.
func idct(coef *[64]int16, q *[64]int32, out []uint8, stride int) {
	var ws [64]int32
	for c := range 8 {
		if coef[8+c] == 0 && coef[16+c] == 0 && coef[24+c] == 0 && coef[32+c] == 0 &&
			coef[40+c] == 0 && coef[48+c] == 0 && coef[56+c] == 0 {
			dc := int32(coef[c]) * q[c] << pass1Bits
			for r := range 8 {
				ws[8*r+c] = dc
			}
			continue
		}
		// Even part.
		z2 := int32(coef[16+c]) * q[16+c]
		z3 := int32(coef[48+c]) * q[48+c]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 + z3*-fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		z2 = int32(coef[c]) * q[c]
		z3 = int32(coef[32+c]) * q[32+c]
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		// Odd part.
		tmp0 = int32(coef[56+c]) * q[56+c]
		tmp1 = int32(coef[40+c]) * q[40+c]
		tmp2 = int32(coef[24+c]) * q[24+c]
		tmp3 = int32(coef[8+c]) * q[8+c]
		tmp0, tmp1, tmp2, tmp3 = oddPart(tmp0, tmp1, tmp2, tmp3)
		const sh = constBits - pass1Bits
		const rnd = 1 << (sh - 1)
		ws[c] = (tmp10 + tmp3 + rnd) >> sh
		ws[56+c] = (tmp10 - tmp3 + rnd) >> sh
		ws[8+c] = (tmp11 + tmp2 + rnd) >> sh
		ws[48+c] = (tmp11 - tmp2 + rnd) >> sh
		ws[16+c] = (tmp12 + tmp1 + rnd) >> sh
		ws[40+c] = (tmp12 - tmp1 + rnd) >> sh
		ws[24+c] = (tmp13 + tmp0 + rnd) >> sh
		ws[32+c] = (tmp13 - tmp0 + rnd) >> sh
	}
	for r := range 8 {
		w := ws[8*r : 8*r+8 : 8*r+8]
		o := out[r*stride : r*stride+8 : r*stride+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			const sh = pass1Bits + 3
			v := rangeLimit[((w[0]+1<<(sh-1))>>sh)&1023]
			o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = v, v, v, v, v, v, v, v
			continue
		}
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 + z3*-fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		tmp0 := (w[0] + w[4]) << constBits
		tmp1 := (w[0] - w[4]) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		tmp0, tmp1, tmp2, tmp3 = oddPart(w[7], w[5], w[3], w[1])
		const sh = constBits + pass1Bits + 3
		const rnd = 1 << (sh - 1)
		o[0] = rangeLimit[((tmp10+tmp3+rnd)>>sh)&1023]
		o[7] = rangeLimit[((tmp10-tmp3+rnd)>>sh)&1023]
		o[1] = rangeLimit[((tmp11+tmp2+rnd)>>sh)&1023]
		o[6] = rangeLimit[((tmp11-tmp2+rnd)>>sh)&1023]
		o[2] = rangeLimit[((tmp12+tmp1+rnd)>>sh)&1023]
		o[5] = rangeLimit[((tmp12-tmp1+rnd)>>sh)&1023]
		o[3] = rangeLimit[((tmp13+tmp0+rnd)>>sh)&1023]
		o[4] = rangeLimit[((tmp13-tmp0+rnd)>>sh)&1023]
	}
}

// oddPart is the odd half of both passes ("figure 8" in jidctint.c): inputs
// are the 7th, 5th, 3rd and 1st terms, outputs the four odd results.
func oddPart(tmp0, tmp1, tmp2, tmp3 int32) (int32, int32, int32, int32) {
	z1 := tmp0 + tmp3
	z2 := tmp1 + tmp2
	z3 := tmp0 + tmp2
	z4 := tmp1 + tmp3
	z5 := (z3 + z4) * fix1_175875602
	tmp0 *= fix0_298631336
	tmp1 *= fix2_053119869
	tmp2 *= fix3_072711026
	tmp3 *= fix1_501321110
	z1 *= -fix0_899976223
	z2 *= -fix2_562915447
	z3 = z3*-fix1_961570560 + z5
	z4 = z4*-fix0_390180644 + z5
	return tmp0 + z1 + z3, tmp1 + z2 + z4, tmp2 + z2 + z3, tmp3 + z1 + z4
}
