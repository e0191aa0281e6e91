// Package tensor is the data container every other package shares: a dtype, a
// shape and contiguous row-major bytes. It holds no model knowledge and does no
// heavy arithmetic; kernels live in asm and backend.
//
// Activations are F32. Weights may be F32, F16 or BF16 and are used in place,
// straight off a memory-mapped checkpoint: a Tensor made with FromBytes is a view
// on the caller's bytes, nothing is copied or widened. The scalar fp16/bf16
// conversions here are the reference that vectorised conversions are tested
// against.
//
// Allowed imports: the standard library only.
package tensor
