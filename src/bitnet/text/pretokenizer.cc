#include "bitnet/text/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <memory>
#include <new>
#include <string>

#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"

namespace bitnet {

// Original (tokenizer.json):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Below, WS = White_Space: \t \n \v \f \r, space, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029,
// U+202F, U+205F, U+3000.
#define BITNET_WS                                                                                            \
  "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{" \
  "3000}"
const char* const kLlama3PreTokenizerPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}{1,3}"
    "| ?[^" BITNET_WS
    "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" BITNET_WS
    "]*[\\r\\n]+"
    "|[" BITNET_WS "]+(?![^" BITNET_WS
    "])"
    "|[" BITNET_WS "]+";
#undef BITNET_WS

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(std::string_view pattern) : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("pre-tokenizer regex does not compile at offset {}: {}", err_offset, reinterpret_cast<char*>(msg));
  }
  // JIT is an optimisation only: without it (no JIT support built in) pcre2_match interprets.
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;

bool RegexSplitter::jit() const {
  return impl_->jit;
}

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  std::vector<std::pair<size_t, size_t>> matches;
  find_matches(text, true, matches);
  size_t done = 0;  // bytes already emitted as pieces
  for (const auto& [begin, end] : matches) {
    if (begin > done) pieces.push_back(text.substr(done, begin - done));  // gap: a piece of its own
    if (end > begin) pieces.push_back(text.substr(begin, end - begin));
    done = std::max(done, end);
  }
  if (done < text.size()) pieces.push_back(text.substr(done));
}

void RegexSplitter::find_matches(std::string_view text, bool invalid_as_matches,
                                 std::vector<std::pair<size_t, size_t>>& matches) const {
  // Maximal valid UTF-8 runs go to the regex; PCRE2 in UTF mode must not see invalid bytes.
  size_t run_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t len = utf8_sequence_length(text, i);
    if (len != 0) {
      i += len;
      continue;
    }
    if (i > run_start) find_valid(text.substr(run_start, i - run_start), run_start, matches);
    if (invalid_as_matches) matches.emplace_back(i, i + 1);
    run_start = ++i;
  }
  if (i > run_start) find_valid(text.substr(run_start, i - run_start), run_start, matches);
}

void RegexSplitter::find_valid(std::string_view text, size_t offset,
                               std::vector<std::pair<size_t, size_t>>& matches) const {
  const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(impl_->code, nullptr), &pcre2_match_data_free);
  if (md == nullptr) throw std::bad_alloc();
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  // As Rust onig's find_iter: an empty match where the previous match ended is skipped by searching
  // again one character further.
  size_t pos = 0;                            // where the next search starts
  size_t last_end = std::string_view::npos;  // end of the previous match
  uint32_t options = PCRE2_NO_UTF_CHECK;
  while (pos <= text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), pos, options, md.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && (options & PCRE2_NO_JIT) == 0) {
      // Very long runs can exhaust the 32 KiB JIT stack; the interpreter keeps its frames on the heap.
      options |= PCRE2_NO_JIT;
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("pre-tokenizer regex failed at byte {} of a {}-byte text: {}", pos, text.size(),
           reinterpret_cast<char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t start = ov[0], end = ov[1];
    if (start == end && end == last_end) {
      if (pos >= text.size()) break;
      pos += std::max<size_t>(1, utf8_sequence_length(text, pos));
      continue;
    }
    matches.emplace_back(offset + start, offset + end);
    pos = last_end = end;
  }
}

}  // namespace bitnet
