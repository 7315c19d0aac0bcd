// Statistics of a file tensor after dequantization, and for ternary types the code histogram and scales.
#pragma once

#include <cstdint>
#include <vector>

#include "bitnet/format/ternary.h"

namespace bitnet {

struct GgufTensorInfo;

struct TensorStats {
  uint64_t count = 0;       // elements
  uint64_t nonfinite = 0;   // NaN or Inf
  uint64_t zeros = 0;       // exactly 0.0
  double mean = 0, std = 0, rms = 0, mean_abs = 0;  // over finite values
  double min = 0, max = 0;
  // Ternary types only.
  bool ternary = false;
  CodeHistogram codes{};       // -1, 0, +1, invalid
  uint64_t n_scales = 0;       // 1 for I2_S, one per 256-block for TQ*
  double scale_min = 0, scale_max = 0, scale_median = 0;
  uint64_t scale_nonfinite = 0;
};

// Dequantizes in chunks (never the whole tensor at once). Types must be computable.
TensorStats tensor_stats(const GgufTensorInfo& t);

}  // namespace bitnet
