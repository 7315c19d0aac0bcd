#include "bitnet/format/ternary.h"

#include <cstring>

namespace bitnet {

void i2s_encode(const int8_t* w, uint64_t n, float scale, uint8_t* dst) {
  for (uint64_t b = 0; b < n / kI2sBlock; ++b) {
    const int8_t* x = w + b * kI2sBlock;
    uint8_t* out = dst + b * kI2sBlockBytes;
    for (int p = 0; p < 32; ++p) {
      out[p] = static_cast<uint8_t>((x[p] + 1) << 6 | (x[32 + p] + 1) << 4 | (x[64 + p] + 1) << 2 | (x[96 + p] + 1));
    }
  }
  std::memcpy(dst + n / 4, &scale, 4);
  std::memset(dst + n / 4 + 4, 0, 28);
}

void i2s_decode(const uint8_t* src, uint64_t n, int8_t* w) {
  for (uint64_t b = 0; b < n / kI2sBlock; ++b) {
    const uint8_t* in = src + b * kI2sBlockBytes;
    int8_t* x = w + b * kI2sBlock;
    for (int j = 0; j < 128; ++j) x[j] = static_cast<int8_t>(((in[j % 32] >> (6 - 2 * (j / 32))) & 3) - 1);
  }
}

float i2s_scale(const uint8_t* src, uint64_t n) {
  float s;
  std::memcpy(&s, src + n / 4, 4);
  return s;
}

void i2s_histogram(const uint8_t* src, uint64_t n, CodeHistogram& h) {
  // Each byte holds four codes; code c maps to bin (c == 0 ? -1 : c == 1 ? 0 : c == 2 ? +1 : invalid).
  for (uint64_t i = 0; i < n / 4; ++i) {
    const uint8_t b = src[i];
    ++h[b >> 6];
    ++h[(b >> 4) & 3];
    ++h[(b >> 2) & 3];
    ++h[b & 3];
  }
}

void tq2_encode_block(const int8_t* w, uint16_t d, uint8_t* dst) {
  for (int h = 0; h < 2; ++h)
    for (int m = 0; m < 32; ++m) {
      uint8_t byte = 0;
      for (int k = 0; k < 4; ++k) byte |= static_cast<uint8_t>((w[h * 128 + k * 32 + m] + 1) << (2 * k));
      dst[h * 32 + m] = byte;
    }
  std::memcpy(dst + 64, &d, 2);
}

void tq2_decode_block(const uint8_t* src, int8_t* w) {
  for (int h = 0; h < 2; ++h)
    for (int m = 0; m < 32; ++m)
      for (int k = 0; k < 4; ++k) w[h * 128 + k * 32 + m] = static_cast<int8_t>(((src[h * 32 + m] >> (2 * k)) & 3) - 1);
}

void tq2_histogram_block(const uint8_t* src, CodeHistogram& h) {
  for (int i = 0; i < 64; ++i)
    for (int k = 0; k < 4; ++k) ++h[(src[i] >> (2 * k)) & 3];
}

namespace {

constexpr uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};

// Pack `count` trits (values 0..2, first most significant) into a byte: ceil(v * 256 / 243), where v is
// scaled to five trits (qh bytes hold four and are multiplied by 3 first).
uint8_t pack_trits(const int8_t* t, int count, int stride) {
  uint32_t v = 0;
  for (int i = 0; i < count; ++i) v = v * 3 + static_cast<uint32_t>(t[i * stride] + 1);
  for (int i = count; i < 5; ++i) v *= 3;
  return static_cast<uint8_t>((v * 256 + 242) / 243);
}

int8_t trit_at(uint8_t byte, int i) {
  const uint8_t q = static_cast<uint8_t>(byte * kPow3[i]);  // wraps mod 256 by design
  return static_cast<int8_t>((static_cast<uint16_t>(q) * 3) >> 8);
}

// Run f(byte_index, element_index_of_trit0, stride, trits_in_byte) over the TQ1_0 block layout.
template <typename F>
void tq1_layout(F f) {
  for (int m = 0; m < 32; ++m) f(m, m, 32, 5);             // qs[0..31]: elements n*32+m
  for (int m = 0; m < 16; ++m) f(32 + m, 160 + m, 16, 5);  // qs[32..47]: elements 160+n*16+m
  for (int j = 0; j < 4; ++j) f(48 + j, 240 + j, 4, 4);    // qh[0..3]: elements 240+n*4+j
}

}  // namespace

void tq1_encode_block(const int8_t* w, uint16_t d, uint8_t* dst) {
  tq1_layout([&](int byte, int first, int stride, int count) { dst[byte] = pack_trits(w + first, count, stride); });
  std::memcpy(dst + 52, &d, 2);
}

void tq1_decode_block(const uint8_t* src, int8_t* w) {
  tq1_layout([&](int byte, int first, int stride, int count) {
    for (int i = 0; i < count; ++i) w[first + i * stride] = static_cast<int8_t>(trit_at(src[byte], i) - 1);
  });
}

void tq1_histogram_block(const uint8_t* src, CodeHistogram& h) {
  tq1_layout([&](int byte, int, int, int count) {
    int8_t t[5];
    for (int i = 0; i < count; ++i) {
      t[i] = static_cast<int8_t>(trit_at(src[byte], i) - 1);
      ++h[t[i] + 1];
    }
    if (pack_trits(t, count, 1) != src[byte]) ++h[3];  // a byte no encoder writes
  });
}

uint16_t tq_block_scale(const uint8_t* block, uint64_t block_bytes) {
  uint16_t d;
  std::memcpy(&d, block + block_bytes - 2, 2);
  return d;
}

}  // namespace bitnet
