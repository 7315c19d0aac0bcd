// Ternary codecs against the layouts written out in BITNET_FORMATS.md §1.4 and §2, element by element.
#include <gtest/gtest.h>

#include <random>

#include "bitnet/base/fp16.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/ternary.h"

namespace bitnet {
namespace {

std::vector<int8_t> random_ternary(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int8_t> w(n);
  for (auto& x : w) x = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  return w;
}

// I2_S: element j of block b sits in byte 32*b + j%32 at bits (6 - 2*(j/32)); codes 0,1,2 = -1,0,+1.
TEST(I2s, LayoutMatchesSpecElementByElement) {
  const uint64_t n = 256;
  const auto w = random_ternary(n, 1);
  std::vector<uint8_t> bytes(n / 4 + 32);
  i2s_encode(w.data(), n, 1.5f, bytes.data());
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t b = i / 128, j = i % 128;
    const int code = (bytes[32 * b + j % 32] >> (6 - 2 * (j / 32))) & 3;
    ASSERT_EQ(code - 1, w[i]) << i;
  }
  float s;
  std::memcpy(&s, bytes.data() + n / 4, 4);
  EXPECT_EQ(s, 1.5f);
  for (size_t k = n / 4 + 4; k < bytes.size(); ++k) EXPECT_EQ(bytes[k], 0);
  std::vector<int8_t> back(n);
  i2s_decode(bytes.data(), n, back.data());
  EXPECT_EQ(back, w);
}

TEST(I2s, SingleElementPositions) {
  // Element 33 of block 0 is byte 1, bits 5:4.
  std::vector<int8_t> w(128, 0);
  w[33] = 1;
  std::vector<uint8_t> bytes(64);
  i2s_encode(w.data(), 128, 1.0f, bytes.data());
  for (int p = 0; p < 32; ++p) EXPECT_EQ(bytes[p], p == 1 ? 0x55 + 0x10 : 0x55) << p;  // 0x55 = four zero codes
}

TEST(I2s, HistogramCountsInvalidCode) {
  std::vector<uint8_t> bytes(32 + 32, 0x55);
  bytes[0] = 0xFF;  // four code-3 values
  bytes[1] = 0x00;  // four -1
  bytes[2] = 0xAA;  // four +1
  CodeHistogram h{};
  i2s_histogram(bytes.data(), 128, h);
  EXPECT_EQ(h[0], 4u);
  EXPECT_EQ(h[1], 116u);
  EXPECT_EQ(h[2], 4u);
  EXPECT_EQ(h[3], 4u);
}

// TQ2_0: element h*128 + k*32 + m of a block is in qs[h*32+m] bits 2k+1:2k; fp16 d last.
TEST(Tq2, LayoutMatchesSpec) {
  const auto w = random_ternary(256, 2);
  uint8_t blk[66];
  const uint16_t d = f32_to_fp16(1.25f);
  tq2_encode_block(w.data(), d, blk);
  for (int i = 0; i < 256; ++i) {
    const int h = i / 128, k = (i % 128) / 32, m = i % 32;
    ASSERT_EQ(((blk[h * 32 + m] >> (2 * k)) & 3) - 1, w[i]) << i;
  }
  EXPECT_EQ(tq_block_scale(blk, 66), d);
  int8_t back[256];
  tq2_decode_block(blk, back);
  EXPECT_EQ(std::vector<int8_t>(back, back + 256), w);
}

// TQ1_0: base-3 digits, first most significant, stored as ceil(v*256/243); decoded with the wrapping
// multiply of ggml (q = byte * 3^i mod 256, trit = q*3 >> 8).
TEST(Tq1, KnownBytesAndRoundTrip) {
  std::vector<int8_t> minus(256, -1), plus(256, 1);
  uint8_t blk[54];
  tq1_encode_block(minus.data(), 0, blk);
  for (int i = 0; i < 52; ++i) EXPECT_EQ(blk[i], 0) << i;
  tq1_encode_block(plus.data(), 0, blk);
  for (int i = 0; i < 48; ++i) EXPECT_EQ(blk[i], 255) << i;       // v = 242 -> 255
  for (int i = 48; i < 52; ++i) EXPECT_EQ(blk[i], 253) << i;      // v = 80*3 = 240 -> ceil(240*256/243) = 253
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const auto w = random_ternary(256, seed);
    tq1_encode_block(w.data(), f32_to_fp16(0.5f), blk);
    int8_t back[256];
    tq1_decode_block(blk, back);
    ASSERT_EQ(std::vector<int8_t>(back, back + 256), w) << seed;
    CodeHistogram h{};
    tq1_histogram_block(blk, h);
    EXPECT_EQ(h[3], 0u);  // our bytes are canonical
    EXPECT_EQ(h[0] + h[1] + h[2], 256u);
  }
}

TEST(Tq1, ElementOrder) {
  // Element 160 + n*16 + m lives in qs[32+m], trit n; element 240 + n*4 + j in qh[j], trit n.
  std::vector<int8_t> w(256, -1);
  w[160 + 2 * 16 + 5] = 1;  // qs[37], trit 2 -> v = 2*9 = 18
  w[240 + 3 * 4 + 1] = 0;   // qh[1], trit 3 -> v = 1*3 (scaled by 3) = 3
  uint8_t blk[54];
  tq1_encode_block(w.data(), 0, blk);
  EXPECT_EQ(blk[37], (18 * 256 + 242) / 243);
  EXPECT_EQ(blk[49], (3 * 256 + 242) / 243);
}

TEST(Dequant, TernaryTypesAgree) {
  const uint64_t n = 512;
  const auto w = random_ternary(n, 9);
  const float scale = fp16_to_f32(f32_to_fp16(1.37f));
  std::vector<uint8_t> i2(n / 4 + 32), t2(n / 256 * 66), t1(n / 256 * 54);
  i2s_encode(w.data(), n, scale, i2.data());
  for (uint64_t b = 0; b < n / 256; ++b) {
    tq2_encode_block(w.data() + 256 * b, f32_to_fp16(scale), t2.data() + 66 * b);
    tq1_encode_block(w.data() + 256 * b, f32_to_fp16(scale), t1.data() + 54 * b);
  }
  std::vector<float> a(n), b(n), c(n);
  dequantize(TensorType::I2_S, i2.data(), n, 0, n, a.data());
  dequantize(TensorType::TQ2_0, t2.data(), n, 0, n, b.data());
  dequantize(TensorType::TQ1_0, t1.data(), n, 0, n, c.data());
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(a[i], w[i] * scale);
    ASSERT_EQ(b[i], a[i]);
    ASSERT_EQ(c[i], a[i]);
  }
  // A range in the middle (start and count multiples of the block size).
  std::vector<float> part(128);
  dequantize(TensorType::I2_S, i2.data(), n, 256, 128, part.data());
  for (int i = 0; i < 128; ++i) EXPECT_EQ(part[i], a[256 + i]);
}

TEST(Dequant, Q8_0AndQ4_0) {
  uint8_t q8[34];
  const uint16_t d = f32_to_fp16(0.5f);
  std::memcpy(q8, &d, 2);
  for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  float y[32];
  dequantize(TensorType::Q8_0, q8, 32, 0, 32, y);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * (j - 16));
  uint8_t q4[18];
  std::memcpy(q4, &d, 2);
  for (int j = 0; j < 16; ++j) q4[2 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  dequantize(TensorType::Q4_0, q4, 32, 0, 32, y);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * (j - 8));
    EXPECT_EQ(y[j + 16], 0.5f * (15 - j - 8));
  }
}

}  // namespace
}  // namespace bitnet
