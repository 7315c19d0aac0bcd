#include "bitnet/convert/ternary_tensor.h"

#include <algorithm>
#include <cstring>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/quantize.h"
#include "bitnet/format/ternary.h"

namespace bitnet {

namespace {

bool fp16_exact(float s) { return fp16_to_f32(f32_to_fp16(s)) == s; }

void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// The per-tensor scale when every block holding a non-zero code has the same d; the first such block with
// another d goes to *bad (SIZE_MAX when they agree).
float common_block_scale(const TernaryTensor& t, uint64_t* bad, uint64_t* first) {
  *bad = *first = UINT64_MAX;
  for (uint64_t b = 0; b < t.block_d.size(); ++b) {
    const int8_t* c = t.codes.data() + b * kQK;
    if (std::all_of(c, c + kQK, [](int8_t x) { return x == 0; })) continue;
    if (*first == UINT64_MAX) *first = b;
    else if (t.block_d[b] != t.block_d[*first]) {
      *bad = b;
      break;
    }
  }
  return fp16_to_f32(t.block_d[*first == UINT64_MAX ? 0 : *first]);
}

// fp16 bits of the per-tensor scale, checking exactness.
uint16_t fp16_scale(const TernaryTensor& t, bool allow_rounding, TensorType type) {
  if (!(t.scale > 0) || !std::isfinite(t.scale))
    fail("tensor '{}': scale {} is not a finite positive number", t.name, t.scale);
  const uint16_t d = f32_to_fp16(t.scale);
  if (fp16_to_f32(d) != t.scale && !allow_rounding)
    fail("tensor '{}': the float32 scale {:.9g} is not an fp16 value, and {} stores fp16 scales (nearest: {:.9g}, "
         "relative change {:.2g}); pass --round-scales to accept that change", t.name, t.scale,
         type_traits(type).name, fp16_to_f32(d), std::fabs(fp16_to_f32(d) - t.scale) / t.scale);
  if (!std::isfinite(fp16_to_f32(d)) || d == 0)
    fail("tensor '{}': scale {:.9g} is outside the fp16 range that {} stores", t.name, t.scale, type_traits(type).name);
  return d;
}

}  // namespace

TensorType linear_type_from_name(const std::string& name) {
  const auto t = type_from_name(name);
  if (!t || !(*t == TensorType::I2_S || *t == TensorType::TQ2_0 || *t == TensorType::TQ1_0 || *t == TensorType::F16 ||
              *t == TensorType::F32))
    fail("--type '{}' is not a ternary weight type (i2_s, tq2_0, tq1_0, f16, f32)", name);
  return *t;
}

TensorType embedding_type_from_name(const std::string& name) {
  const auto t = type_from_name(name);
  if (!t || !(*t == TensorType::F16 || *t == TensorType::F32 || *t == TensorType::Q8_0))
    fail("--embedding-type '{}' is not one of f16, f32, q8_0", name);
  return *t;
}

TensorType output_type_from_name(const std::string& name) {
  const auto t = type_from_name(name);
  if (!t || !(*t == TensorType::F16 || *t == TensorType::F32 || *t == TensorType::Q8_0 || *t == TensorType::Q6_K))
    fail("--output-type '{}' is not one of f16, f32, q8_0, q6_k", name);
  return *t;
}

uint32_t file_type_of(TensorType t) {
  switch (t) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::TQ1_0: return 36;
    case TensorType::TQ2_0: return 37;
    case TensorType::I2_S: return 40;
    default: fail("no general.file_type for {}", type_traits(t).name);
  }
}

double absmean_scale(double sum_abs, uint64_t n, const std::string& name) {
  if (!std::isfinite(sum_abs)) fail("tensor '{}': the master weights hold NaN or infinite values", name);
  return std::max(n ? sum_abs / static_cast<double>(n) : 0.0, 1e-5);
}

TernaryTensor ternary_from_gguf(const GgufTensorInfo& info) {
  TernaryTensor t;
  t.name = info.name;
  if (info.n_dims != 2) fail("tensor '{}': a linear weight must be 2-D, got {}", info.name, info.shape_string());
  t.cols = info.ne[0];
  t.rows = info.ne[1];
  const uint64_t n = t.n();
  t.codes.resize(n);
  auto check_codes = [&](uint64_t start, uint64_t count, uint64_t byte_base, uint64_t bytes_per_block, uint64_t blk) {
    for (uint64_t i = start; i < start + count; ++i)
      if (t.codes[i] > 1)
        fail("tensor '{}': invalid 2-bit code 3 for element {} (byte {} of the tensor data)", info.name, i,
             byte_base + (i - start) / blk * bytes_per_block);
  };
  switch (info.type) {
    case TensorType::I2_S:
      i2s_decode(info.data, n, t.codes.data());
      check_codes(0, n, 0, kI2sBlockBytes, kI2sBlock);
      t.scale = i2s_scale(info.data, n);
      return t;
    case TensorType::TQ2_0:
    case TensorType::TQ1_0: {
      const bool tq2 = info.type == TensorType::TQ2_0;
      const uint64_t bb = tq2 ? kTq2BlockBytes : kTq1BlockBytes;
      t.per_block = true;
      t.block_d.resize(n / kQK);
      for (uint64_t b = 0; b < n / kQK; ++b) {
        const uint8_t* src = info.data + b * bb;
        if (tq2) {
          tq2_decode_block(src, t.codes.data() + b * kQK);
          check_codes(b * kQK, kQK, b * bb, bb, kQK);
        } else {
          CodeHistogram h{};
          tq1_histogram_block(src, h);
          if (h[3] != 0) fail("tensor '{}': non-canonical TQ1_0 bytes in block {} (byte {})", info.name, b, b * bb);
          tq1_decode_block(src, t.codes.data() + b * kQK);
        }
        t.block_d[b] = tq_block_scale(src, bb);
      }
      return t;
    }
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16: {
      // Blocks of 256 (the whole tensor when n is not a multiple): values must be 0 or +-d_block.
      const uint64_t blk = n % kQK == 0 ? kQK : n;
      std::vector<float> x(blk);
      std::vector<float> d(n / blk);
      for (uint64_t b = 0; b < n / blk; ++b) {
        dequantize(info.type, info.data, n, b * blk, blk, x.data());
        float m = 0;
        for (float v : x) m = std::max(m, std::fabs(v));
        for (uint64_t i = 0; i < blk; ++i) {
          const float v = x[i];
          if (v != 0 && v != m && v != -m)
            fail("tensor '{}': element {} is {:.9g}, but ternary weights in its {}-element block are 0 or +-{:.9g} "
                 "(float weights that are not ternary cannot be stored as ternary without changing the model)",
                 info.name, b * blk + i, v, blk, m);
          t.codes[b * blk + i] = static_cast<int8_t>(v > 0 ? 1 : v < 0 ? -1 : 0);
        }
        d[b] = m;
      }
      float common = 0;
      bool several = false;
      for (float v : d) {
        if (v == 0) continue;
        if (common == 0) common = v;
        else if (v != common) several = true;
      }
      if (!several) {
        t.scale = common;
        return t;
      }
      t.per_block = true;
      t.block_d.resize(d.size());
      for (uint64_t b = 0; b < d.size(); ++b) {
        if (d[b] != 0 && !fp16_exact(d[b]))
          fail("tensor '{}': its blocks have different scales and block {}'s {:.9g} is not an fp16 value", info.name, b,
               d[b]);
        t.block_d[b] = f32_to_fp16(d[b] != 0 ? d[b] : common);
      }
      return t;
    }
    default:
      fail("tensor '{}' is {}, not a ternary or float type (i2_s, tq2_0, tq1_0, f32, f16, bf16)", info.name,
           type_traits(info.type).name);
  }
}

void encode_ternary(const TernaryTensor& t, TensorType type, bool allow_rounding, uint8_t* dst) {
  const uint64_t n = t.n();
  if (!t.per_block && (!(t.scale > 0) || !std::isfinite(t.scale)))
    fail("tensor '{}': scale {} is not a finite positive number", t.name, t.scale);
  switch (type) {
    case TensorType::I2_S: {
      float s = t.scale;
      if (t.per_block) {
        uint64_t bad, first;
        s = common_block_scale(t, &bad, &first);
        if (bad != UINT64_MAX)
          fail("tensor '{}': its TQ block scales differ (block {}: {:.9g}, block {}: {:.9g}); I2_S holds one scale per "
               "tensor, so this tensor cannot be stored as I2_S without loss (keep a TQ type)", t.name, first,
               fp16_to_f32(t.block_d[first]), bad, fp16_to_f32(t.block_d[bad]));
      }
      if (!(s > 0) || !std::isfinite(s)) fail("tensor '{}': scale {} is not a finite positive number", t.name, s);
      i2s_encode(t.codes.data(), n, s, dst);
      return;
    }
    case TensorType::TQ2_0:
    case TensorType::TQ1_0: {
      if (n % kQK != 0) fail("tensor '{}': {} elements are not a multiple of the {}-element TQ block", t.name, n, kQK);
      const uint16_t d = t.per_block ? 0 : fp16_scale(t, allow_rounding, type);
      const bool tq2 = type == TensorType::TQ2_0;
      const uint64_t bb = tq2 ? kTq2BlockBytes : kTq1BlockBytes;
      for (uint64_t b = 0; b < n / kQK; ++b)
        (tq2 ? tq2_encode_block : tq1_encode_block)(t.codes.data() + b * kQK, t.per_block ? t.block_d[b] : d,
                                                      dst + b * bb);
      return;
    }
    case TensorType::F16: {
      const uint16_t d = t.per_block ? 0 : fp16_scale(t, allow_rounding, type);
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t di = t.per_block ? t.block_d[i / kQK] : d;
        const int8_t c = t.codes[i];
        store_u16(dst + 2 * i, c == 0 ? 0 : c > 0 ? di : static_cast<uint16_t>(di ^ 0x8000));
      }
      return;
    }
    case TensorType::F32:
      for (uint64_t i = 0; i < n; ++i) {
        const float s = t.per_block ? fp16_to_f32(t.block_d[i / kQK]) : t.scale;
        const float v = static_cast<float>(t.codes[i]) * s;
        std::memcpy(dst + 4 * i, &v, 4);
      }
      return;
    default: fail("tensor '{}': {} is not a ternary weight type (i2_s, tq2_0, tq1_0, f16, f32)", t.name,
                  type_traits(type).name);
  }
}

void encode_floats(TensorType type, const float* x, uint64_t n, uint8_t* dst) {
  switch (type) {
    case TensorType::F32: std::memcpy(dst, x, n * 4); return;
    case TensorType::F16:
      for (uint64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, f32_to_fp16(x[i]));
      return;
    case TensorType::Q8_0:  // {fp16 d, int8 q[32]}
      for (uint64_t b = 0; b < n / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint8_t* out = dst + b * 34;
        store_u16(out, f32_to_fp16(d));
        for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[b * 32 + j] * id)));
      }
      return;
    case TensorType::Q6_K:  // an untied LM head (--output-type q6_k)
      quantize_row(type, x, n, dst);
      return;
    default: fail("{} is not an embedding or output type (f16, f32, q8_0, q6_k)", type_traits(type).name);
  }
}

}  // namespace bitnet
