// The 4- and 6-bit LM head rows (`--lm-head q4|q6`, kernels.h): quantization at load, dequantization (tests,
// diagnostics) and the scalar qhead_gemm every table is checked against.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "bitnet/kernels/kernels.h"

namespace bitnet::kernels {

namespace {

// Element k of a super-block with g groups belongs to block (k % 64) / 4 (its int32 lane).
constexpr int kLanes = 16;
constexpr int kGroup = 64;
constexpr int kSuperGroups = 8;

int64_t group_bytes(int bits) { return bits == 6 ? 48 : 32; }

// The stored unsigned value u of element e (0..63) of a group.
inline int group_value(int bits, const uint8_t* g, int e) {
  int u = (g[e % 32] >> (e < 32 ? 0 : 4)) & 15;
  if (bits == 6) u |= ((g[32 + e % 16] >> (2 * (e / 16))) & 3) << 4;
  return u;
}

inline void set_group_value(int bits, uint8_t* g, int e, int u) {
  g[e % 32] |= static_cast<uint8_t>((u & 15) << (e < 32 ? 0 : 4));
  if (bits == 6) g[32 + e % 16] |= static_cast<uint8_t>(((u >> 4) & 3) << (2 * (e / 16)));
}

// Signed range of a value: [-half, half - 1].
inline int half_range(int bits) { return bits == 6 ? 32 : 8; }

// nearbyint (half to even) of v clamped to [lo, hi] (|lo|, |hi| < 2^22): adding and subtracting 1.5 * 2^23
// rounds in the FPU's default mode without a library call (this file is built for baseline x86-64, which has
// no roundss). The file is compiled with -ffp-contract=off (CMakeLists.txt), so no compiler fuses these or the
// error sums below into FMAs: the quantized head is the same bytes on every CPU.
inline float round_clamped(float v, float lo, float hi) {
  v = v < lo ? lo : v > hi ? hi : v;  // NaN cannot occur: x is finite and the steps are positive
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

// Squared error of x quantized with step f (values clamped to [-h, h - 1]).
float block_error(const float* x, int n, float f, int h) {
  const float inv = 1.0f / f, lo = static_cast<float>(-h), hi = static_cast<float>(h - 1);
  float err = 0;
  for (int i = 0; i < n; ++i) {
    const float v = round_clamped(x[i] * inv, lo, hi);
    err += (x[i] - f * v) * (x[i] - f * v);
  }
  return err;
}

}  // namespace

bool qhead_fits(int64_t K) { return K > 0 && K % kGroup == 0 && K <= kQheadMaxK; }

size_t qhead_row_bytes(int bits, int64_t K) {
  const int64_t groups = K / kGroup, supers = (groups + kSuperGroups - 1) / kSuperGroups;
  return static_cast<size_t>(supers * kLanes + groups * group_bytes(bits));
}

float quantize_qhead_row(int bits, const float* x, int64_t K, uint8_t* out) {
  const int h = half_range(bits);
  const int64_t groups = K / kGroup, supers = (groups + kSuperGroups - 1) / kSuperGroups;
  // 1. Each block's best step: the candidate amax / (h - 1 + c/4), c = 0..5, with the least squared error
  //    (from "every value fits" to "the largest clips by a quarter step" on the negative side's extra code).
  float step[kQheadMaxK / 512 * kLanes] = {};  // on the stack: this runs once per row of the head at load
  float block[kSuperGroups * 4];
  for (int64_t s = 0; s < supers; ++s) {
    const int64_t g0 = s * kSuperGroups, g = std::min<int64_t>(kSuperGroups, groups - g0);
    for (int l = 0; l < kLanes; ++l) {
      int n = 0;
      float amax = 0;
      for (int64_t i = 0; i < g; ++i)
        for (int j = 0; j < 4; ++j) {
          block[n] = x[(g0 + i) * kGroup + 4 * l + j];
          amax = std::max(amax, std::fabs(block[n++]));
        }
      if (amax == 0) continue;
      float best = 0, best_err = INFINITY;
      for (int c = 0; c <= 5; ++c) {
        const float f = amax / (static_cast<float>(h - 1) + 0.25f * static_cast<float>(c));
        const float err = block_error(block, n, f, h);
        if (err < best_err) best = f, best_err = err;
      }
      step[s * kLanes + l] = best;
    }
  }
  // 2. The row's scale makes the largest step 255; each block's step becomes an integer multiple s_l of it,
  //    and the values are quantized again with that step.
  const float fmax = *std::max_element(step, step + supers * kLanes);
  const float d = fmax / 255.0f;
  uint8_t* p = out;
  for (int64_t s = 0; s < supers; ++s) {
    const int64_t g0 = s * kSuperGroups, g = std::min<int64_t>(kSuperGroups, groups - g0);
    uint8_t* scales = p;
    float eff[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const float sl = d > 0 ? round_clamped(step[s * kLanes + l] / d, 0.0f, 255.0f) : 0.0f;
      scales[l] = static_cast<uint8_t>(sl);
      eff[l] = d * sl;
    }
    p += kLanes;
    for (int64_t i = 0; i < g; ++i) {
      std::memset(p, 0, group_bytes(bits));
      for (int e = 0; e < kGroup; ++e) {
        const float f = eff[e / 4];
        const float v = f > 0 ? round_clamped(x[(g0 + i) * kGroup + e] / f, static_cast<float>(-h), static_cast<float>(h - 1))
                              : 0.0f;
        set_group_value(bits, p, e, static_cast<int>(v) + h);
      }
      p += group_bytes(bits);
    }
  }
  return d;
}

void dequantize_qhead_row(int bits, const uint8_t* row, float row_scale, int64_t K, float* out) {
  const int h = half_range(bits);
  const int64_t groups = K / kGroup;
  const uint8_t* p = row;
  for (int64_t g0 = 0; g0 < groups; g0 += kSuperGroups) {
    const uint8_t* scales = p;
    p += kLanes;
    for (int64_t i = g0; i < std::min<int64_t>(groups, g0 + kSuperGroups); ++i, p += group_bytes(bits))
      for (int e = 0; e < kGroup; ++e)
        out[i * kGroup + e] = row_scale * static_cast<float>(scales[e / 4]) * static_cast<float>(group_value(bits, p, e) - h);
  }
}

QheadLayout qhead_layout_for(const KernelTable& kt, int64_t K) {
  return kt.qhead_layout == QheadLayout::Panel16 && K % kQheadPanelK == 0 ? QheadLayout::Panel16 : QheadLayout::Rows;
}

size_t qhead_layout_bytes(QheadLayout layout, int bits, int64_t M, int64_t K) {
  const int64_t rows = layout == QheadLayout::Panel16 ? (M + kLanes - 1) / kLanes * kLanes : M;
  return static_cast<size_t>(rows) * qhead_row_bytes(bits, K);
}

void pack_qhead_panel(int bits, const uint8_t* rows, int64_t n, int64_t K, uint8_t* out) {
  const size_t rb = qhead_row_bytes(bits, K);
  const int64_t supers = K / kQheadPanelK, gb = group_bytes(bits), super_bytes = kLanes + kSuperGroups * gb;
  // The 16 rows' stored values u, one byte each in element order (padding rows: weight 0), then interleaved.
  std::vector<uint8_t> u(static_cast<size_t>(kLanes * K), static_cast<uint8_t>(half_range(bits)));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t s = 0; s < supers; ++s)
      for (int64_t i = 0; i < kSuperGroups; ++i) {
        const uint8_t* g = rows + r * rb + s * super_bytes + kLanes + i * gb;
        uint8_t* dst = &u[r * K + (s * kSuperGroups + i) * kGroup];
        for (int e = 0; e < kGroup; ++e) dst[e] = static_cast<uint8_t>(group_value(bits, g, e));
      }
  for (int64_t s = 0; s < supers; ++s) {
    for (int l = 0; l < kLanes; ++l)
      for (int64_t r = 0; r < kLanes; ++r) *out++ = r < n ? rows[r * rb + s * super_bytes + l] : 0;
    for (int64_t l = 0; l < kLanes; ++l) {
      // Tile i's bytes 4r .. 4r + 3: row r's elements 512s + 64i + 4l .. + 3, one little-endian word (each byte of
      // a word holds one value below 64, so shifts and masks of the word act on every byte alone).
      auto tile = [&](int64_t i, int64_t r) {
        uint32_t w;
        std::memcpy(&w, &u[r * K + s * kQheadPanelK + 64 * i + 4 * l], 4);
        return w;
      };
      auto put = [&](uint32_t w) {
        std::memcpy(out, &w, 4);
        out += 4;
      };
      if (bits == 6) {
        for (int64_t c = 0; c < 2; ++c)
          for (int x = 0; x < 3; ++x)
            for (int64_t r = 0; r < kLanes; ++r) put(tile(4 * c + x, r) << 2 | ((tile(4 * c + 3, r) >> (2 * x)) & 0x03030303u));
      } else {
        for (int64_t c = 0; c < 4; ++c)
          for (int64_t r = 0; r < kLanes; ++r) put(tile(2 * c, r) << 4 | tile(2 * c + 1, r));
      }
    }
  }
}

void qhead_gemm_scalar(int bits, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                       const float* act_scales, int64_t T, const float* row_scales, float* y, int64_t ldy) {
  const int h = half_range(bits);
  const int64_t groups = K / kGroup;
  for (int64_t m = m0; m < m1; ++m)
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      const uint8_t* p = w + m * row_bytes;
      int64_t dot = 0;
      for (int64_t g0 = 0; g0 < groups; g0 += kSuperGroups) {
        const uint8_t* scales = p;
        p += kLanes;
        int32_t block[kLanes] = {};
        for (int64_t i = g0; i < std::min<int64_t>(groups, g0 + kSuperGroups); ++i, p += group_bytes(bits))
          for (int e = 0; e < kGroup; ++e) block[e / 4] += (group_value(bits, p, e) - h) * qt[i * kGroup + e];
        for (int l = 0; l < kLanes; ++l) dot += int64_t{scales[l]} * block[l];
      }
      y[t * ldy + m] = static_cast<float>(dot) / act_scales[t] * row_scales[m];
    }
}

}  // namespace bitnet::kernels
