// Scalar reference kernels (the specification; see kernels.h).
#include <cmath>
#include <cstring>
#include <vector>

#include "bitnet/format/dequant.h"
#include "bitnet/kernels/kernels.h"

namespace bitnet::kernels {

float quantize_row_i8(const float* x, int64_t K, int8_t* q) {
  double amax = 1e-5;
  for (int64_t k = 0; k < K; ++k) amax = std::max(amax, static_cast<double>(std::fabs(x[k])));
  const float s = static_cast<float>(127.0 / amax);
  for (int64_t k = 0; k < K; ++k) {
    const float v = std::nearbyint(x[k] * s);  // default rounding mode: half to even
    q[k] = static_cast<int8_t>(std::fmax(-128.0f, std::fmin(127.0f, v)));
  }
  return s;
}

namespace {

// Decodes one I2_S row of K codes to {-1, 0, +1}.
void decode_i2s_row(const uint8_t* row, int64_t K, int8_t* w) {
  for (int64_t b = 0; b < K / 128; ++b) {
    const uint8_t* in = row + 32 * b;
    int8_t* out = w + 128 * b;
    for (int j = 0; j < 128; ++j) out[j] = static_cast<int8_t>(((in[j % 32] >> (6 - 2 * (j / 32))) & 3) - 1);
  }
}

}  // namespace

void ternary_gemm_i8(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                     const float* act_scales, int64_t T, float scale, const float* block_scales, float* y,
                     int64_t ldy) {
  std::vector<int8_t> w(K);
  for (int64_t m = m0; m < m1; ++m) {
    decode_i2s_row(codes + m * K / 4, K, w.data());
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      if (!block_scales) {
        int32_t dot = 0;
        for (int64_t k = 0; k < K; ++k) dot += w[k] * qt[k];
        y[t * ldy + m] = static_cast<float>(dot) / act_scales[t] * scale;
      } else {
        const float* d = block_scales + m * (K / 256);
        float acc = 0;
        for (int64_t b = 0; b < K / 256; ++b) {
          int32_t dot = 0;
          for (int64_t k = 256 * b; k < 256 * (b + 1); ++k) dot += w[k] * qt[k];
          acc += static_cast<float>(dot) * d[b];
        }
        y[t * ldy + m] = acc / act_scales[t];
      }
    }
  }
}

void dequantize_row(TensorType type, const uint8_t* row, int64_t K, float* out) {
  dequantize(type, row, K, 0, K, out);
}

void float_gemm(TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1,
                const float* x, int64_t T, float* y, int64_t ldy) {
  std::vector<float> row(type == TensorType::F32 ? 0 : K);
  for (int64_t m = m0; m < m1; ++m) {
    const float* wr;
    if (type == TensorType::F32) {
      wr = reinterpret_cast<const float*>(w + m * row_bytes);
    } else {
      dequantize_row(type, w + m * row_bytes, K, row.data());
      wr = row.data();
    }
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * K;
      float acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += wr[k] * xt[k];
      y[t * ldy + m] = acc;
    }
  }
}

void float_gemm_i8(TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1,
                   const int8_t* q, const float* act_scales, int64_t T, float* y, int64_t ldy) {
  std::vector<float> row(K);
  for (int64_t m = m0; m < m1; ++m) {
    dequantize_row(type, w + m * row_bytes, K, row.data());
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      float acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += row[k] * static_cast<float>(qt[k]);
      y[t * ldy + m] = acc / act_scales[t];
    }
  }
}

void rmsnorm(const float* x, const float* g, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(ss / n);  // ggml: float mean, then 1/sqrtf(mean + eps)
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * g[i];
}

}  // namespace bitnet::kernels
