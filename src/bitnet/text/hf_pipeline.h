// Hugging Face `tokenizers`' text pipeline around a BPE model, read from the objects tokenizer.json uses:
//
//   fragment (text between added tokens)
//     -> normalizer      NFC NFD NFKC NFKD Lowercase Strip StripAccents Prepend Replace, or a Sequence
//     -> pre_tokenizer   Split (string or regex; Isolated, Removed, MergedWithPrevious, MergedWithNext,
//                        Contiguous; invert), ByteLevel, Digits, Punctuation, Metaspace, Whitespace,
//                        WhitespaceSplit, or a Sequence of them
//     -> pieces          each encoded by the BPE model on its own (bpe_tokenizer.h)
//   token texts -> decoder  ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, or a Sequence
//
// Semantics follow the Rust library (tokenizers 0.22: normalizer.rs `split`, pre_tokenizers/*.rs,
// models/bpe/model.rs `merge_word`, decoders/*.rs). Regexes run on PCRE2 instead of Oniguruma; `\s` and
// `\S` are rewritten to Unicode White_Space (Oniguruma's; PCRE2's lacks U+0085), see translate_regex.
// Invalid UTF-8 (which HF never sees: its input is a Rust String) is passed through byte by byte:
// normalizers skip it, and each invalid byte is a match of its own for Split patterns.
//
// The pipeline is immutable after construction and safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

// The BPE model's options (tokenizer.json "model" minus vocab and merges).
struct BpeModelOptions {
  bool byte_fallback = false;             // a character that is no token becomes its <0xNN> byte tokens
  bool ignore_merges = false;             // a piece that is a whole token is emitted as is (LLaMA-3)
  bool fuse_unk = false;                  // consecutive unknown characters become one unk token
  std::string unk_token;                  // empty: unknown characters are dropped (as HF does without one)
  std::string continuing_subword_prefix;  // prefixed to every character but a piece's first
  std::string end_of_word_suffix;         // suffixed to a piece's last character
};

class TextPipeline {
 public:
  // From a JSON object with any of tokenizer.json's keys "normalizer", "pre_tokenizer", "decoder" and
  // "model" (its options; vocab and merges are ignored here). Throws bitnet::Error naming `source` and
  // the component on anything unsupported or malformed.
  static TextPipeline parse(std::string_view json_text, std::string_view source);

  // The pipeline llama.cpp means by a GGUF `tokenizer.ggml.pre` value for byte-level BPE ("" = key
  // absent, read as llama-bpe: the official BitNet GGUF has none). Throws on a name it does not know.
  static TextPipeline for_gguf_pre(std::string_view pre);
  // The llama.cpp pre name whose pipeline has this one's normalizer and pre_tokenizer (preferring one with the
  // same model options), or "". *exact: the model options are the same too, so the name alone reproduces
  // the pipeline.
  std::string gguf_pre_name(bool* exact = nullptr) const;
  // Names for_gguf_pre accepts, for messages.
  static std::string known_gguf_pre_names();

  TextPipeline(TextPipeline&&) noexcept;
  TextPipeline& operator=(TextPipeline&&) noexcept;
  ~TextPipeline();

  // Normalizes one fragment and splits it into the pieces the model encodes, appended to `pieces`.
  // `at_start`: the fragment begins the input (Metaspace's prepend_scheme "first").
  void split(std::string_view fragment, bool at_start, std::vector<std::string>& pieces) const;

  const BpeModelOptions& model() const;
  bool byte_level() const;  // a ByteLevel pre-tokenizer maps bytes to the GPT-2 alphabet

  // Decoding, per token: the bytes a stored token text stands for (ByteLevel, Replace, ByteFallback,
  // Metaspace, Strip before Fuse). decoded_strip_start(): characters `strip_char()` removed from the
  // start of a whole decoded text (Strip after Fuse; Metaspace removes the first token's spaces).
  std::string decode_token(std::string_view stored) const;
  int decoded_strip_start() const;
  char strip_char() const;

  std::string description() const;  // short, for `inspect` and notices: "Split(regex) + ByteLevel"

 private:
  struct Impl;
  explicit TextPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// An Oniguruma pattern (HF tokenizers' regex engine) as a PCRE2 pattern with the same matches for the
// constructs tokenizer.json files use: `\s` / `\S` become the Unicode White_Space set and its complement.
std::string translate_regex(std::string_view onig_pattern);

}  // namespace bitnet
