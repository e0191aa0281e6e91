package jpeg

// maxScans bounds the scans of a file. Encoders write at most a few dozen
// (libjpeg's default progression has 10); libjpeg itself sets no limit.
const maxScans = 256

// scan is one SOS: its components and, for progressive files, the band and
// successive-approximation bits it codes.
type scan struct {
	comps          []*component
	dcSlot, acSlot []int
	dc, ac         []*huffTable
	ss, se         int
	ah, al         int32
}

// sos parses a scan header, decodes the entropy-coded data after it (which
// starts at p) and returns the offset of the marker that ends it.
func (d *decoder) sos(seg []byte, off, p int) (int, error) {
	d.scanCount++
	if d.scanCount > maxScans {
		return 0, d.unsupported(off, "more than %d scans (a guard against files that make a decoder loop over the image without end)", maxScans)
	}
	if len(seg) < 1 {
		return 0, d.errorf(off, "empty SOS segment")
	}
	n := int(seg[0])
	if n < 1 || n > 4 || len(seg) != 4+2*n {
		return 0, d.errorf(off, "SOS segment of %d bytes for %d components", len(seg), n)
	}
	sc := &scan{}
	for i := range n {
		id, tables := seg[1+2*i], seg[2+2*i]
		var c *component
		for j := range d.comps {
			if d.comps[j].id == id {
				c = &d.comps[j]
			}
		}
		if c == nil {
			return 0, d.errorf(off+1+2*i, "scan %d names component %d, which the frame lacks", d.scanCount, id)
		}
		for _, o := range sc.comps {
			if o == c {
				return 0, d.errorf(off+1+2*i, "scan %d names component %d twice", d.scanCount, id)
			}
		}
		sc.comps = append(sc.comps, c)
		td, ta := int(tables>>4), int(tables&15)
		if td > 3 || ta > 3 {
			return 0, d.errorf(off+2+2*i, "scan %d: Huffman table selectors %d/%d (at most 3)", d.scanCount, td, ta)
		}
		sc.dcSlot = append(sc.dcSlot, td)
		sc.acSlot = append(sc.acSlot, ta)
	}
	sc.ss, sc.se = int(seg[1+2*n]), int(seg[2+2*n])
	sc.ah, sc.al = int32(seg[3+2*n]>>4), int32(seg[3+2*n]&15)
	if err := d.checkScan(sc, off); err != nil {
		return 0, err
	}
	if err := d.allocate(off); err != nil {
		return 0, err
	}
	if err := d.buildTables(sc, off); err != nil {
		return 0, err
	}
	for _, c := range sc.comps {
		// libjpeg latches a component's quantization table when its first
		// scan starts; a later DQT does not change it.
		if c.q == nil {
			if d.qt[c.tq] == nil {
				return 0, d.errorf(off, "component %d uses quantization table %d, which is not defined", c.id, c.tq)
			}
			c.q = d.qt[c.tq]
		}
		c.scans++
	}
	return d.decodeScan(sc, p)
}

// buildTables derives the Huffman tables the scan uses. Sequential files
// get libjpeg's standard tables in slots 0 and 1 when they define none.
func (d *decoder) buildTables(sc *scan, off int) error {
	dcFirst := !d.progressive || (sc.ss == 0 && sc.ah == 0)
	acBand := !d.progressive || sc.ss > 0
	sc.dc = make([]*huffTable, len(sc.comps))
	sc.ac = make([]*huffTable, len(sc.comps))
	for i := range sc.comps {
		for class, need := range [2]bool{dcFirst, acBand} {
			if !need {
				continue
			}
			slot, spec, kind, dst := sc.dcSlot[i], d.dc[sc.dcSlot[i]], "DC", &sc.dc[i]
			if class == 1 {
				slot, spec, kind, dst = sc.acSlot[i], d.ac[sc.acSlot[i]], "AC", &sc.ac[i]
			}
			if spec == nil && !d.progressive && slot < 2 {
				spec = &stdTables[class][slot]
			}
			if spec == nil {
				return d.errorf(off, "scan %d uses %s Huffman table %d, which is not defined", d.scanCount, kind, slot)
			}
			t, msg := spec.build(class == 0)
			if t == nil {
				return d.errorf(off, "scan %d, %s Huffman table %d: %s", d.scanCount, kind, slot, msg)
			}
			*dst = t
		}
	}
	return nil
}

// checkScan applies libjpeg's checks of scan parameters. Where libjpeg only
// warns (a sequential scan with a partial band, a progression that skips or
// repeats bits), this refuses: what libjpeg would do next is a guess.
func (d *decoder) checkScan(sc *scan, off int) error {
	if !d.progressive {
		if sc.ss != 0 || sc.se != 63 || sc.ah != 0 || sc.al != 0 {
			return d.errorf(off, "sequential scan %d codes band %d-%d, bits %d/%d (0-63, 0/0 expected)", d.scanCount, sc.ss, sc.se, sc.ah, sc.al)
		}
		for _, c := range sc.comps {
			if c.scans > 0 {
				return d.errorf(off, "sequential scan %d codes component %d a second time", d.scanCount, c.id)
			}
		}
	} else {
		bad := false
		if sc.ss == 0 {
			bad = sc.se != 0
		} else {
			bad = sc.ss > sc.se || sc.se > 63 || len(sc.comps) != 1
		}
		if sc.ah != 0 && sc.al != sc.ah-1 {
			bad = true
		}
		if bad || sc.al > 13 {
			return d.errorf(off, "invalid progressive scan %d: Ss=%d Se=%d Ah=%d Al=%d", d.scanCount, sc.ss, sc.se, sc.ah, sc.al)
		}
		for _, c := range sc.comps {
			if sc.ss > 0 && c.bits[0] < 0 {
				return d.errorf(off, "progressive scan %d codes AC coefficients of component %d before its DC", d.scanCount, c.id)
			}
			for k := sc.ss; k <= sc.se; k++ {
				// libjpeg accepts a first scan of a coefficient already
				// sent (it warns of nothing); refusing it bounds the
				// work a file can ask for to 14 passes per coefficient.
				if sc.ah == 0 && c.bits[k] >= 0 {
					return d.errorf(off, "progressive scan %d sends coefficient %d of component %d a second time", d.scanCount, k, c.id)
				}
				if want := max(c.bits[k], 0); sc.ah != want {
					return d.errorf(off, "progressive scan %d refines bit %d of coefficient %d of component %d, which is at bit %d", d.scanCount, sc.ah, k, c.id, c.bits[k])
				}
				c.bits[k] = sc.al
			}
		}
	}
	if len(sc.comps) > 1 {
		blocks := 0
		for _, c := range sc.comps {
			blocks += c.h * c.v
		}
		if blocks > maxBlocksInMCU {
			return d.errorf(off, "scan %d has %d blocks in an MCU (libjpeg allows %d)", d.scanCount, blocks, maxBlocksInMCU)
		}
	}
	return nil
}

// decodeScan decodes the MCUs of one scan from the entropy-coded data at p.
func (d *decoder) decodeScan(sc *scan, p int) (int, error) {
	br := &d.br
	br.reset(d.data, p)
	d.dcPred = [4]int32{}
	d.eobrun = 0
	var mcusX, mcusY int
	single := len(sc.comps) == 1
	if single {
		// A non-interleaved scan covers just the component's own blocks.
		c := sc.comps[0]
		mcusX, mcusY = (c.cw+7)/8, (c.ch+7)/8
	} else {
		mcusX, mcusY = d.mcusX, d.mcusY
	}
	var blk [64]int16
	restartsLeft, nextRST := d.restart, 0
	for my := range mcusY {
		for mx := range mcusX {
			if d.restart > 0 {
				if restartsLeft == 0 {
					if err := d.processRestart(sc, &nextRST); err != nil {
						return 0, err
					}
					restartsLeft = d.restart
				}
				restartsLeft--
			}
			for ci, c := range sc.comps {
				bx0, by0, nh, nv := mx, my, 1, 1
				if !single {
					bx0, by0, nh, nv = mx*c.h, my*c.v, c.h, c.v
				}
				for by := by0; by < by0+nv; by++ {
					for bx := bx0; bx < bx0+nh; bx++ {
						var ok bool
						if !d.progressive {
							blk = [64]int16{}
							ok = d.decodeBlock(&blk, sc, ci)
							if ok {
								idct(&blk, c.q, c.plane[by*8*c.bw*8+bx*8:], c.bw*8)
							}
						} else {
							coefs := (*[64]int16)(c.coefs[(by*c.bw+bx)*64:])
							ok = d.decodeProgressive(coefs, sc, ci)
						}
						if !ok || br.bad {
							return 0, d.entropyError(sc)
						}
					}
				}
			}
		}
	}
	_, start, _, ok := nextMarker(d.data, br.pos)
	if !ok {
		return 0, d.truncated(len(d.data), "the data ends after scan %d, before the EOI marker", d.scanCount)
	}
	return start, nil
}

// entropyError says why decoding stopped: the data ended, a marker cut the
// scan short, or a code was invalid.
func (d *decoder) entropyError(sc *scan) error {
	br := &d.br
	if br.bad {
		if br.pos >= len(d.data) {
			return d.truncated(len(d.data), "scan %d needs more entropy-coded data", d.scanCount)
		}
		return d.errorf(br.pos, "corrupt data: scan %d ends at a marker before its last block", d.scanCount)
	}
	return d.errorf(br.pos, "corrupt data: invalid Huffman code or coefficient run in scan %d", d.scanCount)
}

// processRestart expects restart marker RSTn (n counting 0..7 through the
// scan) after the bits of the interval just decoded.
func (d *decoder) processRestart(sc *scan, want *int) error {
	br := &d.br
	code, start, next, ok := nextMarker(d.data, br.pos)
	if !ok {
		return d.truncated(len(d.data), "scan %d ends where restart marker RST%d is due", d.scanCount, *want)
	}
	if code != 0xd0+uint8(*want) {
		return d.errorf(start, "corrupt data: scan %d has marker 0x%02X where RST%d is due", d.scanCount, code, *want)
	}
	*want = (*want + 1) & 7
	br.reset(d.data, next)
	d.dcPred = [4]int32{}
	d.eobrun = 0
	return nil
}

// decodeBlock decodes one block of a sequential scan (jdhuff.c
// decode_mcu_slow).
func (d *decoder) decodeBlock(blk *[64]int16, sc *scan, ci int) bool {
	br := &d.br
	s, ok := br.decode(sc.dc[ci])
	if !ok {
		return false
	}
	// int32 wrap-around and the int16 store are libjpeg's.
	d.dcPred[ci] += br.receiveExtend(s)
	blk[0] = int16(d.dcPred[ci])
	ac := sc.ac[ci]
	for k := 1; k < 64; k++ {
		rs, ok := br.decode(ac)
		if !ok {
			return false
		}
		r, s := int(rs>>4), rs&15
		if s == 0 {
			if r != 15 {
				break
			}
			k += 15
			continue
		}
		k += r
		if k > 63 {
			return false
		}
		blk[zigzag[k]] = int16(br.receiveExtend(s))
	}
	return true
}

// decodeProgressive decodes one block's part of a progressive scan
// (jdphuff.c: decode_mcu_DC_first, DC_refine, AC_first, AC_refine).
func (d *decoder) decodeProgressive(blk *[64]int16, sc *scan, ci int) bool {
	br := &d.br
	switch {
	case sc.ss == 0 && sc.ah == 0: // DC first
		s, ok := br.decode(sc.dc[ci])
		if !ok {
			return false
		}
		d.dcPred[ci] += br.receiveExtend(s)
		blk[0] = int16(d.dcPred[ci] << sc.al)
	case sc.ss == 0: // DC refine
		if br.bit() {
			blk[0] |= int16(1 << sc.al)
		}
	case sc.ah == 0: // AC first
		if d.eobrun > 0 {
			d.eobrun--
			return true
		}
		ac := sc.ac[0]
		for k := sc.ss; k <= sc.se; k++ {
			rs, ok := br.decode(ac)
			if !ok {
				return false
			}
			r, s := int(rs>>4), rs&15
			if s == 0 {
				if r != 15 {
					d.eobrun = br.eobRun(r) - 1 // this block ends the run's first
					break
				}
				k += 15
				continue
			}
			k += r
			if k > sc.se {
				return false
			}
			blk[zigzag[k]] = int16(br.receiveExtend(s) << sc.al)
		}
	default:
		return d.refineAC(blk, sc)
	}
	return true
}

// refineAC is decode_mcu_AC_refine: each already-nonzero coefficient of the
// band gets a correction bit, and new coefficients of magnitude 1<<Al appear.
func (d *decoder) refineAC(blk *[64]int16, sc *scan) bool {
	br := &d.br
	p1, m1 := int16(1)<<sc.al, int16(-1)<<sc.al
	correct := func(pos int) {
		if c := blk[pos]; c != 0 && br.bit() && c&p1 == 0 {
			if c >= 0 {
				blk[pos] = c + p1
			} else {
				blk[pos] = c + m1
			}
		}
	}
	k := sc.ss
	if d.eobrun == 0 {
		ac := sc.ac[0]
		for ; k <= sc.se; k++ {
			rs, ok := br.decode(ac)
			if !ok {
				return false
			}
			r, s := int32(rs>>4), rs&15
			var v int16
			if s != 0 {
				if s != 1 { // libjpeg warns JWRN_HUFF_BAD_CODE
					return false
				}
				v = m1
				if br.bit() {
					v = p1
				}
			} else if r != 15 {
				d.eobrun = br.eobRun(int(r))
				break
			}
			for k <= sc.se {
				pos := zigzag[k]
				if blk[pos] != 0 {
					correct(pos)
				} else {
					r--
					if r < 0 {
						break
					}
				}
				k++
			}
			if v != 0 {
				if k > sc.se {
					return false
				}
				blk[zigzag[k]] = v
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= sc.se; k++ {
			correct(zigzag[k])
		}
		d.eobrun--
	}
	return true
}

// finish runs after the EOI marker: the checks that need every scan, then,
// for a progressive file, the inverse DCT of the accumulated coefficients.
func (d *decoder) finish(off int) error {
	for i := range d.comps {
		c := &d.comps[i]
		if c.scans == 0 || (d.progressive && c.bits[0] < 0) {
			return d.errorf(off, "component %d has no data (no scan codes its DC coefficients)", c.id)
		}
	}
	if !d.progressive {
		return nil
	}
	if d.wouldSmooth() {
		return d.unsupported(off, "progressive JPEG whose scans leave low-frequency coefficients incomplete (libjpeg would apply block smoothing)")
	}
	for i := range d.comps {
		c := &d.comps[i]
		for by := range (c.ch + 7) / 8 {
			for bx := range (c.cw + 7) / 8 {
				idct((*[64]int16)(c.coefs[(by*c.bw+bx)*64:]), c.q, c.plane[by*8*c.bw*8+bx*8:], c.bw*8)
			}
		}
	}
	return nil
}

// wouldSmooth is jdcoefct.c's smoothing_ok at the output pass: libjpeg
// smooths a progressive image whose first ten coefficients (zigzag order)
// are not all fully refined in some component, provided every component's
// DC is known and its quantizers for them are nonzero.
func (d *decoder) wouldSmooth() bool {
	useful := false
	for i := range d.comps {
		c := &d.comps[i]
		for _, pos := range [...]int{0, 1, 8, 16, 9, 2, 3, 10, 17, 24} {
			if c.q[pos] == 0 {
				return false
			}
		}
		if c.bits[0] < 0 {
			return false
		}
		for k := 1; k < 10; k++ {
			if c.bits[k] != 0 {
				useful = true
			}
		}
	}
	return useful
}
