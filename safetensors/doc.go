// Package safetensors reads and writes checkpoints in the Hugging Face
// safetensors format: an 8-byte little-endian header length, a JSON header
// naming every tensor's dtype, shape and byte range, then the raw tensor bytes.
//
// Reading validates the whole header before any tensor is handed out, at least
// as strictly as the reference reader (huggingface/safetensors,
// safetensors/src/tensor.rs, SafeTensors::read_metadata and Metadata::validate):
// bounded header length, UTF-8 JSON object, known dtypes, overflow-checked sizes,
// byte ranges that tile the data section exactly, unique names (duplicate JSON
// keys included, which encoding/json and serde both silently collapse) and a
// string-to-string __metadata__. Files are memory-mapped through internal/mmap,
// so tensors are zero-copy views that the kernel pages in on first touch.
//
// A Checkpoint is one file or a sharded set behind model.safetensors.index.json.
// The writer exists for tools and tests (fixtures of damaged files are built in
// the tests with Write plus byte surgery).
//
// Allowed imports: the standard library, tensor and internal/mmap.
package safetensors
