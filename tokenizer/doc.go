// Package tokenizer turns prompts into token ids and generated ids back into
// text for LLaMA / Vicuna / LLaVA-1.5 checkpoints, giving exactly the ids and
// strings of Hugging Face's slow LlamaTokenizer (transformers 4.40.2,
// sentencepiece 0.1.97).
//
// Two layers, each a port of its reference:
//
//   - sentencepiece: tokenizer.model is read field by field with protowire
//     (pieces, trainer_spec, normalizer_spec, denormalizer_spec). Only BPE
//     models with the "identity" normaliser are implemented; unigram/word/char
//     models, other normaliser names, precompiled charsmaps and
//     treat_whitespace_as_suffix are refused by name (ErrUnsupported) rather
//     than approximated. Encoding is sentencepiece's BPE (highest-scoring
//     adjacent pair first, leftmost on ties, heap + linked list, O(n log n)),
//     byte fallback to <0xXX> pieces, merged unknown runs without it.
//   - transformers: tokenizer_config.json, special_tokens_map.json and
//     added_tokens.json are merged as _from_pretrained does. Added tokens split
//     the text (longest match at the leftmost position) and honour
//     lstrip/rstrip/single_word; legacy=false adds one "▁" to the text,
//     switches sentencepiece's dummy prefix off and encodes chunks that start
//     with a space behind unk_token (LlamaTokenizer._tokenize); legacy=true is
//     plain sentencepiece per chunk.
//
// Decoding replays _decode / convert_tokens_to_string / sentencepiece's Decode
// one token at a time (see decode.go), so Decode and StreamDecoder agree by
// construction. Decode with skipSpecial=false reproduces the slow tokenizer's
// spacing quirks too: additional special tokens past the sentencepiece
// vocabulary (<image>) are joined to their neighbours with spaces although
// tokenizer_config.json says spaces_between_special_tokens false, and a
// leading special token is followed by a space when the next token has no
// "▁" ("</s>x" → "</s> x"). Ids outside the vocabulary (LLaVA's -200 image
// sentinel, embedding padding rows) are skipped, where transformers would
// raise. For legacy=true models the first-piece whitespace rule follows
// current sentencepiece (only the first "▁" of the output is consumed).
// clean_up_tokenization_spaces=true and sentencepiece sampling options are
// refused at load: neither is used by these checkpoints, and the first would
// make streaming decode inexact.
//
// EncodeImageChunks is original LLaVA's tokenizer_image_token (chunks around
// "<image>" tokenized separately, joined with a sentinel id).
//
// EncodeControlled and EncodeImageChunksControlled take the byte spans where
// a prompt template put control tokens: added tokens count only there, and
// anywhere else their strings are text for sentencepiece (transformers'
// split_special_tokens=True, for those parts only), so that a user's "</s>"
// cannot end a turn. A text whose added tokens all lie in the spans gets
// Encode's ids exactly.
//
// Allowed imports: the standard library and
// google.golang.org/protobuf/encoding/protowire.
package tokenizer
