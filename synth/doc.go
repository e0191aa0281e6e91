// Package synth generates a synthetic visual-question world from a seed:
// 336×336 scenes of textured, noisy backgrounds with 1–6 anti-aliased shapes
// of several kinds, colours and sizes and a short code printed on a label,
// and for each scene the questions it answers unambiguously — counting,
// colour, relative position, presence (yes/no balanced) and reading the
// code — in the VQAv2 question and annotation formats and in LLaVA's
// conversation format for training, with each scene's layout beside them.
// The same seed gives the same bytes.
//
// Allowed imports: the standard library and golang.org/x/image/font.
package synth
