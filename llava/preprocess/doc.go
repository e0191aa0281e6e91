// Package preprocess turns image files into the CLIP pixel values LLaVA-1.5's
// vision tower takes, matching the reference pipeline bit for bit where the
// reference is deterministic integer arithmetic: Pillow 9.4's decoders and
// convert("RGB"), original LLaVA's expand2square, Pillow's fixed-point BICUBIC
// resize, and transformers 4.40.2 CLIPImageProcessor's centre crop, rescale and
// normalisation.
//
// JPEG files are decoded by package jpeg, which reproduces libjpeg-turbo 2.1
// exactly. PNG, GIF and WebP use the standard library and
// golang.org/x/image/webp for the entropy-coded part and redo, on top of what
// they return, the steps where Pillow's C libraries differ from Go's:
// libwebp's fancy upsampler and BT.601 limited-range conversion, and Pillow's
// mode conversions (alpha dropped, 16-bit samples reduced as Pillow's raw
// modes reduce them, CMYK JPEGs opened Adobe-inverted).
//
// Allowed imports: the standard library, golang.org/x/image/webp and
// package jpeg.
package preprocess
