// A ternary weight matrix held once in memory while it moves between forms: Hugging Face master weights,
// HF packed uint8, GGUF I2_S / TQ1_0 / TQ2_0 / F16 / F32. Plus the float encoders for embeddings.
//
// Scale model. BitNet weights are W = code * s with code in {-1, 0, +1}:
//   per tensor   one float32 s (checkpoints, I2_S)                                  `scale`
//   per block    one fp16 d per 256 consecutive elements of the flattened matrix    `block_d`
//                (TQ1_0 / TQ2_0; llama.cpp's quantizer gives every block its own d)
// Moving between the two is exact when every block that holds a non-zero code has the same d (per block ->
// per tensor) and when the float32 s is an fp16 value (per tensor -> fp16 storage). Otherwise encode()
// refuses, naming the tensor, unless rounding is allowed (then the fp16 nearest to s is used: a relative
// change of at most 2^-11).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/format/ggml_types.h"

namespace bitnet {

struct GgufTensorInfo;

struct TernaryTensor {
  std::string name;               // GGUF name, for messages
  uint64_t cols = 0, rows = 0;    // GGUF ne = [cols, rows]; cols is the contiguous (input) dimension
  std::vector<int8_t> codes;      // [rows][cols] in {-1, 0, +1}
  bool per_block = false;
  float scale = 0;                // !per_block
  std::vector<uint16_t> block_d;  // per_block: fp16 bits, one per 256 elements (n % 256 == 0)

  uint64_t n() const { return cols * rows; }
};

// Ternary linear types a file can hold, by name: i2_s, tq2_0, tq1_0, f16, f32. Error for anything else.
TensorType linear_type_from_name(const std::string& name);
// Embedding types: f16, f32, q8_0; an untied output also q6_k.
TensorType embedding_type_from_name(const std::string& name);
TensorType output_type_from_name(const std::string& name);
// general.file_type for a linear weight type (llama.cpp's llama_ftype; I2_S = 40 as in bitnet.cpp's fork).
uint32_t file_type_of(TensorType linear_type);

// Decode a GGUF linear tensor. I2_S and TQ keep their scales; F32/F16/BF16 must hold a ternary matrix
// (every 256-element block in {-d, 0, +d}, else Error naming the element): one distinct d gives a
// per-tensor scale, several give per-block fp16 scales (Error when a block's d is not an fp16 value).
// Invalid codes (2-bit 3, non-canonical TQ1_0 bytes) are an Error naming the tensor and byte offset.
TernaryTensor ternary_from_gguf(const GgufTensorInfo& t);

// Ternarise float values (the HF master form, BITNET_FORMATS.md §5.3): s = max(mean|W|, 1e-5) in double,
// code = clamp(round_half_even(W / s), -1, 1), scale = float(s). `at(i)` returns element i.
template <typename At>
void ternarize_absmean(TernaryTensor& t, At at);

// Bytes of `t` stored as `type` (nbytes = tensor_nbytes(type, n)). Throws Error naming the tensor when
// the scales cannot be stored exactly (see above) and !allow_rounding, or when they cannot be stored at all.
void encode_ternary(const TernaryTensor& t, TensorType type, bool allow_rounding, uint8_t* dst);

// Float values to F32 / F16 / Q8_0 bytes (n a multiple of 32 for Q8_0; round-to-nearest-even halves,
// Q8_0 as llama.cpp: d = max|x| / 127 in fp16, q = round-half-away(x / d)).
void encode_floats(TensorType type, const float* x, uint64_t n, uint8_t* dst);

// ---- implementation of the template ----
double absmean_scale(double sum_abs, uint64_t n, const std::string& name);  // max(sum/n, 1e-5); Error if not finite
// clamp(round_half_even(w / s), -1, 1) without a division: |w / s| rounds to 0 up to and including 0.5.
inline int8_t absmean_code(float w, double half_s) {
  const double a = static_cast<double>(w);
  return static_cast<int8_t>(a > half_s ? 1 : a < -half_s ? -1 : 0);
}

template <typename At>
void ternarize_absmean(TernaryTensor& t, At at) {
  const uint64_t n = t.n();
  double sum[4] = {0, 0, 0, 0};  // four chains: the adds overlap (the order is fixed, so the result is too)
  const uint64_t n4 = n / 4 * 4;
  for (uint64_t i = 0; i < n4; i += 4)
    for (uint64_t k = 0; k < 4; ++k) sum[k] += std::fabs(static_cast<double>(at(i + k)));
  for (uint64_t i = n4; i < n; ++i) sum[0] += std::fabs(static_cast<double>(at(i)));
  const double s = absmean_scale((sum[0] + sum[1]) + (sum[2] + sum[3]), n, t.name);
  t.codes.resize(n);
  for (uint64_t j = 0; j < n; ++j) t.codes[j] = absmean_code(at(j), 0.5 * s);
  t.per_block = false;
  t.scale = static_cast<float>(s);
}

}  // namespace bitnet
