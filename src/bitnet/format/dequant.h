// Reference dequantization of file tensors to float32, for statistics, validation and the reference
// forward pass. Not a hot path: kernels consume packed data directly.
#pragma once

#include <cstdint>

#include "bitnet/format/ggml_types.h"

namespace bitnet {

struct GgufTensorInfo;

// Dequantize `count` elements starting at element `start` of a tensor whose data is `data` (the whole
// tensor, n_total elements). start and count must be multiples of the type's block size.
// Types with traits.computable only; I2_S multiplies by the tensor's scale.
void dequantize(TensorType type, const uint8_t* data, uint64_t n_total, uint64_t start, uint64_t count, float* dst);

inline void dequantize(const GgufTensorInfo& t, uint64_t start, uint64_t count, float* dst);

// Elements per dequantization step that keep start/count aligned for every computable type.
constexpr uint64_t kDequantChunk = 256 * 128;

}  // namespace bitnet

#include "bitnet/format/gguf.h"

namespace bitnet {
inline void dequantize(const GgufTensorInfo& t, uint64_t start, uint64_t count, float* dst) {
  dequantize(t.type, t.data, t.n_elements(), start, count, dst);
}
}  // namespace bitnet
