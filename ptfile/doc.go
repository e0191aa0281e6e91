// Package ptfile reads PyTorch torch.save checkpoints (pytorch_model.bin,
// sharded pytorch_model-0000N-of-0000M.bin with pytorch_model.bin.index.json,
// PEFT adapter_model.bin, LLaVA's non_lora_trainables.bin) without running
// any of the pickle they contain. Its one job: turn such a file into named,
// validated tensors that are views on the memory-mapped file.
//
// A torch.save file is a zip archive holding <prefix>/data.pkl (a pickle of
// the state dict) and one record <prefix>/data/<key> per storage. data.pkl is
// read by a restricted unpickler: it implements only the opcodes that
// torch.save emits for state dicts (pickle protocols 2 to 5), builds plain Go
// values, and resolves GLOBAL names against a fixed allowlist:
// collections.OrderedDict, torch._utils._rebuild_tensor_v2,
// torch._utils._rebuild_parameter and the ten torch.<Type>Storage classes.
// Nothing is imported or called; any other global, opcode or object shape is
// refused with an *Error naming it and its byte offset in data.pkl. The
// allowlist follows torch's own weights_only unpickler
// (pytorch/pytorch, torch/_weights_only_unpickler.py), narrowed to what
// state dicts need.
//
// Every tensor is checked when it is rebuilt (offset, sizes and strides
// non-negative, no int64 overflow, every addressed element inside its
// storage, storage record exactly numel x itemsize bytes), so Open either
// returns a fully valid File or an error. Contiguous tensors are zero-copy
// views on the mapped storage record; strided views are copied into a
// contiguous tensor by Tensor. Stored (uncompressed, as torch writes them)
// records are used in place and their CRC is not checked (that would read
// every weight); deflated records are inflated on first use.
//
// Memory: Open allocates at most a small multiple of the input (about 64x
// data.pkl in the worst case, where every opcode byte makes an object;
// TestOpenAllocationBound measures it and the fuzz targets assert it),
// never in proportion to a size the file merely declares: sizes are checked
// against the file before anything is allocated and an absurd memo index
// costs nothing. Tensor allocates only to copy a strided view (at most its
// storage's size) or to inflate a deflated record once; all deflated
// records of a file may expand to at most 32x the file's size.
//
// Decisions on the optional formats:
//   - pickle protocol 4 and 5 framing (FRAME, SHORT_BINUNICODE, MEMOIZE,
//     STACK_GLOBAL, BINUNICODE8) is supported: torch.save(...,
//     pickle_protocol=4) loads.
//   - the pre-1.6 non-zip format (_use_new_zipfile_serialization=False) is
//     refused with ErrLegacyFormat; no LLaVA-1.5 or CLIP checkpoint uses it.
//   - views whose strides overlap so that they have more elements than their
//     storage (torch's expand) are refused with ErrOverlap, which keeps every
//     allocation within the size of the file.
//
// Allowed imports: the standard library, tensor and internal/mmap.
package ptfile
