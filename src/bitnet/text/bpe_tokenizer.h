// Byte-level BPE (`tokenizer.ggml.model = gpt2`) with the LLaMA-3 pre-tokenizer, as HF tokenizers runs it:
//   fragment -> regex pieces -> each piece's bytes in the GPT-2 alphabet -> whole piece if it is a token
//   (ignore_merges, LLaMA-3) -> else start from one symbol per byte and apply merges lowest rank first,
//   leftmost first among equal ranks.
// Cost: O(n log n) per piece of n bytes (binary heap of candidate pairs); nothing is cached.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "bitnet/text/hash_index.h"
#include "bitnet/text/pretokenizer.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet {

class BpeTokenizer final : public Tokenizer {
 public:
  std::string pre_tokenizer_name() const override;
  size_t n_merges() const { return merges_.size(); }

 protected:
  friend class Tokenizer;  // only Tokenizer::create constructs, then finishes with build_token_bytes()
  explicit BpeTokenizer(VocabData& vocab);  // throws on unsupported `pre` or bad merges

  void encode_fragment(std::string_view text, bool after_special, std::vector<int32_t>& out) const override;
  std::string normal_token_bytes(std::string_view stored) const override;

 private:
  struct Scratch;  // per-encode working buffers
  void encode_piece(std::string_view piece, Scratch& s, std::vector<int32_t>& out) const;

  std::string pre_name_;
  bool ignore_merges_;  // a piece that is a whole token is emitted as is
  RegexSplitter splitter_;
  std::array<int32_t, 256> byte_token_;  // id of each byte's one-character token, -1 if missing
  PairIndex merges_;                     // (left id, right id) -> (rank = merges index, result)
};

}  // namespace bitnet
