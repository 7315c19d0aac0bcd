// Weights bound by GGUF name. Linear layers are either ternary (any of I2_S, TQ2_0, TQ1_0, packed at load
// into the code layout the active kernel table reads) or float (F32, F16, BF16, run as stored).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bitnet/base/thread_pool.h"
#include "bitnet/base/uninit_allocator.h"
#include "bitnet/format/ggml_types.h"
#include "bitnet/kernels/kernels.h"

namespace bitnet {

struct TernaryWeights {
  const uint8_t* codes = nullptr;   // [rows][cols] 2-bit codes in `layout`: into the file (I2_S), `owned`, or
                                    // the model's buffer of packed layers (Model::pack_ternary)
  kernels::TernaryLayout layout = kernels::TernaryLayout::I2S;
  std::vector<uint8_t> owned;       // I2_S codes decoded from another format (TQ*, exactly ternary floats)
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

// Scratch for apply_linear, sized for max_batch rows of max_k inputs and n_threads workers.
struct LinearScratch {
  LinearScratch(int32_t max_batch, int64_t max_k, int n_threads);
  ScratchVector<int8_t> q;       // [max_batch][max_k] int8 activations, natural order
  ScratchVector<float> scale;    // [max_batch] act_scale = 127/amax
  ScratchVector<int32_t> sum;    // [max_batch] sum of q
  ScratchVector<float> rows;     // [n_threads][max_k] float row buffers
  int64_t max_k;
};

// Memory about to be read (or written): prefetch() asks for every line of each range (forward.cc).
struct Prefetch {
  const void* p = nullptr;  // nothing when null
  int64_t bytes = 0;
  bool write = false;  // about to be written rather than read
};
void prefetch(std::span<const Prefetch> ahead);

// y[T][L.rows] = L(x[T][L.cols]), rows split over the pool. Ternary layers (and float layers with
// ActQuant::PerToken) quantize each row of x to int8; `reuse_quantized` skips that when the previous
// call quantized the same x (q, k and v share one input). `ahead`: memory the caller reads after the
// product, asked for once its own rows are done (ThreadPool::parallel_for's after()).
enum class ActQuant;
void apply_linear(const Linear& L, ActQuant act_quant, const float* x, int32_t T, float* y, LinearScratch& s,
                  ThreadPool& pool, bool reuse_quantized = false, std::span<const Prefetch> ahead = {});

}  // namespace bitnet
