// SentencePiece (`tokenizer.ggml.model = llama`, LLaMA-2 vocabularies) as llama.cpp runs it:
//   ' ' -> '▁' (U+2581), plus one leading '▁' on the first fragment and after each special token
//   (add_space_prefix); one symbol per UTF-8 character; repeatedly merge the adjacent pair whose
//   concatenation is a vocabulary token with the highest score (leftmost on ties); a leftover
//   character that is no token becomes its <0xNN> byte tokens, or <unk> where those are missing.
// Only normal tokens take part in merges, as in SentencePiece: literal "<s>" or "<0x41>" in the text
// stays text (llama.cpp would let a merge reach those control/byte tokens).
// Cost: O(n log n) per fragment of n characters.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/text/tokenizer.h"

namespace bitnet {

class SpmTokenizer final : public Tokenizer {
 public:
  std::string pre_tokenizer_name() const override { return "sentencepiece"; }

 protected:
  friend class Tokenizer;  // only Tokenizer::create constructs, then finishes with build_token_bytes()
  // Throws when some byte has no <0xNN> token and there is no unknown token to fall back on.
  explicit SpmTokenizer(VocabData& vocab);

  void encode_fragment(std::string_view text, bool after_special, bool at_start,
                       std::vector<int32_t>& out) const override;
  std::string normal_token_bytes(std::string_view stored) const override;

 private:
  int32_t normal_token(std::string_view text) const;  // id if `text` is a normal token, else -1

  std::vector<float> score_;             // [n_vocab] merge priority, 0 when the vocabulary has none
  std::array<int32_t, 256> byte_token_;  // id of <0xNN>, -1 if absent
  bool add_space_prefix_;
};

}  // namespace bitnet
