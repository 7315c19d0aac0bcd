// CPU kernels, one table per instruction set, chosen once at startup from CPUID (BITNET_ISA=scalar|
// avx2|avx512 forces one). scalar.cc is the specification: every other table is bit-exact with it.
//
//  - Ternary x int8 products are exact integers in every table.
//  - Float dot products have one canonical order: element i accumulates into lane i % 64 with a fused
//    multiply-add, and the 64 lanes are summed by a fixed halving tree (lane l += lane l + 32, then 16,
//    8, 4, 2, 1). SIMD tables keep the same 64 lanes in registers, so results match to the bit, and a
//    model gives the same tokens whatever CPU runs it.
//  - axpy is an elementwise fused multiply-add; exp, norms and quantization stay scalar.
//
// Shapes: activations are row-major [T][K]; outputs [T][ldy] with columns m0..m1 written, so threads
// split output rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/format/ggml_types.h"

namespace bitnet::kernels {

constexpr int kDotLanes = 64;

struct KernelTable {
  const char* name;  // "scalar", "avx2", "avx512"

  // Reorders one row of int8 activations (natural order, K a multiple of 128) into the order
  // ternary_gemm reads; nullptr when that order is the natural one.
  void (*prepare_acts)(const int8_t* q, int64_t K, int8_t* out);

  // Ternary weights in I2_S layout (128-element/32-byte blocks, MSB-first groups, codes 0,1,2 = -1,0,+1;
  // row m at byte m*K/4) times prepared int8 activations [T][K] with act_sums[t] = sum_k q[t][k]:
  //   y[t][m] = float(sum_k code[m][k]*q[t][k] - act_sums[t]) / act_scales[t] * scale
  void (*ternary_gemm)(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                       const int32_t* act_sums, const float* act_scales, int64_t T, float scale, float* y,
                       int64_t ldy);

  // int8 weights [M][K] (row m at w + m*K) times int8 activations [T][K]:
  //   y[t][m] = float(sum_k w[m][k]*q[t][k]) / act_scales[t] * row_scales[m]   (the --lm-head q8 path)
  void (*int8_gemm)(const int8_t* w, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales,
                    int64_t T, const float* row_scales, float* y, int64_t ldy);

  float (*dot_f32)(const float* a, const float* b, int64_t n);     // canonical order
  float (*dot_f16)(const uint16_t* a, const float* b, int64_t n);  // a: IEEE half, canonical order
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);  // y[i] = fma(a, x[i], y[i])
  void (*axpy_f16)(float a, const uint16_t* x, float* y, int64_t n);
};

// The table in use (chosen on first call).
const KernelTable& active();
// Every table this CPU can run, scalar first (tests run each).
std::vector<const KernelTable*> supported_tables();
// A table by name if this CPU supports it, else nullptr.
const KernelTable* table_by_name(const std::string& name);

const KernelTable& scalar_table();
const KernelTable* avx2_table();    // nullptr when not compiled in
const KernelTable* avx512_table();

// ---- Scalar building blocks shared by all tables (the specification) ----

// BitNet per-token activation quantization (BITNET_FORMATS.md §1.6):
//   amax = max(1e-5, max|x|) in double; s = float(127/amax); q = round_half_even(x*s) in [-128, 127].
// Returns s; *sum (optional) receives sum_k q[k].
float quantize_row_i8(const float* x, int64_t K, int8_t* q, int32_t* sum = nullptr);

// Ternary GEMM with one scale per 256-element block (TQ tensors whose block scales differ), natural
// activation order: y[t][m] = (sum_b float(dot_b) * block_scales[m*K/256 + b]) / act_scales[t].
void ternary_gemm_blocks(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                         const float* act_scales, int64_t T, const float* block_scales, float* y, int64_t ldy);

// Float weights of `type` (F32, F16, BF16, Q8_0, Q4_0, Q6_K), [M][K] rows of `row_bytes`:
//   y[t][m] = dot(W[m], x[t]) in the canonical order (other types are dequantized per row first).
// `row_scratch` holds K floats.
void float_gemm(const KernelTable& kt, TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0,
                int64_t m1, const float* x, int64_t T, float* y, int64_t ldy, float* row_scratch);

// One row of a float-typed matrix to float32 (embedding lookup).
void dequantize_row(TensorType type, const uint8_t* row, int64_t K, float* out);

// y = x / sqrt(mean(x^2) + eps) * g   (sum of squares in double; float mean and 1/sqrtf as ggml)
void rmsnorm(const float* x, const float* g, int64_t n, float eps, float* out);

// The canonical 64-lane reduction tree (shared by SIMD tails).
float reduce_lanes(float lanes[kDotLanes]);

}  // namespace bitnet::kernels

namespace bitnet::kernels {
// Float weights times int8 activations (BitNet quantization applied to a float layer that is not exactly
// ternary): y[t][m] = (sum_k W[m][k] * q[t][k]) / act_scale[t], sequential float sum. Diagnostic path.
void float_gemm_i8(TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1,
                   const int8_t* q, const float* act_scales, int64_t T, float* y, int64_t ldy, float* row_scratch);
}  // namespace bitnet::kernels
