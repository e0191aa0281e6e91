// Package preprocess turns image files into the CLIP pixel values LLaVA-1.5's
// vision tower takes, matching the reference pipeline bit for bit where the
// reference is deterministic integer arithmetic: Pillow 9.4's decoders and
// convert("RGB"), original LLaVA's expand2square, Pillow's fixed-point BICUBIC
// resize, and transformers 4.40.2 CLIPImageProcessor's centre crop, rescale and
// normalisation.
//
// Decoding uses the standard library and golang.org/x/image/webp for the
// entropy-coded part of each format and redoes, on top of what they return,
// the steps where Pillow's C libraries differ from Go's: libjpeg's fancy chroma
// upsampling and integer YCbCr->RGB tables, libwebp's fancy upsampler and
// BT.601 limited-range conversion, and Pillow's mode conversions (alpha
// dropped, 16-bit samples reduced as Pillow's raw modes reduce them). Only the
// JPEG inverse DCT is Go's rather than libjpeg's islow, so a JPEG's pixels can
// be a level or two off Pillow's (on the fixture 97.5% are exact, 99.6% within
// one level, none more than three off).
//
// Allowed imports: the standard library and golang.org/x/image/webp.
package preprocess
