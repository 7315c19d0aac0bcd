#include "bitnet/format/dequant.h"

#include <cassert>
#include <cstring>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/format/ternary.h"

namespace bitnet {

namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Q8_0: {fp16 d, int8 qs[32]}.
void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = fp16_to_f32(load_u16(b));
  for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[2 + j]));
}

// Q4_0: {fp16 d, uint8 qs[16]}; element j in the low nibble of qs[j], element j+16 in the high one, minus 8.
void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = fp16_to_f32(load_u16(b));
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((b[2 + j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>((b[2 + j] >> 4) - 8);
  }
}

// Q6_K: {uint8 ql[128], uint8 qh[64], int8 scales[16], fp16 d}; 6-bit values minus 32, 16 sub-blocks of 16.
void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = fp16_to_f32(load_u16(b + 208));
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is + 0] * static_cast<float>(q1);
      y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
      y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
      y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

template <typename BlockFn>
void per_block(const uint8_t* data, uint64_t start, uint64_t count, uint32_t block, uint32_t bytes, float* dst,
               BlockFn fn) {
  for (uint64_t e = 0; e < count; e += block) fn(data + (start + e) / block * bytes, dst + e);
}

}  // namespace

void dequantize(TensorType type, const uint8_t* data, uint64_t n_total, uint64_t start, uint64_t count, float* dst) {
  const TypeTraits& tr = type_traits(type);
  assert(start % tr.block_size == 0 && count % tr.block_size == 0 && start + count <= n_total);
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, data + start * 4, count * 4);
      return;
    case TensorType::F16:
      for (uint64_t i = 0; i < count; ++i) dst[i] = fp16_to_f32(load_u16(data + (start + i) * 2));
      return;
    case TensorType::BF16:
      for (uint64_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(load_u16(data + (start + i) * 2));
      return;
    case TensorType::Q8_0: per_block(data, start, count, 32, 34, dst, dequant_q8_0); return;
    case TensorType::Q4_0: per_block(data, start, count, 32, 18, dst, dequant_q4_0); return;
    case TensorType::Q6_K: per_block(data, start, count, 256, 210, dst, dequant_q6_k); return;
    case TensorType::TQ2_0:
    case TensorType::TQ1_0: {
      const uint32_t bytes = tr.block_bytes;
      per_block(data, start, count, 256, bytes, dst, [&](const uint8_t* b, float* y) {
        int8_t w[256];
        (type == TensorType::TQ2_0 ? tq2_decode_block : tq1_decode_block)(b, w);
        const float d = fp16_to_f32(tq_block_scale(b, bytes));
        for (int j = 0; j < 256; ++j) y[j] = static_cast<float>(w[j]) * d;
      });
      return;
    }
    case TensorType::I2_S: {
      const float s = i2s_scale(data, n_total);
      per_block(data, start, count, 128, 32, dst, [&](const uint8_t* b, float* y) {
        int8_t w[128];
        i2s_decode(b, 128, w);
        for (int j = 0; j < 128; ++j) y[j] = static_cast<float>(w[j]) * s;
      });
      return;
    }
    default:
      fail("cannot dequantize tensors of type {}", tr.name);
  }
}

}  // namespace bitnet
