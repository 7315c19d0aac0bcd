// `bitnet convert`: a Hugging Face checkpoint folder (config.json, tokenizer.json, tokenizer_config.json,
// model.safetensors or model.safetensors.index.json + shards) to a GGUF file.
//
// Linear weights come in three forms (BITNET_FORMATS.md §5), detected per tensor from the dtype:
//   master  float [out, in] (the "-bf16" repository; online quantisation):
//           s = max(mean|W|, 1e-5), code = clamp(round(W / s), -1, 1), scale = s   (HF WeightQuant)
//   packed  uint8 [out/4, in] + `<name>_scale` ("weight_scale", one value):
//           W[i*(out/4) + r, c] = ((packed[r, c] >> 2i) & 3) - 1                   (HF unpack_weights)
//   int8    int8 [out, in] in {-1, 0, +1} + weight_scale
// The direction of weight_scale follows quantization_config.linear_class (transformers
// integrations/bitnet.py): "autobitlinear" computes linear(x, W) * weight_scale, so weight_scale is the
// absmean and is stored as is; "bitlinear" (transformers' default class) divides by it, so the stored
// scale is 1 / weight_scale. Tests check that a master checkpoint and its own packing give the same file.
// For LlamaForCausalLM without a bitnet quantization_config, float weights are used as they are and must
// already be ternary (one +-d per 256-element block, as TQ1_0/TQ2_0 store them).
//
// Nothing is held whole: the returned writer's producers read each tensor from the mapped safetensors
// when it is written, then drop its pages. Resident memory is about one output tensor plus one input
// tensor (the embedding is the largest).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "bitnet/format/ggml_types.h"
#include "bitnet/format/gguf.h"

namespace bitnet {

class Progress;
class SafetensorsCheckpoint;
struct HfConfig;

struct ConvertOptions {
  std::filesystem::path input;         // the checkpoint folder
  std::string arch;                    // "" = bitnet-b1.58 for relu2 BitNet models, bitnet for others, llama for LLaMA
  std::string type;                    // "" = i2_s for bitnet-b1.58, tq2_0 otherwise
  std::string embedding_type = "f16";  // f16 | f32 | q8_0 (token_embd, and an untied output by default)
  std::string output_type;             // untied output: f16 | f32 | q8_0 | q6_k; "" = embedding_type
  std::string weight_scale = "auto";   // packed / int8 weights: auto (from linear_class) | multiply | divide
  std::string name;                    // general.name; "" = the folder's name
};

struct ConvertSummary {
  std::string arch;
  TensorType type = TensorType::I2_S;
  TensorType embedding_type = TensorType::F16;
  std::vector<std::string> notes;  // decisions and warnings worth printing
};

// Reads config.json and the tokenizer files from o.input, checks every tensor the architecture needs
// (presence, dtype, shape) and returns the writer. `ckpt` and `progress` must outlive the writer.
GgufWriter plan_convert(const ConvertOptions& o, const SafetensorsCheckpoint& ckpt, Progress& progress,
                        ConvertSummary* summary);

// Same, with the parsed config.json and the vocabulary already at hand (tests).
struct VocabData;
GgufWriter plan_convert(const ConvertOptions& o, const HfConfig& cfg, VocabData vocab, const std::string& chat_template,
                        const SafetensorsCheckpoint& ckpt, Progress& progress, ConvertSummary* summary);

// HF tensor names that a GGUF tensor may come from, e.g. "blk.3.attn_sub_norm.weight" ->
// {"model.layers.3.self_attn.attn_sub_norm.weight", "model.layers.3.self_attn.inner_attn_ln.weight"}.
std::vector<std::string> hf_names_for(const std::string& kind, int layer);

}  // namespace bitnet
