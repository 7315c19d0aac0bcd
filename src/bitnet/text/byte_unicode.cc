#include "bitnet/text/byte_unicode.h"

#include <array>

#include "bitnet/base/utf8.h"

namespace bitnet {
namespace {

struct Alphabet {
  std::array<uint32_t, 256> cp_of_byte;       // byte -> code point
  std::array<int16_t, 324> byte_of_cp;        // code point (< 256 + 68) -> byte, -1 if unused
  std::array<std::array<char, 2>, 256> utf8;  // UTF-8 of cp_of_byte (all code points < U+0800)
  std::array<uint8_t, 256> utf8_len;

  Alphabet() {
    byte_of_cp.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      cp_of_byte[b] = cp;
      byte_of_cp[cp] = static_cast<int16_t>(b);
      std::string s;
      utf8_append(s, cp);
      utf8_len[b] = static_cast<uint8_t>(s.size());
      utf8[b] = {s[0], s.size() > 1 ? s[1] : '\0'};
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) {
  return alphabet().cp_of_byte[b];
}

int byte_from_unicode(uint32_t cp) {
  return cp < 324 ? alphabet().byte_of_cp[cp] : -1;
}

void append_byte_level(std::string_view bytes, std::string& out) {
  const Alphabet& a = alphabet();
  for (char c : bytes) {
    const uint8_t b = static_cast<uint8_t>(c);
    out.append(a.utf8[b].data(), a.utf8_len[b]);
  }
}

std::string decode_byte_level(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence_length(text, i);
    if (len == 0) {
      out += text[i++];
      continue;
    }
    const int b = byte_from_unicode(utf8_decode(text, i, len));
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace bitnet
