// BPE as Hugging Face tokenizers runs it (`tokenizer.ggml.model = gpt2`, or a tokenizer.json BPE model):
//   fragment -> TextPipeline (normalizer, pre-tokenizer; hf_pipeline.h) -> pieces -> for each piece:
//   the whole piece if it is a token (ignore_merges, LLaMA-3) -> else one symbol per character (<0xNN>
//   byte tokens or <unk> for a character that is no token) and merges applied lowest rank first,
//   leftmost first among equal ranks.
// The pipeline comes from the vocabulary's stored tokenizer.json objects (VocabData::pipeline) or, for a
// GGUF written by other tools, from llama.cpp's `tokenizer.ggml.pre` name.
// Cost: O(n log n) per piece of n characters (binary heap of candidate pairs); nothing is cached.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "bitnet/text/hash_index.h"
#include "bitnet/text/hf_pipeline.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet {

class BpeTokenizer final : public Tokenizer {
 public:
  std::string pre_tokenizer_name() const override;
  size_t n_merges() const { return merges_.size(); }

 protected:
  friend class Tokenizer;  // only Tokenizer::create constructs, then finishes with build_token_bytes()
  explicit BpeTokenizer(VocabData& vocab);  // throws on an unsupported pipeline or bad merges

  void encode_fragment(std::string_view text, bool after_special, bool at_start,
                       std::vector<int32_t>& out) const override;
  std::string normal_token_bytes(std::string_view stored) const override;
  std::string added_token_bytes(std::string_view stored) const override;

 private:
  struct Scratch;  // per-encode working buffers
  void encode_piece(std::string_view piece, Scratch& s, std::vector<int32_t>& out) const;
  int32_t model_token(std::string_view text) const;  // id of a token the model may emit, or -1

  std::string pre_name_;
  TextPipeline pipeline_;
  int32_t model_unk_ = -1;                // the model's unk_token, -1 when it has none
  std::array<int32_t, 256> byte_tokens_;  // id of "<0xNN>" (byte_fallback), -1 when absent
  PairIndex merges_;                      // (left id, right id) -> (rank = merges index, result)
};

}  // namespace bitnet
