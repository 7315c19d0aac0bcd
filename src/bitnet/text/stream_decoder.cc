// TokenStreamDecoder: incremental UTF-8 repair of token bytes.
#include "bitnet/text/tokenizer.h"

namespace bitnet {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

enum class Scan { kComplete, kIncomplete, kInvalid };

// Classifies the bytes starting at s[i] using the well-formed ranges of Unicode Table 3-7.
// kComplete: a valid character of `len` bytes. kIncomplete: a valid prefix that runs to the end of s.
// kInvalid: `len` bytes form the maximal ill-formed subpart (replaced by one U+FFFD).
Scan scan_utf8(std::string_view s, size_t i, size_t& len) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  len = 1;
  if (c < 0x80) return Scan::kComplete;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte; later bytes are 80..BF
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2, lo = 0xA0;
  } else if (c == 0xED) {
    need = 2, hi = 0x9F;  // no surrogates
  } else if (c >= 0xE1 && c <= 0xEF) {
    need = 2;
  } else if (c == 0xF0) {
    need = 3, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3, hi = 0x8F;  // max U+10FFFF
  } else {
    return Scan::kInvalid;  // 80..C1, F5..FF never start a character
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return Scan::kIncomplete;
    const uint8_t b = static_cast<uint8_t>(s[i + k]);
    if (b < lo || b > hi) {
      len = k;
      return Scan::kInvalid;
    }
    lo = 0x80, hi = 0xBF;
  }
  len = need + 1;
  return Scan::kComplete;
}

}  // namespace

std::string TokenStreamDecoder::feed(int32_t id) {
  return feed_bytes(tokenizer_.token_bytes(id, render_special_));
}

std::string TokenStreamDecoder::feed_bytes(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    size_t len;
    const Scan r = scan_utf8(pending_, i, len);
    if (r == Scan::kIncomplete) break;
    if (r == Scan::kComplete) {
      out.append(pending_, i, len);
    } else {
      out.append(kReplacement);
    }
    i += len;
  }
  pending_.erase(0, i);
  return out;
}

std::string TokenStreamDecoder::flush() {
  std::string out = pending_.empty() ? std::string() : std::string(kReplacement);
  pending_.clear();
  return out;
}

}  // namespace bitnet
