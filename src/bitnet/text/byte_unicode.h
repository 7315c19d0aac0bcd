// The GPT-2 byte <-> unicode alphabet of byte-level BPE: every byte value gets a printable code point
// so that token texts are valid UTF-8. Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to themselves;
// the other 68 (controls, space, 0x7F-0xA0, 0xAD) map to U+0100.. in byte order (space -> 'Ġ' U+0120).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bitnet {

// Code point that stands for byte `b`.
uint32_t byte_to_unicode(uint8_t b);

// Byte for a code point of the alphabet, or -1 if `cp` is not in it.
int byte_from_unicode(uint32_t cp);

// Appends the alphabet form of `bytes` (1 or 2 UTF-8 bytes per input byte) to `out`.
void append_byte_level(std::string_view bytes, std::string& out);

// Inverse of append_byte_level. Code points outside the alphabet (which a well-formed vocabulary
// does not contain) and invalid UTF-8 are copied through unchanged.
std::string decode_byte_level(std::string_view text);

}  // namespace bitnet
