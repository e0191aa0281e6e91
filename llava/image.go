package llava

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"os"

	"github.com/avq/avq/llava/preprocess"
)

// ImageOptions say how an image file becomes pixel values.
type ImageOptions struct {
	Aspect    *preprocess.Aspect // nil: the checkpoint's default
	ApplyEXIF bool               // rotate by the EXIF orientation (the reference does not)
	// JPEGQuality, 1–100, runs the cloud-only JPEG baseline: the image goes
	// through the model as an edge device would send it (BaselineJPEG) and
	// decoded back. 0 uses the file as it is.
	JPEGQuality int
}

// Sent is what reaches the cloud for one image: the bytes on the wire and
// the pixel values the model then computes from.
type Sent struct {
	Pixels []float32
	Bytes  int
}

// Pixels decodes an image file and preprocesses it as the checkpoint's
// processor does: [3, S, S] CHW pixel values.
func (ck *Checkpoint) Pixels(path string, opt ImageOptions) ([]float32, error) {
	s, err := ck.Send(path, opt)
	if err != nil {
		return nil, err
	}
	return s.Pixels, nil
}

// Send is Pixels with the size of what a cloud-only client sends: the file
// itself, or with JPEGQuality the baseline JPEG.
func (ck *Checkpoint) Send(path string, opt ImageOptions) (*Sent, error) {
	img, err := preprocess.DecodeFile(path, preprocess.DecodeOptions{ApplyEXIF: opt.ApplyEXIF})
	if err != nil {
		return nil, err
	}
	if opt.JPEGQuality == 0 {
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		return &Sent{Pixels: ck.PixelsOf(img, opt), Bytes: int(st.Size())}, nil
	}
	b, err := ck.BaselineJPEG(img, opt)
	if err != nil {
		return nil, err
	}
	back, err := preprocess.Decode(b, preprocess.DecodeOptions{})
	if err != nil {
		return nil, fmt.Errorf("llava: decoding the baseline JPEG of %s: %w", path, err)
	}
	return &Sent{Pixels: ck.PixelsOf(back, opt), Bytes: len(b)}, nil
}

// PixelsOf preprocesses a decoded image.
func (ck *Checkpoint) PixelsOf(img *preprocess.Image, opt ImageOptions) []float32 {
	return ck.Image.PixelValues(img, ck.aspect(opt))
}

func (ck *Checkpoint) aspect(opt ImageOptions) preprocess.Aspect {
	if opt.Aspect != nil {
		return *opt.Aspect
	}
	return ck.Aspect
}

// BaselineJPEG is the one definition of what a cloud-only baseline sends, for
// avq eval and the benches alike: the image resized and cropped or padded to
// the model's input exactly as the preprocessing does (the model image), then
// encoded by Go's JPEG encoder (baseline, 4:2:0) at opt.JPEGQuality.
func (ck *Checkpoint) BaselineJPEG(img *preprocess.Image, opt ImageOptions) ([]byte, error) {
	q := opt.JPEGQuality
	if q < 1 || q > 100 {
		return nil, fmt.Errorf("llava: JPEG quality %d outside 1–100", q)
	}
	m := ck.Image.ModelImage(img, ck.aspect(opt))
	rgba := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i := range m.W * m.H {
		copy(rgba.Pix[4*i:4*i+3], m.Pix[3*i:3*i+3])
		rgba.Pix[4*i+3] = 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: q}); err != nil {
		return nil, fmt.Errorf("llava: encoding the baseline JPEG: %w", err)
	}
	return buf.Bytes(), nil
}
