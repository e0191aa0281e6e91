// Package nn holds the layers the models are assembled from — Linear (with
// LoRA), LayerNorm, RMSNorm — and Weights, the scoped, shape-checked loader
// that binds them to checkpoint tensors.
//
// Weights is a sticky-error scope (the candle VarBuilder idea): a model's load
// function reads as a straight list of its tensors, every name, shape and dtype
// is checked, the first problem is kept, and Err reports it once at the end.
// LoRA lives only in Linear, keyed by the base weight's module path, so model
// files never mention it.
//
// Allowed imports: the standard library, tensor and backend.
package nn
