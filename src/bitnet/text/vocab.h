// What a tokenizer needs, as read from the GGUF keys `tokenizer.ggml.*` (or built from a Hugging Face
// tokenizer.json by hf_tokenizer_json.h). Plain data, no dependencies: the GGUF reader fills it, the
// Tokenizer factory validates it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitnet {

// GGUF `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,  // treated as normal
  kNormal = 1,
  kUnknown = 2,      // <unk>
  kControl = 3,      // BOS/EOS/<|eot_id|>...: rendered only on request, parsed only with parse_special
  kUserDefined = 4,  // added tokens: always split out of the text verbatim, rendered verbatim
  kUnused = 5,
  kByte = 6,  // SentencePiece <0xNN> byte-fallback tokens
};

struct VocabData {
  std::string model;  // tokenizer.ggml.model: "gpt2" = byte-level BPE, "llama" = SentencePiece, "bpe" = other HF BPE
  std::string pre;    // tokenizer.ggml.pre; empty when the key is absent
  // tokenizer.json's "normalizer", "pre_tokenizer", "decoder" and "model" options as one JSON object
  // (hf_pipeline.h), GGUF key tokenizer.bitnet.hf_pipeline; empty: derived from `pre` (byte-level BPE).
  // Model "bpe" (HF BPE that is not byte-level, e.g. byte_fallback vocabularies) requires it.
  std::string pipeline;

  std::vector<std::string> tokens;   // [n_vocab] token text as stored (GPT-2 byte alphabet / '▁' form)
  std::vector<float> scores;         // [n_vocab] or empty; SentencePiece merge priority (higher first)
  std::vector<int32_t> token_types;  // [n_vocab] or empty (then all normal); TokenType values
  std::vector<std::string> merges;   // [n_merges] "left right", rank = index; byte-level BPE only

  // Special ids, -1 when absent (tokenizer.ggml.{bos,eos,eot,eom,unknown,padding}_token_id).
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t eot_id = -1;
  int32_t eom_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;

  bool add_bos = true;           // tokenizer.ggml.add_bos_token
  bool add_eos = false;          // tokenizer.ggml.add_eos_token
  bool add_space_prefix = true;  // tokenizer.ggml.add_space_prefix (SentencePiece only)
};

}  // namespace bitnet
