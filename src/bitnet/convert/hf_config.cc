#include "bitnet/convert/hf_config.h"

#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"

namespace bitnet {

using nlohmann::json;

namespace {

HfConfig from_json(const json& j, const std::string& source) {
  HfConfig c;
  if (!j.contains("architectures") || !j.at("architectures").is_array() || j.at("architectures").empty() ||
      !j.at("architectures")[0].is_string())
    fail("{}: \"architectures\" must be a non-empty list of strings", source);
  c.architecture = j.at("architectures")[0].get<std::string>();
  const bool bitnet_arch = c.architecture == "BitNetForCausalLM" || c.architecture == "BitnetForCausalLM";
  if (!bitnet_arch && c.architecture != "LlamaForCausalLM")
    fail("{}: architecture '{}' is not supported (BitNetForCausalLM, BitnetForCausalLM, LlamaForCausalLM)", source,
         c.architecture);

  auto u32 = [&](const char* key, bool required, uint32_t def, uint32_t max) -> uint32_t {
    if (!j.contains(key) || j.at(key).is_null()) {
      if (required) fail("{}: required key \"{}\" is missing", source, key);
      return def;
    }
    const json& v = j.at(key);
    if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 || v.get<uint64_t>() > max)
      fail("{}: \"{}\" is {}, expected an integer in 1..{}", source, key, v.dump(), max);
    return static_cast<uint32_t>(v.get<uint64_t>());
  };
  auto num = [&](const char* key, double def) -> double {
    if (!j.contains(key) || j.at(key).is_null()) return def;
    const json& v = j.at(key);
    if (!v.is_number() || !(v.get<double>() > 0)) fail("{}: \"{}\" is {}, expected a positive number", source, key, v.dump());
    return v.get<double>();
  };
  constexpr uint32_t kMaxDim = 1u << 20;
  c.dim = u32("hidden_size", true, 0, kMaxDim);
  c.hidden_dim = u32("intermediate_size", true, 0, 4 * kMaxDim);
  c.n_layers = u32("num_hidden_layers", true, 0, 4096);
  c.n_heads = u32("num_attention_heads", true, 0, c.dim);
  c.n_kv_heads = u32("num_key_value_heads", false, c.n_heads, c.n_heads);
  c.vocab_size = u32("vocab_size", true, 0, 1u << 24);
  c.n_ctx = u32("max_position_embeddings", false, 2048, 1u << 24);
  // transformers' defaults: BitNetConfig rope_theta 500000, rms_norm_eps 1e-5, hidden_act relu2;
  // LlamaConfig 10000, 1e-6, silu.
  c.rope_theta = static_cast<float>(num("rope_theta", bitnet_arch ? 500000.0 : 10000.0));
  c.norm_eps = static_cast<float>(num("rms_norm_eps", bitnet_arch ? 1e-5 : 1e-6));
  c.hidden_act = j.value("hidden_act", bitnet_arch ? "relu2" : "silu");
  if (j.contains("tie_word_embeddings") && j.at("tie_word_embeddings").is_boolean())
    c.tie_word_embeddings = j.at("tie_word_embeddings").get<bool>() ? 1 : 0;

  if (c.dim % c.n_heads != 0) fail("{}: hidden_size {} is not divisible by num_attention_heads {}", source, c.dim, c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, c.n_heads, c.n_kv_heads);
  if ((c.dim / c.n_heads) % 2 != 0) fail("{}: head dimension {} is odd (RoPE pairs dimensions)", source, c.dim / c.n_heads);
  if (j.contains("head_dim") && !j.at("head_dim").is_null() &&
      !(j.at("head_dim").is_number_unsigned() && j.at("head_dim").get<uint64_t>() == c.dim / c.n_heads))
    fail("{}: head_dim {} differs from hidden_size / num_attention_heads = {}, which is not supported", source,
         j.at("head_dim").dump(), c.dim / c.n_heads);
  if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null())
    fail("{}: rope_scaling {} is not supported (BitNet models use plain RoPE)", source, j.at("rope_scaling").dump());
  for (const char* key : {"attention_bias", "mlp_bias"})
    if (j.contains(key) && j.at(key).is_boolean() && j.at(key).get<bool>())
      fail("{}: \"{}\": true is not supported (no biases in BitNet b1.58)", source, key);

  if (j.contains("quantization_config") && j.at("quantization_config").is_object()) {
    const json& q = j.at("quantization_config");
    c.has_quant_config = true;
    c.quant_method = q.value("quant_method", "");
    c.linear_class = q.value("linear_class", "");
    c.quantization_mode = q.value("quantization_mode", "");
    // Newer transformers: an RMSNorm inside every BitLinear (Falcon-Edge); its weights would be dropped.
    if (q.contains("use_rms_norm") && q.at("use_rms_norm").is_boolean() && q.at("use_rms_norm").get<bool>())
      fail("{}: quantization_config.use_rms_norm: true (an RMSNorm inside every BitLinear) is not supported", source);
    // Falcon3 and Llama3-8B-1.58 keep only the LM head in full precision; other kept modules are not a known form.
    if (q.contains("modules_to_not_convert") && q.at("modules_to_not_convert").is_array())
      for (const json& m : q.at("modules_to_not_convert"))
        if (!m.is_string() || m.get<std::string>().find("lm_head") == std::string::npos)
          fail("{}: quantization_config.modules_to_not_convert lists {}: linear layers kept in full precision are "
               "not supported (only lm_head)", source, m.dump());
  }
  c.bitnet_family = bitnet_arch || c.quant_method == "bitnet";
  return c;
}

}  // namespace

HfConfig parse_hf_config(std::string_view json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    fail("{}: malformed JSON at byte {}: {}", source, e.byte, e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object, got a {}", source, j.type_name());

  try {
    return from_json(j, source);
  } catch (const json::exception& e) {
    fail("{}: {}", source, e.what());
  }
}

}  // namespace bitnet
