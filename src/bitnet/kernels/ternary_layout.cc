// Ternary weight layouts (kernels.h): packing from the file's I2_S layout, done once at load time.
#include <cstring>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/kernels/kernels.h"

namespace bitnet::kernels {

namespace {

int64_t panel_rows(TernaryLayout layout) { return layout == TernaryLayout::Panel8 ? 8 : 16; }

// Codes 0..3 of one I2_S row, natural order.
void decode_i2s_row(const uint8_t* row, int64_t K, uint8_t* codes) {
  for (int64_t b = 0; b < K / 128; ++b)
    for (int g = 0; g < 4; ++g)
      for (int i = 0; i < 32; ++i) codes[128 * b + 32 * g + i] = (row[32 * b + i] >> (6 - 2 * g)) & 3;
}

// Panels of R rows (Panel16, Panel8): panel p at p*R*K/4 bytes, steps of 4R bytes.
void pack_panels(int64_t R, const uint8_t* i2s, int64_t M, int64_t K, int64_t m0, int64_t m1, uint8_t* out) {
  if (K % 128 != 0) fail("pack_ternary: K = {} is not a multiple of 128 (I2_S)", K);
  std::vector<uint8_t> codes(static_cast<size_t>(K));
  const int64_t steps = K / 16;
  for (int64_t p = m0 / R; p * R < m1; ++p) {
    uint8_t* panel = out + p * R * (K / 4);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t m = p * R + r;
      if (m < M) decode_i2s_row(i2s + m * (K / 4), K, codes.data());
      else std::memset(codes.data(), 1, codes.size());  // padding rows: weight 0
      for (int64_t s = 0; s < steps; ++s) {
        // Byte kk of the row's 4 bytes: elements 16s + 4j + kk (j = 0..3) at bits 2j.
        uint32_t word = 0;
        for (int j = 0; j < 4; ++j) {
          uint32_t four;
          std::memcpy(&four, &codes[16 * s + 4 * j], 4);  // 4 elements, one per byte, each < 4
          word |= four << (2 * j);
        }
        std::memcpy(panel + 4 * R * s + 4 * r, &word, 4);  // little-endian: byte kk = element kk
      }
    }
  }
}

}  // namespace

bool ternary_layout_fits(TernaryLayout, int64_t K) {
  return K % 128 == 0;  // every layout is packed from I2_S rows (the panels themselves need K % 16 == 0)
}

size_t ternary_layout_bytes(TernaryLayout layout, int64_t M, int64_t K) {
  if (layout == TernaryLayout::I2S) return static_cast<size_t>(M) * static_cast<size_t>(K / 4);
  const int64_t R = panel_rows(layout);
  return static_cast<size_t>((M + R - 1) / R) * static_cast<size_t>(R * (K / 4));
}

void pack_ternary(TernaryLayout layout, const uint8_t* i2s, int64_t M, int64_t K, int64_t m0, int64_t m1,
                  uint8_t* out) {
  if (layout == TernaryLayout::I2S) {
    std::memcpy(out + m0 * (K / 4), i2s + m0 * (K / 4), static_cast<size_t>((m1 - m0) * (K / 4)));
    return;
  }
  pack_panels(panel_rows(layout), i2s, M, K, m0, m1, out);
}

}  // namespace bitnet::kernels
