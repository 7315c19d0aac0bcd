#include "bitnet/model/arch.h"

#include <array>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"

namespace bitnet {

const char* const kLinearKinds[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

namespace {

constexpr std::array kArchs = {
    ArchInfo{Arch::BitnetB158, "bitnet-b1.58", true, true, false, RopeStyle::Neox, Activation::ReluSqr},
    // llama.cpp never loads output.weight for bitnet (the head is always token_embd; a file holding one fails
    // its tensor count check).
    ArchInfo{Arch::Bitnet, "bitnet", true, false, true, RopeStyle::Neox, Activation::Silu},
    ArchInfo{Arch::Llama, "llama", false, true, false, RopeStyle::Norm, Activation::Silu},
};

constexpr std::array<std::pair<const char*, Activation>, 6> kActs = {{
    {"relu2", Activation::ReluSqr}, {"relu_sqr", Activation::ReluSqr}, {"silu", Activation::Silu},
    {"swish", Activation::Silu},    {"gelu", Activation::Gelu},        {"relu", Activation::Relu},
}};

}  // namespace

const char* activation_name(Activation a) {
  for (const auto& [name, act] : kActs)
    if (act == a) return name;
  return "?";
}

std::optional<Activation> activation_from_name(std::string_view name) {
  for (const auto& [n, act] : kActs)
    if (name == n) return act;
  return std::nullopt;
}

std::optional<ArchInfo> arch_info(std::string_view name) {
  if (name == "bitnet-25") return kArchs[0];
  for (const auto& a : kArchs)
    if (name == a.name) return a;
  return std::nullopt;
}

std::string supported_architectures() { return "bitnet-b1.58, bitnet-25, bitnet, llama"; }

ModelConfig ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  c.arch_name = f.architecture();
  if (c.arch_name.empty()) fail("{}: no general.architecture key", f.path());
  auto info = arch_info(c.arch_name);
  if (!info)
    fail("{}: architecture '{}' is not supported (supported: {})", f.path(), c.arch_name, supported_architectures());
  c.info = *info;
  const std::string p = c.arch_name + ".";

  auto get_u32 = [&](const std::string& key, bool required, uint32_t def, uint32_t min, uint32_t max) -> uint32_t {
    auto v = f.get_int(p + key);
    if (!v) {
      if (required) fail("{}: required key '{}{}' is missing", f.path(), p, key);
      return def;
    }
    if (*v < min || *v > max) fail("{}: key '{}{}' is {}, expected {}..{}", f.path(), p, key, *v, min, max);
    return static_cast<uint32_t>(*v);
  };
  constexpr uint32_t kMaxDim = 1u << 20;
  c.dim = get_u32("embedding_length", true, 0, 1, kMaxDim);
  c.hidden_dim = get_u32("feed_forward_length", true, 0, 1, 4 * kMaxDim);
  c.n_layers = get_u32("block_count", true, 0, 1, 4096);
  c.n_heads = get_u32("attention.head_count", true, 0, 1, c.dim);
  c.n_kv_heads = get_u32("attention.head_count_kv", false, c.n_heads, 1, c.n_heads);
  c.n_ctx_train = get_u32("context_length", false, 4096, 1, 1u << 24);
  if (c.dim % c.n_heads != 0)
    fail("{}: embedding_length {} is not divisible by attention.head_count {}", f.path(), c.dim, c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0)
    fail("{}: attention.head_count {} is not a multiple of attention.head_count_kv {}", f.path(), c.n_heads,
         c.n_kv_heads);
  c.head_dim = c.dim / c.n_heads;
  c.rope_dim = get_u32("rope.dimension_count", false, c.head_dim, 2, c.head_dim);
  if (c.rope_dim % 2 != 0) fail("{}: rope.dimension_count {} is odd", f.path(), c.rope_dim);

  if (auto eps = f.get_float(p + "attention.layer_norm_rms_epsilon")) {
    if (!(*eps > 0 && *eps < 1)) fail("{}: {}attention.layer_norm_rms_epsilon is {}, expected 0 < eps < 1", f.path(), p, *eps);
    c.norm_eps = static_cast<float>(*eps);
  }
  if (auto theta = f.get_float(p + "rope.freq_base")) {
    if (!(*theta > 1)) fail("{}: {}rope.freq_base is {}, expected > 1", f.path(), p, *theta);
    c.rope_theta = static_cast<float>(*theta);
  }

  c.act = c.info.default_act;
  if (c.info.arch == Arch::Bitnet) {
    // `<arch>.hidden_activation` is llama.cpp's key (proposed for bitnet in its PR #26751; released
    // builds up to v0.4.0 ignore it and use SiLU); `hidden_act` is the Hugging Face config name.
    for (const char* key : {"hidden_activation", "hidden_act"}) {
      if (auto name = f.get_string(p + key)) {
        auto a = activation_from_name(*name);
        if (!a) fail("{}: {}{} is '{}', which bitnet does not implement", f.path(), p, key, *name);
        c.act = *a;
      }
    }
  }

  const GgufTensorInfo* emb = f.tensor("token_embd.weight");
  if (auto v = f.get_int(p + "vocab_size")) {
    if (*v < 1 || *v > (1 << 24)) fail("{}: {}vocab_size is {}", f.path(), p, *v);
    c.vocab_size = static_cast<uint32_t>(*v);
  } else if (emb && emb->n_dims == 2) {
    c.vocab_size = static_cast<uint32_t>(std::min<uint64_t>(emb->ne[1], 1u << 24));
  } else if (const GgufArray* toks = f.get_array("tokenizer.ggml.tokens", GgufType::STRING)) {
    c.vocab_size = static_cast<uint32_t>(std::min<uint64_t>(toks->count, 1u << 24));
  }
  c.tied_output = f.tensor("output.weight") == nullptr;
  return c;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const uint64_t d = c.dim, ff = c.hidden_dim, q = uint64_t(c.n_heads) * c.head_dim,
                 kv = uint64_t(c.n_kv_heads) * c.head_dim, V = c.vocab_size;
  std::vector<ExpectedTensor> out;
  auto add = [&](std::string kind, int layer, TensorRole role, std::vector<uint64_t> ne, bool required) {
    std::string name = layer < 0 ? kind + ".weight" : "blk." + std::to_string(layer) + "." + kind + ".weight";
    if (role == TensorRole::Scale) name = "blk." + std::to_string(layer) + "." + kind + ".scale";
    out.push_back({name, role, std::move(ne), required, layer, std::move(kind)});
  };
  add("token_embd", -1, TensorRole::Embedding, {d, V}, true);
  add("output_norm", -1, TensorRole::Norm, {d}, true);
  if (c.info.output_allowed) add("output", -1, TensorRole::Output, {d, V}, false);
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    add("attn_norm", l, TensorRole::Norm, {d}, true);
    add("attn_q", l, TensorRole::Linear, {d, q}, true);
    add("attn_k", l, TensorRole::Linear, {d, kv}, true);
    add("attn_v", l, TensorRole::Linear, {d, kv}, true);
    if (c.info.sub_norms) add("attn_sub_norm", l, TensorRole::Norm, {q}, true);
    add("attn_output", l, TensorRole::Linear, {q, d}, true);
    add("ffn_norm", l, TensorRole::Norm, {d}, true);
    add("ffn_gate", l, TensorRole::Linear, {d, ff}, true);
    add("ffn_up", l, TensorRole::Linear, {d, ff}, true);
    if (c.info.sub_norms) add("ffn_sub_norm", l, TensorRole::Norm, {ff}, true);
    add("ffn_down", l, TensorRole::Linear, {ff, d}, true);
    if (c.info.scale_tensors)
      for (const char* k : kLinearKinds) add(k, l, TensorRole::Scale, {1}, false);
  }
  return out;
}

}  // namespace bitnet
