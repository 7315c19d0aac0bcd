// Reference quantizers for float tensors (embeddings, LM heads): F32, F16, BF16, Q8_0, Q6_K. Each writes
// `n` values (a multiple of the type's block size) in the layout that dequant.cc reads.
#pragma once

#include <cstdint>

#include "bitnet/format/ggml_types.h"

namespace bitnet {

// Q8_0: per 32 values {fp16 d = max|x|/127, int8 round(x/d)}.
// Q6_K: per 256 values, 16 sub-blocks of 16 with int8 scales under one fp16 d; 6-bit values (ql low
// nibbles, qh high bit pairs) as ggml lays them out.
void quantize_row(TensorType type, const float* x, uint64_t n, uint8_t* dst);
bool can_quantize(TensorType type);

}  // namespace bitnet
