#include "bitnet/base/utf8.h"

#include <fmt/format.h>

namespace bitnet {

size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const size_t n = s.size() - i;
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

size_t utf8_first_invalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8_sequence_length(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

uint32_t utf8_decode(std::string_view s, size_t i, size_t len) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  if (len == 1) return c;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  return cp;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string escape_for_message(std::string_view s, size_t max_chars) {
  std::string out;
  size_t shown = 0;
  for (size_t i = 0; i < s.size() && shown < max_chars; ++shown) {
    size_t len = utf8_sequence_length(s, i);
    const uint8_t c = static_cast<uint8_t>(s[i]);
    if (len == 0 || (len == 1 && (c < 0x20 || c == 0x7F || c == '\\'))) {
      out += c == '\\' ? std::string("\\\\") : fmt::format("\\x{:02x}", c);
      i += 1;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  if (shown == max_chars && out.size() < s.size()) out += "...";
  return out;
}

}  // namespace bitnet
