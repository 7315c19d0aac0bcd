// Regex pre-tokenizer: splits text into pieces that BPE then encodes independently. HF "Split" with
// behavior "Isolated": every match is a piece, and so is every gap between matches.
#pragma once

#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace bitnet {

// The LLaMA-3 pattern (BITNET_FORMATS.md §6), as a PCRE2 pattern that behaves like the Oniguruma
// engine HF tokenizers uses: `(?i:...)` kept (PCRE2 in UCP mode folds case like Oniguruma, e.g. "'ſ"
// matches `'s`), and \s / \S spelled out as the Unicode White_Space set, which Oniguruma uses and
// PCRE2's own \s lacks one member of (U+0085 NEL).
extern const char* const kLlama3PreTokenizerPattern;

class RegexSplitter {
 public:
  // Compiles `pattern` in UTF + UCP mode with JIT when available. Throws bitnet::Error if it does not
  // compile (names the offset).
  explicit RegexSplitter(std::string_view pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of `text` (views into it, in order, covering it exactly) to `pieces`. Text may be
  // invalid UTF-8: the regex runs on each maximal valid run, and each invalid byte is a piece of its own.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

  // Appends the [begin, end) byte ranges of the matches in `text`, in order (Oniguruma's find_iter: after an
  // empty match the search resumes one character later). Invalid UTF-8 bytes are never handed to the
  // regex; with invalid_as_matches each one is reported as a one-byte match, else it lies in a gap.
  void find_matches(std::string_view text, bool invalid_as_matches,
                    std::vector<std::pair<size_t, size_t>>& matches) const;

  bool jit() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;

  void find_valid(std::string_view text, size_t offset, std::vector<std::pair<size_t, size_t>>& matches) const;
};

}  // namespace bitnet
