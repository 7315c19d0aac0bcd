// Scalar kernels: the specification every other table is tested against (see kernels.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "bitnet/base/fp16.h"
#include "bitnet/format/dequant.h"
#include "bitnet/kernels/kernels.h"

namespace bitnet::kernels {

float quantize_scale(float prefix_amax, const float* x, int64_t k0, int64_t K) {
  double amax = std::max(1e-5, static_cast<double>(prefix_amax));
  for (int64_t k = k0; k < K; ++k) amax = std::max(amax, static_cast<double>(std::fabs(x[k])));
  return static_cast<float>(127.0 / amax);
}

int32_t quantize_tail(const float* x, int64_t k0, int64_t K, float s, int8_t* q) {
  int32_t total = 0;
  for (int64_t k = k0; k < K; ++k) {
    const float v = std::nearbyint(x[k] * s);  // default rounding mode: half to even
    q[k] = static_cast<int8_t>(std::fmax(-128.0f, std::fmin(127.0f, v)));
    total += q[k];
  }
  return total;
}

float quantize_row_i8(const float* x, int64_t K, int8_t* q, int32_t* sum) {
  const float s = quantize_scale(0.0f, x, 0, K);
  const int32_t total = quantize_tail(x, 0, K, s, q);
  if (sum) *sum = total;
  return s;
}

double finish_sum_squares(double lanes[kSquareLanes], const float* x, int64_t i, int64_t n) {
  for (; i < n; ++i) lanes[i % kSquareLanes] += static_cast<double>(x[i]) * x[i];
  for (int64_t step = kSquareLanes / 2; step >= 1; step /= 2)
    for (int64_t l = 0; l < step; ++l) lanes[l] += lanes[l + step];
  return lanes[0];
}

float reduce_lanes(float lanes[kDotLanes]) {
  for (int step = kDotLanes / 2; step >= 1; step /= 2)
    for (int l = 0; l < step; ++l) lanes[l] += lanes[l + step];
  return lanes[0];
}

namespace {

// Code (0, 1, 2; 3 is invalid and counts as 3 here, i.e. weight +2, in every table) of element k.
inline int code_at(const uint8_t* row, int64_t k) {
  return (row[(k / 128) * 32 + k % 32] >> (6 - 2 * ((k % 128) / 32))) & 3;
}

void scalar_ternary_gemm(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                         const int32_t* act_sums, const float* act_scales, int64_t T, float scale, float* y,
                         int64_t ldy) {
  std::vector<uint8_t> c(K);
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* row = codes + m * K / 4;
    for (int64_t k = 0; k < K; ++k) c[k] = static_cast<uint8_t>(code_at(row, k));
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      int32_t dot = 0;
      for (int64_t k = 0; k < K; ++k) dot += c[k] * qt[k];
      y[t * ldy + m] = static_cast<float>(dot - act_sums[t]) / act_scales[t] * scale;
    }
  }
}

void scalar_int8_gemm(const int8_t* w, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales,
                      int64_t T, const float* row_scales, float* y, int64_t ldy) {
  for (int64_t m = m0; m < m1; ++m)
    for (int64_t t = 0; t < T; ++t) {
      int32_t dot = 0;
      for (int64_t k = 0; k < K; ++k) dot += w[m * K + k] * q[t * K + k];
      y[t * ldy + m] = static_cast<float>(dot) / act_scales[t] * row_scales[m];
    }
}

double scalar_sum_squares(const float* x, int64_t n) {
  double lanes[kSquareLanes] = {};
  return finish_sum_squares(lanes, x, 0, n);
}

float scalar_quantize_i8(const float* x, int64_t K, int8_t* q, int32_t* sum) { return quantize_row_i8(x, K, q, sum); }

float scalar_dot_f32(const float* a, const float* b, int64_t n) {
  float lanes[kDotLanes] = {};
  for (int64_t i = 0; i < n; ++i) lanes[i % kDotLanes] = std::fma(a[i], b[i], lanes[i % kDotLanes]);
  return reduce_lanes(lanes);
}

float scalar_dot_f16(const uint16_t* a, const float* b, int64_t n) {
  float lanes[kDotLanes] = {};
  for (int64_t i = 0; i < n; ++i) lanes[i % kDotLanes] = std::fma(fp16_to_f32(a[i]), b[i], lanes[i % kDotLanes]);
  return reduce_lanes(lanes);
}

void scalar_axpy_f32(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

void scalar_axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(a, fp16_to_f32(x[i]), y[i]);
}

const KernelTable* scalar_table_ptr() { return &scalar_table(); }

uint64_t scalar_read_sum(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    s += w;
  }
  return s;
}

}  // namespace

void gemm_f16_by_dots(const KernelTable& kt, const uint16_t* w, int64_t K, int64_t m0, int64_t m1, const float* x,
                      int64_t T, float* y, int64_t ldy) {
  for (int64_t m = m0; m < m1; ++m)
    for (int64_t t = 0; t < T; ++t) y[t * ldy + m] = kt.dot_f16(w + m * K, x + t * K, K);
}

void attn_scores_by_dots(const KernelTable& kt, const uint8_t* rows, int64_t stride, bool f16, int64_t n,
                         const float* q, int64_t nq, int64_t hd, float* out, int64_t ldo, const uint8_t* next) {
  const int64_t row_bytes = hd * (f16 ? 2 : 4);
  for (int64_t j = 0; j < n; ++j) {  // row by row, so that each row is read once for all queries
    if (next)
      for (int64_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(next + j * stride + b, /*rw=*/0, /*locality=*/3);
    for (int64_t g = 0; g < nq; ++g)
      out[g * ldo + j] = f16 ? kt.dot_f16(reinterpret_cast<const uint16_t*>(rows + j * stride), q + g * hd, hd)
                             : kt.dot_f32(reinterpret_cast<const float*>(rows + j * stride), q + g * hd, hd);
  }
}

void attn_mix_by_axpy(const KernelTable& kt, const uint8_t* rows, int64_t stride, bool f16, int64_t n,
                      const float* w, int64_t ldw, int64_t nq, int64_t hd, float* out) {
  std::fill(out, out + nq * hd, 0.0f);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t g = 0; g < nq; ++g) {
      if (f16) kt.axpy_f16(w[g * ldw + j], reinterpret_cast<const uint16_t*>(rows + j * stride), out + g * hd, hd);
      else kt.axpy_f32(w[g * ldw + j], reinterpret_cast<const float*>(rows + j * stride), out + g * hd, hd);
    }
}

float exp_canonical(float x) {
  if (x != x) return x;
  if (x >= ExpConst::kOverflow) return INFINITY;
  if (x < ExpConst::kUnderflow) return 0.0f;
  const float n = std::nearbyint(x * ExpConst::kLog2e);  // default rounding: to nearest, ties to even
  float r = std::fma(n, ExpConst::kNegLn2Hi, x);
  r = std::fma(n, ExpConst::kNegLn2Lo, r);
  float p = std::fma(ExpConst::kP0, r, ExpConst::kP1);
  p = std::fma(p, r, ExpConst::kP2);
  p = std::fma(p, r, ExpConst::kP3);
  p = std::fma(p, r, ExpConst::kP4);
  p = std::fma(p, r, ExpConst::kP5);
  const float y = std::fma(p, r * r, r) + 1.0f;
  const int32_t k = static_cast<int32_t>(n), k1 = k / 2, k2 = k - k1;  // |k1|, |k2| <= 64
  float s1, s2;
  const uint32_t b1 = static_cast<uint32_t>(k1 + 127) << 23, b2 = static_cast<uint32_t>(k2 + 127) << 23;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return y * s1 * s2;
}

void exp_shift_scalar(const float* x, float shift, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_canonical(x[i] - shift);
}

void silu_mul_scalar(const float* g, float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) u[i] = g[i] / (1.0f + exp_canonical(-g[i])) * u[i];
}

void to_f16_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

void scale_mul_scalar(const float* x, float a, const float* g, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * a * g[i];
}

void relu_sqr_mul_scalar(const float* g, float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = g[i] > 0 ? g[i] : 0.0f;  // a select, not a branch (the sign is a coin flip)
    u[i] = r * r * u[i];
  }
}

const KernelTable& scalar_table() {
  static const KernelTable t{"scalar",        TernaryLayout::I2S, QheadLayout::Rows, scalar_ternary_gemm, scalar_int8_gemm, qhead_gemm_scalar, scalar_sum_squares, scalar_quantize_i8,
                             scalar_dot_f32, scalar_dot_f16, FromDots<scalar_table_ptr>::gemm_f16, scalar_axpy_f32, scalar_axpy_f16,
                             scalar_read_sum, FromDots<scalar_table_ptr>::attn_scores,
                             FromDots<scalar_table_ptr>::attn_mix, exp_shift_scalar, silu_mul_scalar,
                             to_f16_scalar, scale_mul_scalar, relu_sqr_mul_scalar};
  return t;
}

void ternary_gemm_blocks(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                         const float* act_scales, int64_t T, const float* block_scales, float* y, int64_t ldy) {
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* row = codes + m * K / 4;
    const float* d = block_scales + m * (K / 256);
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      float acc = 0;
      for (int64_t b = 0; b < K / 256; ++b) {
        int32_t dot = 0;
        for (int64_t k = 256 * b; k < 256 * (b + 1); ++k) dot += (code_at(row, k) - 1) * qt[k];
        acc += static_cast<float>(dot) * d[b];
      }
      y[t * ldy + m] = acc / act_scales[t];
    }
  }
}

void dequantize_row(TensorType type, const uint8_t* row, int64_t K, float* out) {
  dequantize(type, row, K, 0, K, out);
}

void float_gemm(const KernelTable& kt, TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0,
                int64_t m1, const float* x, int64_t T, float* y, int64_t ldy, float* row_scratch) {
  if (type == TensorType::F16 && row_bytes == size_t(K) * 2) {
    kt.gemm_f16(reinterpret_cast<const uint16_t*>(w), K, m0, m1, x, T, y, ldy);
    return;
  }
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* row = w + m * row_bytes;
    const float* wr = reinterpret_cast<const float*>(row);
    if (type != TensorType::F32) {
      dequantize_row(type, row, K, row_scratch);
      wr = row_scratch;
    }
    for (int64_t t = 0; t < T; ++t) y[t * ldy + m] = kt.dot_f32(wr, x + t * K, K);
  }
}

void float_gemm_i8(TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1,
                   const int8_t* q, const float* act_scales, int64_t T, float* y, int64_t ldy, float* row_scratch) {
  for (int64_t m = m0; m < m1; ++m) {
    dequantize_row(type, w + m * row_bytes, K, row_scratch);
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      float acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += row_scratch[k] * static_cast<float>(qt[k]);
      y[t * ldy + m] = acc / act_scales[t];
    }
  }
}

void rmsnorm(const float* x, const float* g, int64_t n, float eps, float* out) {
  const double ss = active().sum_squares(x, n);
  const float mean = static_cast<float>(ss / n);  // ggml: float mean, then 1/sqrtf(mean + eps)
  const float scale = 1.0f / std::sqrt(mean + eps);
  active().scale_mul(x, scale, g, out, n);
}

}  // namespace bitnet::kernels
