package llava

import (
	"github.com/avq/avq/llava/preprocess"
)

// ImageOptions say how an image file becomes pixel values.
type ImageOptions struct {
	Aspect    *preprocess.Aspect // nil: the checkpoint's default
	ApplyEXIF bool               // rotate by the EXIF orientation (the reference does not)
}

// Pixels decodes an image file and preprocesses it as the checkpoint's
// processor does: [3, S, S] CHW pixel values.
func (ck *Checkpoint) Pixels(path string, opt ImageOptions) ([]float32, error) {
	img, err := preprocess.DecodeFile(path, preprocess.DecodeOptions{ApplyEXIF: opt.ApplyEXIF})
	if err != nil {
		return nil, err
	}
	return ck.PixelsOf(img, opt), nil
}

// PixelsOf preprocesses a decoded image.
func (ck *Checkpoint) PixelsOf(img *preprocess.Image, opt ImageOptions) []float32 {
	a := ck.Aspect
	if opt.Aspect != nil {
		a = *opt.Aspect
	}
	return ck.Image.PixelValues(img, a)
}
