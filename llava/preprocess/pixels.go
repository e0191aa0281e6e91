package preprocess

// PixelValues runs CLIPImageProcessor on img as LLaVA-1.5's reference does
// and returns [3, CropSize, CropSize] float32 values, channel-major:
//
//  1. Pad only: paste img centred on a square of side max(W, H) filled with
//     int(mean*255) per channel, at offset (long-short)//2 along the short
//     axis (original LLaVA's expand2square).
//  2. Resize so the short side is Size and the long side
//     int(Size*long/short), with Pillow's BICUBIC; skipped when already so.
//  3. Centre-crop CropSize: top = (H-CropSize)//2, left = (W-CropSize)//2.
//  4. x = float32(float64(u8) * RescaleFactor), then (x - mean) / std in
//     float32 (numpy's order of rounding).
//
// Only the crop window of the resize is computed, and the padded square is
// never built, so memory stays proportional to the output.
//
// It panics if img's Pix does not hold W*H*3 bytes or c is not a config
// ParseConfig would accept: both are programming errors.
func (c Config) PixelValues(img *Image, a Aspect) []float32 {
	return c.normalize(c.ModelImage(img, a))
}

// ModelImage runs steps 1–3 of PixelValues: the CropSize × CropSize RGB
// image the model sees, before normalisation. It is what a cloud-only
// baseline's edge device would send, since PixelValues of it (resize and
// crop are then the identity) equals PixelValues of img.
func (c Config) ModelImage(img *Image, a Aspect) *Image {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != 3*img.W*img.H {
		panic("preprocess: image Pix does not hold W*H*3 bytes")
	}
	if c.validate() != nil {
		panic("preprocess: invalid Config")
	}
	cv := &canvas{img: img, w: img.W, h: img.H}
	if a == Pad && img.W != img.H {
		side := max(img.W, img.H)
		cv.w, cv.h = side, side
		cv.offX, cv.offY = (side-img.W)/2, (side-img.H)/2
		for i, m := range c.Mean {
			cv.fill[i] = padFill(m)
		}
	}
	outW, outH := resizedSize(cv.w, cv.h, c.Size)
	left, top := (outW-c.CropSize)/2, (outH-c.CropSize)/2
	return resizeWindow(cv, outW, outH, left, top, c.CropSize, c.CropSize)
}

// padFill is expand2square's int(x*255) for one mean value; Pillow clips
// out-of-range fill values to the byte range.
func padFill(mean float64) uint8 {
	v := mean * 255
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v) // truncation, as Python's int()
}

// resizedSize is transformers' get_resize_output_image_size for
// {"shortest_edge": size}: the long side is int(size*long/short), computed in
// float64 from exact integers as Python does.
func resizedSize(w, h, size int) (int, int) {
	if w <= h {
		return size, int(float64(size*h) / float64(w))
	}
	return int(float64(size*w) / float64(h)), size
}

// normalize rescales and normalises an RGB image into CHW float32.
func (c Config) normalize(img *Image) []float32 {
	n := img.W * img.H
	out := make([]float32, 3*n)
	for ch := range 3 {
		mean, std := float32(c.Mean[ch]), float32(c.Std[ch])
		var lut [256]float32
		for v := range lut {
			x := float32(v)
			if c.DoRescale {
				x = float32(float64(v) * c.RescaleFactor)
			}
			if c.DoNormalize {
				x = (x - mean) / std
			}
			lut[v] = x
		}
		dst := out[ch*n : (ch+1)*n]
		for i := range dst {
			dst[i] = lut[img.Pix[3*i+ch]]
		}
	}
	return out
}
