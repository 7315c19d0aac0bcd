// Text <-> token ids. One abstract Tokenizer, two implementations chosen by `tokenizer.ggml.model`:
//   "gpt2"  byte-level BPE with the LLaMA-3 pre-tokenizer regex (bpe_tokenizer.h)
//   "llama" SentencePiece as llama.cpp runs it: greedy merges by score + <0xNN> byte fallback
//   (spm_tokenizer.h)
//
// Encoding splits special tokens out of the text first (leftmost, longest text first), then hands each
// plain-text fragment to the implementation. Tokenizers are immutable after create(): encode and
// decode are const and safe to call from several threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/text/hash_index.h"
#include "bitnet/text/vocab.h"

namespace bitnet {

class Tokenizer {
 public:
  // Validates `vocab` and builds the lookup tables (LLaMA-3: ~0.1 s). Throws bitnet::Error with a
  // sentence on an unsupported model/pre-tokenizer or inconsistent data.
  static std::unique_ptr<Tokenizer> create(VocabData vocab);  // takes the token texts, copies nothing big

  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids for `text` (any bytes; invalid UTF-8 is tokenized byte by byte, never rejected).
  // add_bos: prepend bos_id (throws if the vocabulary has none). Never appends EOS: callers that want
  // it check add_eos_default(). parse_special: control tokens written in the text (`<|eot_id|>`) become
  // their id; without it they are ordinary text. User-defined tokens are always matched, as in HF.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // A byte range [begin, end) of a text.
  struct Range {
    size_t begin, end;
  };
  // As encode(text, add_bos, true), except that a control token is matched only where its whole text lies
  // inside one of `markup` (sorted, disjoint): a chat prompt's template. Anywhere else, such as in a user's
  // message, `<|eot_id|>` is ordinary text, and text on both sides of a range boundary is tokenized as one
  // fragment, so a prompt with no control token in its messages gets exactly encode()'s ids.
  std::vector<int32_t> encode_marked(std::string_view text, std::span<const Range> markup, bool add_bos) const;

  // Raw bytes of one token: byte-level BPE maps the GPT-2 alphabet back to bytes, SentencePiece turns
  // '▁' into ' ' and <0xNN> into that byte. A single token may be an incomplete UTF-8 sequence.
  // Control and unknown tokens give "" unless render_special. Throws on an id outside [0, n_vocab).
  std::string token_text(int32_t id, bool render_special = false) const {
    return std::string(token_bytes(id, render_special));
  }
  std::string_view token_bytes(int32_t id, bool render_special = false) const;

  // Concatenated token bytes (may be invalid UTF-8 if `ids` ends mid-character). For SentencePiece
  // with add_space_prefix, the space that encode() put before the text is removed again.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(text_.size()); }
  bool is_eog(int32_t id) const;  // end of generation: eos, eot, eom and control tokens named like them
  TokenType token_type(int32_t id) const;
  const std::string& vocab_text(int32_t id) const;        // token as stored in the vocabulary
  int32_t find_token(std::string_view vocab_text) const;  // id of a stored token text, or -1

  const std::string& model() const { return model_; }  // "gpt2" or "llama"
  // Which pre-tokenizer runs, for notices: "llama3" (also when tokenizer.ggml.pre is absent),
  // "smaug-bpe" (same regex, merges always applied) or "sentencepiece".
  virtual std::string pre_tokenizer_name() const = 0;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t eot_id() const { return eot_id_; }
  int32_t eom_id() const { return eom_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t pad_id() const { return pad_id_; }
  bool add_bos_default() const { return add_bos_; }  // vocab add_bos and a BOS token exists
  bool add_eos_default() const { return add_eos_; }
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }

 protected:
  explicit Tokenizer(VocabData& vocab);  // common validation and tables; moves vocab.tokens into text_

  // Appends the ids of one plain-text fragment (no special tokens in it). `after_special` is true for
  // the first fragment and for fragments right after a special token (SentencePiece adds its space then).
  // `at_start`: the fragment begins the text (HF Metaspace's prepend_scheme "first").
  virtual void encode_fragment(std::string_view text, bool after_special, bool at_start,
                               std::vector<int32_t>& out) const = 0;
  // Raw bytes of a normal/unused token given its stored text.
  virtual std::string normal_token_bytes(std::string_view stored) const = 0;
  // Raw bytes of a control, unknown or user-defined (added) token: its text, unless the implementation
  // decodes added tokens too (Hugging Face passes every token through its decoder).
  virtual std::string added_token_bytes(std::string_view stored) const { return std::string(stored); }
  // Fills bytes_; called by create() once the derived object is complete.
  void build_token_bytes();

  bool is_type(int32_t id, TokenType t) const { return type_[static_cast<size_t>(id)] == t; }

  std::string model_;
  std::vector<std::string> text_;  // [n_vocab] stored token text
  std::vector<TokenType> type_;    // [n_vocab] (kUndefined mapped to kNormal)
  TextIndex id_of_;                // stored text -> id (last wins)
  bool strip_decoded_space_;       // decode() drops one leading ' ' (SentencePiece's added space)...
  bool strip_skips_control_ = true;  // ...of the first non-control token (llama.cpp), else of the first
                                     // token that renders any bytes (Hugging Face's Strip decoder)

 private:
  struct Special {
    int32_t id;
    bool needs_parse_special;  // control/unknown: only with parse_special; user-defined: always
  };
  // encode() with control tokens allowed where allow_control(position, length) says so.
  template <typename AllowControl>
  std::vector<int32_t> encode_impl(std::string_view text, bool add_bos, AllowControl allow_control) const;

  std::vector<std::string> bytes_;  // [n_vocab] rendered bytes (control/unknown: stored text)
  std::array<std::vector<Special>, 256> specials_by_byte_;  // by first byte, longest text first
  std::vector<int32_t> eog_ids_;
  int32_t bos_id_, eos_id_, eot_id_, eom_id_, unk_id_, pad_id_;
  bool add_bos_, add_eos_;
};

// Turns a stream of token ids into text that is always complete, valid UTF-8: bytes of a character
// split across tokens are held back until it completes; bytes that can no longer form a valid
// character become U+FFFD (one per maximal invalid subpart, as Unicode recommends).
class TokenStreamDecoder {
 public:
  explicit TokenStreamDecoder(const Tokenizer& tokenizer, bool render_special = false)
      : tokenizer_(tokenizer), render_special_(render_special) {}

  std::string feed(int32_t id);  // text that became complete with this token
  std::string feed_bytes(std::string_view bytes);
  std::string flush();  // held bytes as U+FFFD; the decoder is then empty
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool render_special_;
  std::string pending_;  // < 4 bytes: a valid prefix of a UTF-8 sequence
};

}  // namespace bitnet
