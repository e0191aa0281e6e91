// Package backend defines the small set of operations the models run on, and
// the Tensor handle those operations take. Model code (nn, vit, llama, vq)
// calls only this interface, never a kernel, and never touches a Tensor's
// memory directly: a backend may keep weights and activations resident on a
// device, so data crosses to the host only through Read and Write.
//
// The CPU implementation is backend/cpu. A CUDA implementation will sit beside
// it; it plugs in without the models changing.
//
// Allowed imports: the standard library and tensor.
package backend
