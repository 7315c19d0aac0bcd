// `bitnet quantize`: re-encode a GGUF's ternary linear weights between I2_S, TQ2_0, TQ1_0, F16 and F32
// without changing a single weight, and optionally its embedding (F16, F32, Q8_0: this one may round).
//
// Lossless by construction: codes are decoded and re-encoded, scales carried (ternary_tensor.h). Where the
// target cannot hold the scales exactly (an I2_S float32 scale that is not an fp16 value, going to
// TQ/F16; TQ blocks with different scales, going to I2_S) the tensor is refused before anything is written,
// unless round_scales allows the fp16 rounding. Everything else (metadata, norms, other tensors) is copied.
//
// Architectures: I2_S exists only in bitnet.cpp's architectures (bitnet-b1.58, bitnet-25). `arch` renames
// between bitnet-b1.58 and llama.cpp's bitnet (same graph, both key prefixes), keeping the model's meaning:
// bitnet-b1.58 -> bitnet writes bitnet.hidden_activation = relu2 and tokenizer.ggml.pre = llama-bpe when
// absent; bitnet -> bitnet-b1.58 requires relu2 and no per-tensor .scale tensors.
#pragma once

#include <string>
#include <vector>

#include "bitnet/format/gguf.h"

namespace bitnet {

class Progress;

struct QuantizeOptions {
  std::string type;            // "" = keep each linear tensor's type
  std::string embedding_type;  // "" = keep
  std::string arch;            // "" = keep
  bool round_scales = false;   // allow fp16 rounding of per-tensor scales
};

struct QuantizeSummary {
  std::string arch;
  uint64_t re_encoded = 0, copied = 0;
  std::vector<std::string> notes;
};

// `in` and `progress` must outlive the writer.
GgufWriter plan_quantize(const GgufFile& in, const QuantizeOptions& o, Progress& progress, QuantizeSummary* summary);

}  // namespace bitnet
