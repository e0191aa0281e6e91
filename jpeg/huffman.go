package jpeg

// lutBits is the code length resolved by one table look-up; longer codes
// (rare: they code rare symbols) take the canonical slow path.
const lutBits = 9

// huffTable is a decoding table built from a DHT segment as libjpeg's
// jpeg_make_d_derived_tbl builds it, with the same validity checks.
type huffTable struct {
	lut     [1 << lutBits]uint16 // (code length << 8) | symbol; 0 = longer code
	maxcode [18]int32            // largest code of each length, -1 if none
	valptr  [17]int32            // index into vals of length l's first code, minus that code
	vals    [256]uint8
}

// huffSpec is a DHT segment's content: counts[l-1] codes of length l and
// their symbols in code order.
type huffSpec struct {
	counts [16]uint8
	vals   []uint8
}

// build derives the decoding table. DC tables may only hold symbols 0..15
// (the size category of a DC difference), as libjpeg requires.
func (s *huffSpec) build(isDC bool) (*huffTable, string) {
	t := new(huffTable)
	n := 0
	for _, c := range s.counts {
		n += int(c)
	}
	if n > 256 || n != len(s.vals) {
		return nil, "Huffman table has more than 256 codes"
	}
	copy(t.vals[:], s.vals)
	if isDC {
		for _, v := range s.vals {
			if v > 15 {
				return nil, "DC Huffman table holds a symbol above 15"
			}
		}
	}
	code, k := int32(0), 0
	for l := 1; l <= 16; l++ {
		c := int32(s.counts[l-1])
		// libjpeg: the all-ones code of each length is reserved, so the
		// code after this length's last must still fit in l bits.
		if code+c >= 1<<l {
			return nil, "Huffman table's code lengths overflow"
		}
		t.valptr[l] = int32(k) - code
		t.maxcode[l] = -1
		if c > 0 {
			t.maxcode[l] = code + c - 1
		}
		for i := range c {
			if l <= lutBits {
				first := (code + i) << (lutBits - l)
				for j := range int32(1) << (lutBits - l) {
					t.lut[first+j] = uint16(l)<<8 | uint16(s.vals[k+int(i)])
				}
			}
		}
		code += c
		k += int(c)
		code <<= 1
	}
	t.maxcode[17] = 1 << 30 // sentinel: ends the slow search
	return t, ""
}

// Standard tables (ITU T.81 Annex K.3), which libjpeg installs in slots 0 and
// 1 of a sequential file that defines none (Motion-JPEG frames omit them).
var stdTables = [2][2]huffSpec{
	{ // DC
		{counts: [16]uint8{0, 1, 5, 1, 1, 1, 1, 1, 1}, vals: []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{counts: [16]uint8{0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, vals: []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	},
	{ // AC
		{counts: [16]uint8{0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d}, vals: []uint8{
			0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
			0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
			0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
			0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
			0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
			0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
			0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
			0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
			0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
			0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
			0xf9, 0xfa,
		}},
		{counts: [16]uint8{0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77}, vals: []uint8{
			0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
			0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
			0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
			0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
			0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
			0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
			0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
			0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
			0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
			0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
			0xf9, 0xfa,
		}},
	},
}

// bitReader reads an entropy-coded segment: bytes with 0xFF00 stuffing,
// stopping at the first marker. Past the marker (or the end of the data) it
// supplies zero bits, as libjpeg does, but counts them: consuming one is an
// error, so corrupt or truncated data is never decoded as if it were real.
type bitReader struct {
	data []byte
	pos  int    // next byte to read
	acc  uint64 // bits, most significant first
	n    uint   // bits in acc
	fake uint   // of those, zero bits supplied past the segment's end
	stop bool   // reached a marker or the end of the data
	bad  bool   // consumed a supplied bit: the segment ended too early
}

func (r *bitReader) reset(data []byte, pos int) {
	*r = bitReader{data: data, pos: pos}
}

// fill tops acc up to at least 57 bits.
func (r *bitReader) fill() {
	for r.n <= 56 {
		if r.stop {
			r.n += 8
			r.fake += 8
			continue
		}
		if r.pos >= len(r.data) {
			r.stop = true
			continue
		}
		b := r.data[r.pos]
		if b == 0xff {
			j := r.pos + 1
			for j < len(r.data) && r.data[j] == 0xff { // fill bytes
				j++
			}
			if j >= len(r.data) {
				r.pos, r.stop = j, true
				continue
			}
			if r.data[j] != 0 { // a marker: leave pos at its 0xFF
				r.pos = j - 1
				r.stop = true
				continue
			}
			r.pos = j + 1
		} else {
			r.pos++
		}
		r.acc |= uint64(b) << (56 - r.n)
		r.n += 8
	}
}

// consume drops k bits, which must be real.
func (r *bitReader) consume(k uint) {
	if k > r.n-r.fake {
		r.bad = true
		r.acc, r.n = 0, r.fake
		return
	}
	r.acc <<= k
	r.n -= k
}

// bits returns the next k (1..16) bits as an unsigned number.
func (r *bitReader) bits(k uint) int32 {
	if r.n < k {
		r.fill()
	}
	v := int32(r.acc >> (64 - k))
	r.consume(k)
	return v
}

func (r *bitReader) bit() bool {
	if r.n < 1 {
		r.fill()
	}
	v := r.acc>>63 != 0
	r.consume(1)
	return v
}

// receiveExtend reads a k-bit (0..15) magnitude and sign-extends it as
// HUFF_EXTEND does.
func (r *bitReader) receiveExtend(k int32) int32 {
	if k == 0 {
		return 0
	}
	v := r.bits(uint(k))
	if v < 1<<(k-1) {
		v += -1<<k + 1
	}
	return v
}

// decode reads one Huffman-coded symbol; ok is false for a bit pattern that
// is no code of the table.
func (r *bitReader) decode(t *huffTable) (sym int32, ok bool) {
	if r.n < 16 {
		r.fill()
	}
	if e := t.lut[r.acc>>(64-lutBits)]; e != 0 {
		r.consume(uint(e >> 8))
		return int32(e & 0xff), true
	}
	l := lutBits + 1
	code := int32(r.acc >> (64 - l))
	for code > t.maxcode[l] {
		l++
		if l > 16 {
			return 0, false
		}
		code = int32(r.acc >> (64 - l))
	}
	r.consume(uint(l))
	return int32(t.vals[(t.valptr[l]+code)&0xff]), true
}

// eobRun reads the length of an end-of-band run coded EOBr: 2^r plus r more
// bits.
func (r *bitReader) eobRun(n int) int32 {
	run := int32(1) << n
	if n > 0 {
		run += r.bits(uint(n))
	}
	return run
}
