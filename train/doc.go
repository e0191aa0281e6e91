// Package train is AlignedVQ's training stage, part two (docs/alignedvq.md,
// "Training"): it fine-tunes a module's DLP and codebook with the
// straight-through estimator, the commitment loss and an EMA (or gradient)
// codebook update, distilling the unquantised model's features (layer −2,
// class token dropped, or the projector output). Gradients flow through the
// frozen vision blocks after the split by hand-written backward passes on
// the backend's Grad extension (docs/architecture.md).
package train
