// CPU kernels. This scalar code is the specification: every SIMD kernel (issue "fast CPU kernels") is
// tested against it, bit-exact for the integer ternary paths.
//
// Row ranges [m0, m1) let a thread pool split the output rows; T is the number of tokens in a batch.
// Activations are row-major [T][K]; outputs are [T][ldy] with columns m0..m1 written.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bitnet/format/ggml_types.h"

namespace bitnet::kernels {

// BitNet per-token activation quantization (BITNET_FORMATS.md §1.6):
//   amax = max(1e-5, max|x|) in double; s = float(127/amax); q = round_half_even(x*s) in [-128, 127].
// Returns s (the "act_scale"; outputs are divided by it).
float quantize_row_i8(const float* x, int64_t K, int8_t* q);

// Ternary weights in I2_S layout (128-element/32-byte blocks, MSB-first groups, codes 0,1,2 = -1,0,+1),
// row-major [M][K]: row m starts at byte m*K/4.
//   y[t][m] = float(sum_k w[m][k]*q[t][k]) / act_scale[t] * scale              (block_scales == nullptr)
//   y[t][m] = (sum_b float(dot_b) * block_scales[m*K/256 + b]) / act_scale[t]   (per-256 block scales)
void ternary_gemm_i8(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                     const float* act_scales, int64_t T, float scale, const float* block_scales, float* y,
                     int64_t ldy);

// Float weights of `type` (F32, F16, BF16, Q8_0, Q4_0, Q6_K), row-major [M][K] with `row_bytes` per row:
//   y[t][m] = sum_k W[m][k] * x[t][k], accumulated in float in k order.
void float_gemm(TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1,
                const float* x, int64_t T, float* y, int64_t ldy);

// Float weights times int8 activations (BitNet activation quantization applied to a float layer):
//   y[t][m] = (sum_k W[m][k] * q[t][k]) / act_scale[t]
void float_gemm_i8(TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1,
                   const int8_t* q, const float* act_scales, int64_t T, float* y, int64_t ldy);

// One row of a float-typed matrix to float32 (embedding lookup).
void dequantize_row(TensorType type, const uint8_t* row, int64_t K, float* out);

// y = x / sqrt(mean(x^2) + eps) * g   (sum of squares in double, as ggml does)
void rmsnorm(const float* x, const float* g, int64_t n, float eps, float* out);

}  // namespace bitnet::kernels
