// `bitnet synth --grow MODEL`: a trained BitNet b1.58 model written in a larger shape (a wider residual stream
// and FFN, more and wider heads, more layers) that computes the same function: the same logits up to float
// rounding, at the larger shape's cost per token. Full-size measurements that depend on what the text is
// (speculative decoding's acceptance, a server's mixed requests) then run on a model that writes text, where
// no full-size trained checkpoint can be downloaded. How each part is preserved is written out in grow.cc.
#pragma once

#include <cstdint>
#include <string>

namespace bitnet {

class GgufFile;
class GgufWriter;

struct GrowShape {
  uint32_t dim = 0;         // embedding_length
  uint32_t hidden_dim = 0;  // feed_forward_length
  uint32_t n_layers = 0;
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
};

// The writer of the grown model (I2_S linear weights; the embedding in the source's type, F16 or F32). Throws
// Error naming the source file and the dimension when the target cannot hold the source: a smaller dimension,
// a head size below the source's, fewer KV heads, a GQA group that is not a multiple of the source's.
GgufWriter grow_model(const GgufFile& src, const GrowShape& to, uint64_t seed, const std::string& name);

}  // namespace bitnet
