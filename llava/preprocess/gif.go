package preprocess

import (
	"fmt"
	"image"
)

// fromGIF builds frame 0 as Pillow 9.4's GifImagePlugin does: a canvas the
// size of the logical screen, filled with the frame's transparent index when
// it has one (index 0 otherwise), the frame pasted at its offset, and every
// index looked up in the frame's colour table. Go's decoder has already
// replaced the transparent entry by transparent black, so the table comes from
// the file instead; Pillow's convert("RGB") keeps that entry's colour.
func fromGIF(m image.Image, b []byte, cfg image.Config) (*Image, error) {
	p, ok := m.(*image.Paletted)
	if !ok {
		return nil, fmt.Errorf("unexpected GIF image type %T", m)
	}
	info, err := scanGIF(b)
	if err != nil {
		return nil, err
	}
	r := p.Rect
	if r.Min.X < 0 || r.Min.Y < 0 || r.Max.X > cfg.Width || r.Max.Y > cfg.Height {
		return nil, fmt.Errorf("frame %v outside the %dx%d screen", r, cfg.Width, cfg.Height)
	}
	pal := greyRamp() // indices past the table, as in paletteRGB
	for i := range min(len(info.table)/3, 256) {
		pal[i] = [3]uint8(info.table[3*i : 3*i+3])
	}
	fill := pal[0]
	if info.transparent >= 0 {
		fill = pal[info.transparent]
	}
	img := &Image{W: cfg.Width, H: cfg.Height, Pix: make([]uint8, 3*cfg.Width*cfg.Height)}
	for i := 0; i < len(img.Pix); i += 3 {
		copy(img.Pix[i:i+3], fill[:])
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := p.Pix[(y-r.Min.Y)*p.Stride : (y-r.Min.Y)*p.Stride+r.Dx()]
		o := img.Pix[3*(y*img.W+r.Min.X):]
		for x, v := range row {
			copy(o[3*x:3*x+3], pal[v][:])
		}
	}
	return img, nil
}

// gifFrame0 is what scanGIF finds about the first frame.
type gifFrame0 struct {
	table       []byte // the RGB colour table frame 0 uses (local, else global)
	transparent int    // transparent index, -1 when none
}

// scanGIF walks the block structure up to the first image descriptor. Like
// Pillow, a graphic control extension sets the transparent index only when
// its flag is set, and a later one without the flag leaves it alone.
func scanGIF(b []byte) (gifFrame0, error) {
	info := gifFrame0{transparent: -1}
	const header = 6 + 7 // signature+version, logical screen descriptor
	if len(b) < header {
		return info, fmt.Errorf("GIF header truncated")
	}
	pos := header
	if flags := b[10]; flags&0x80 != 0 {
		n := 3 << (flags&7 + 1)
		if len(b) < pos+n {
			return info, fmt.Errorf("GIF global colour table truncated")
		}
		info.table = b[pos : pos+n]
		pos += n
	}
	for pos < len(b) {
		switch b[pos] {
		case 0x21: // extension: label, then data sub-blocks
			if pos+1 >= len(b) {
				return info, fmt.Errorf("GIF extension truncated at byte %d", pos)
			}
			label := b[pos+1]
			pos += 2
			first := true
			for {
				if pos >= len(b) {
					return info, fmt.Errorf("GIF extension truncated at byte %d", pos)
				}
				n := int(b[pos])
				if n == 0 {
					pos++
					break
				}
				if pos+1+n > len(b) {
					return info, fmt.Errorf("GIF extension truncated at byte %d", pos)
				}
				if first && label == 0xf9 && n >= 4 && b[pos+1]&1 != 0 {
					info.transparent = int(b[pos+4])
				}
				first = false
				pos += 1 + n
			}
		case 0x2c: // image descriptor
			if pos+10 > len(b) {
				return info, fmt.Errorf("GIF image descriptor truncated at byte %d", pos)
			}
			if flags := b[pos+9]; flags&0x80 != 0 {
				n := 3 << (flags&7 + 1)
				if pos+10+n > len(b) {
					return info, fmt.Errorf("GIF local colour table truncated at byte %d", pos+10)
				}
				info.table = b[pos+10 : pos+10+n]
			}
			if info.table == nil {
				return info, fmt.Errorf("GIF frame has no colour table")
			}
			return info, nil
		default:
			return info, fmt.Errorf("GIF block 0x%02x at byte %d before the first image", b[pos], pos)
		}
	}
	return info, fmt.Errorf("GIF has no image")
}
