#include "bitnet/format/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"

namespace bitnet {

namespace {

void put_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

void q8_0_block(const float* x, uint8_t* out) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
  put_u16(out, f32_to_fp16(d));
  for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[j] * id)));
}

// Element e (0..255) of a Q6_K block: half h = e/128; within it j = (e%128)/32 picks the nibble/bit
// pair, l = e%32 the byte; sub-block scale index = 8h + 2j + l/16.
void q6_k_block(const float* x, uint8_t* out) {
  uint8_t* ql = out;
  uint8_t* qh = out + 128;
  int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
  std::memset(out, 0, 210);
  float sub[16];
  float dmax = 0;
  for (int s = 0; s < 16; ++s) {
    const int h = s / 8, j = (s % 8) / 2, half16 = s % 2;
    float amax = 0;
    for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[128 * h + 32 * j + 16 * half16 + i]));
    sub[s] = amax / 31.0f;
    dmax = std::max(dmax, sub[s]);
  }
  const float d = dmax / 127.0f;
  const float dh = fp16_to_f32(f32_to_fp16(d));
  put_u16(out + 208, f32_to_fp16(d));
  for (int s = 0; s < 16; ++s) {
    const int h = s / 8, j = (s % 8) / 2, half16 = s % 2;
    const int scale = dh > 0 ? std::clamp(static_cast<int>(std::lround(sub[s] / dh)), 0, 127) : 0;
    sc[8 * h + 2 * j + half16] = static_cast<int8_t>(scale);
    const float step = dh * static_cast<float>(scale);
    for (int i = 0; i < 16; ++i) {
      const int l = 16 * half16 + i;
      const float v = x[128 * h + 32 * j + l];
      const int q = step > 0 ? std::clamp(static_cast<int>(std::lround(v / step)), -32, 31) + 32 : 32;
      uint8_t& lo = ql[64 * h + l + (j % 2) * 32];
      lo |= static_cast<uint8_t>((q & 0xF) << (j >= 2 ? 4 : 0));
      qh[32 * h + l] |= static_cast<uint8_t>(((q >> 4) & 3) << (2 * j));
    }
  }
}

}  // namespace

bool can_quantize(TensorType t) {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16 || t == TensorType::Q8_0 ||
         t == TensorType::Q6_K;
}

void quantize_row(TensorType type, const float* x, uint64_t n, uint8_t* dst) {
  switch (type) {
    case TensorType::F32: std::memcpy(dst, x, n * 4); return;
    case TensorType::F16:
      for (uint64_t i = 0; i < n; ++i) put_u16(dst + 2 * i, f32_to_fp16(x[i]));
      return;
    case TensorType::BF16:
      for (uint64_t i = 0; i < n; ++i) put_u16(dst + 2 * i, f32_to_bf16(x[i]));
      return;
    case TensorType::Q8_0:
      for (uint64_t b = 0; b < n / 32; ++b) q8_0_block(x + 32 * b, dst + 34 * b);
      return;
    case TensorType::Q6_K:
      for (uint64_t b = 0; b < n / 256; ++b) q6_k_block(x + 256 * b, dst + 210 * b);
      return;
    default: fail("cannot quantize to {}", type_traits(type).name);
  }
}

}  // namespace bitnet
