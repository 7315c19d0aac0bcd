// Weights bound by GGUF name. Linear layers are either ternary (any of I2_S, TQ2_0, TQ1_0, repacked at
// load into the I2_S code layout the kernels read) or float (F32, F16, BF16, run as stored).
#pragma once

#include <cstdint>
#include <vector>

#include "bitnet/format/ggml_types.h"

namespace bitnet {

struct TernaryWeights {
  const uint8_t* codes = nullptr;   // [rows][cols/4] I2_S 128/32 layout; into the file or `owned`
  std::vector<uint8_t> owned;       // repacked codes when the file's layout differs (TQ*)
  float scale = 1.0f;               // per-tensor scale
  std::vector<float> block_scales;  // [rows][cols/256] when TQ block scales vary (else empty)
};

struct FloatWeights {
  TensorType type = TensorType::F32;
  const uint8_t* data = nullptr;    // [rows] rows of row_bytes, into the file
  size_t row_bytes = 0;
};

struct Linear {
  int64_t rows = 0;  // output features (M)
  int64_t cols = 0;  // input features (K)
  bool ternary = false;
  TernaryWeights tern;
  FloatWeights flt;
  float out_scale = 1.0f;  // llama.cpp `bitnet`: optional `<name>.scale` multiplies the output
  const char* name = "";
};

// y[T][L.rows] = L(x[T][L.cols]). Ternary layers (and float layers with ActQuant::PerToken) quantize
// each row of x to int8 into qx[T][L.cols] with act_scale[T]; `reuse_quantized` skips that when the
// previous call quantized the same x (q, k and v share one input). Scratch is the caller's.
enum class ActQuant;
void apply_linear(const Linear& L, ActQuant act_quant, const float* x, int32_t T, float* y, int8_t* qx,
                  float* act_scale, bool reuse_quantized = false);

}  // namespace bitnet
