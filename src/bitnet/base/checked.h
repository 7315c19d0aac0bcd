// Overflow-checked arithmetic for sizes read from untrusted files. Each returns false on overflow and
// leaves *out unspecified, so callers can report the field that overflowed.
#pragma once

#include <cstdint>

namespace bitnet {

inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

// Round x up to a multiple of `align` (a power of two); false on overflow.
inline bool checked_align_up(uint64_t x, uint64_t align, uint64_t* out) {
  uint64_t t;
  if (!checked_add(x, align - 1, &t)) return false;
  *out = t & ~(align - 1);
  return true;
}

inline bool is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

}  // namespace bitnet
