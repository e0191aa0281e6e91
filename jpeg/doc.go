// Package jpeg decodes JPEG files to the samples libjpeg-turbo 2.1 gives
// Pillow 9.4, bit for bit: the same Huffman decoding, dequantisation, ISLOW
// integer inverse DCT with its range limiting, "fancy" chroma upsampling and
// YCbCr->RGB / YCCK->CMYK fixed-point tables, and the same rules for guessing
// the colour space from the JFIF and Adobe markers and the component ids.
//
// It supports baseline and extended sequential Huffman coding (SOF0, SOF1),
// progressive Huffman coding (SOF2) with spectral selection and successive
// approximation, restart intervals, 8-bit precision, any legal integral
// sampling factors, and 1, 3 or 4 components (the counts Pillow opens).
//
// What libjpeg-turbo 2.1 would decode differently from the plain algorithm,
// or not at all, is refused with an error that names it rather than decoded
// approximately: arithmetic coding, lossless and hierarchical frames, 12-bit
// samples, progressive files whose scans leave low-frequency coefficients
// incomplete (libjpeg then applies its block smoothing), and fractional
// sampling ratios. Where libjpeg only warns about corrupt data and goes on
// with guessed values (a bad Huffman code, a missing restart marker, scan
// data that ends early), this package returns an error: a caller gets the
// exact pixels or an error, never an approximation. Truncated files are
// refused, as Pillow refuses them by default.
//
// Errors name the byte offset at which the problem was found.
//
// Allowed imports: the standard library only.
package jpeg
