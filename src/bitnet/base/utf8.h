// UTF-8 validation and code-point iteration (RFC 3629: no overlongs, no surrogates, max U+10FFFF).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace bitnet {

// Length in bytes of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid or truncated.
size_t utf8_sequence_length(std::string_view s, size_t i);

// Byte offset of the first invalid sequence, or npos when the whole string is valid.
size_t utf8_first_invalid(std::string_view s);
inline bool utf8_valid(std::string_view s) { return utf8_first_invalid(s) == std::string_view::npos; }

// Decode one valid sequence at s[i] (check with utf8_sequence_length first).
uint32_t utf8_decode(std::string_view s, size_t i, size_t len);
void utf8_append(std::string& out, uint32_t cp);

// Printable form for error messages: invalid bytes and control characters as \xNN.
std::string escape_for_message(std::string_view s, size_t max_chars = 80);

}  // namespace bitnet
