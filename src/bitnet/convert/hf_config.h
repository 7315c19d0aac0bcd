// Hugging Face `config.json` of a ternary causal LM, as the converter needs it (BITNET_FORMATS.md §5.1).
//
//   architectures[0]        BitNetForCausalLM (2B-4T), BitnetForCausalLM (older spelling: 1bitLLM, 3B),
//                           LlamaForCausalLM (ternary weights in LLaMA form)
//   hidden_size -> dim, intermediate_size -> hidden_dim, num_hidden_layers -> n_layers,
//   num_attention_heads -> n_heads, num_key_value_heads -> n_kv_heads (default n_heads),
//   vocab_size, max_position_embeddings -> n_ctx, rope_theta, rms_norm_eps, hidden_act, tie_word_embeddings
//   quantization_config     {quant_method: bitnet, linear_class: autobitlinear | bitlinear (absent: bitlinear,
//                            transformers' default), modules_to_not_convert: [lm_head],
//                            quantization_mode: offline (packed) | online (bf16 master weights)}
// Defaults for absent keys are those of the transformers config class of the architecture. Features the
// converter cannot express (rope_scaling, biases, a head_dim other than hidden_size / heads) are refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bitnet {

struct HfConfig {
  std::string architecture;   // architectures[0]
  bool bitnet_family = false;  // BitNet*ForCausalLM, or quant_method "bitnet": weights are ternarised
  uint32_t dim = 0;
  uint32_t hidden_dim = 0;
  uint32_t n_layers = 0;
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
  uint32_t vocab_size = 0;
  uint32_t n_ctx = 0;
  float rope_theta = 0;
  float norm_eps = 0;
  std::string hidden_act;      // as written ("relu2", "silu", ...)
  int tie_word_embeddings = -1;  // -1 absent, 0 false, 1 true
  bool has_quant_config = false;
  std::string quant_method, linear_class, quantization_mode;
};

// `source` names the file in messages.
HfConfig parse_hf_config(std::string_view json_text, const std::string& source);

}  // namespace bitnet
