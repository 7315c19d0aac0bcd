// `bitnet synth`: BitNet-shaped GGUF test models with the statistics of the real 2B-4T checkpoint
// (BITNET_FORMATS.md §8): ternary weights with about one third zeros and one absmean scale per tensor,
// norm gammas with the per-kind, per-depth profile of the real model, a realistic embedding.
//
// Determinism: every tensor's values come from a generator seeded by (seed, tensor name), and ternary
// scales are fp16-exact, so one seed gives the same ternary model in I2_S, TQ2_0, TQ1_0, F16 and F32.
#pragma once

#include <cstdint>
#include <string>

#include "bitnet/format/ggml_types.h"

namespace bitnet {

class GgufWriter;

struct SynthOptions {
  std::string arch = "bitnet-b1.58";  // bitnet-b1.58 | bitnet | llama
  uint32_t dim = 256;
  uint32_t hidden_dim = 768;
  uint32_t n_layers = 2;
  uint32_t n_heads = 4;
  uint32_t n_kv_heads = 1;
  uint32_t n_ctx = 4096;
  float rope_theta = 500000.0f;
  float norm_eps = 1e-5f;
  TensorType weight_type = TensorType::I2_S;
  TensorType embd_type = TensorType::F16;
  std::string vocab = "tiny";         // tiny | llama3
  std::string tokenizer_json;         // path to the LLaMA-3 tokenizer.json (vocab == "llama3")
  bool write_pre = false;             // write tokenizer.ggml.pre (the official 2B-4T file has none)
  bool output_tensor = false;         // write an untied output.weight (not for arch bitnet)
  std::string activation;             // bitnet arch: value of <arch>.hidden_activation ("" = omit)
  uint64_t seed = 1;
  std::string name = "bitnet-synth";
};

// Fills in the 2B-4T shape (d=2560, L=30, H=20/5, ff=6912, LLaMA-3 vocabulary).
void apply_preset(SynthOptions& o, const std::string& preset);

// Validates the options (shapes against the weight type, head counts) and builds a writer whose tensors
// are generated when written.
GgufWriter synth_model(const SynthOptions& o);

// Tiny byte-level BPE vocabulary learned from a built-in English text: 256 byte tokens, `n_merges` merges,
// then the LLaMA-3 special tokens that the engine relies on. Token and merge strings use the GPT-2 byte
// alphabet, as in real files.
struct VocabData;
VocabData tiny_bpe_vocab(uint32_t n_merges = 256);

}  // namespace bitnet
