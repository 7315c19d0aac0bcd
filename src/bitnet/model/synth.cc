#include "bitnet/model/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/quantize.h"
#include "bitnet/format/ternary.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/norm_profile.h"
#include "bitnet/model/synth_random.h"
#include "bitnet/model/vocab_gguf.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/vocab.h"

namespace bitnet {

namespace {

// The chat template embedded in the official GGUF by bitnet.cpp's convert-ms-to-gguf-bitnet.py
// (BITNET_FORMATS.md §6, template 2). Reproduced so that synthetic files look like the real one.
constexpr const char* kOfficialChatTemplate =
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";

uint32_t file_type_for(TensorType t) {
  switch (t) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::BF16: return 32;
    case TensorType::TQ1_0: return 36;
    case TensorType::TQ2_0: return 37;
    case TensorType::I2_S: return 40;
    default: return 0;
  }
}

// Ternary values of one tensor: P(-1) = P(+1) = 85/256, P(0) = 86/256.
void ternary_values(uint64_t seed, const std::string& name, uint64_t n, int8_t* w) {
  SynthRng rng(seed, name);
  for (uint64_t i = 0; i < n; i += 8) {
    uint64_t r = rng.next();
    for (uint64_t k = 0; k < 8 && i + k < n; ++k, r >>= 8) w[i + k] = static_cast<int8_t>(((r & 0xFF) * 3 >> 8) - 1);
  }
}

// Per-tensor absmean scale of a ternary projection, in [1, 2) like the real checkpoint's. A multiple of
// 1/128, so it is exact in fp16 (TQ block scales) and bf16 as well as f32.
float ternary_scale(uint64_t seed, const std::string& name) {
  SynthRng rng(seed, name + "#scale");
  return 1.0f + static_cast<float>(rng.next() % 128) / 128.0f;
}

void encode_linear(TensorType type, const int8_t* w, uint64_t n, float scale, uint8_t* dst) {
  switch (type) {
    case TensorType::I2_S: i2s_encode(w, n, scale, dst); return;
    case TensorType::TQ2_0:
    case TensorType::TQ1_0: {
      const uint16_t d = f32_to_fp16(scale);
      const uint64_t bytes = type_traits(type).block_bytes;
      for (uint64_t b = 0; b < n / kQK; ++b)
        (type == TensorType::TQ2_0 ? tq2_encode_block : tq1_encode_block)(w + b * kQK, d, dst + b * bytes);
      return;
    }
    case TensorType::F32:
      for (uint64_t i = 0; i < n; ++i) {
        const float v = w[i] * scale;
        std::memcpy(dst + 4 * i, &v, 4);
      }
      return;
    case TensorType::F16:
    case TensorType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        const float v = w[i] * scale;
        const uint16_t h = type == TensorType::F16 ? f32_to_fp16(v) : f32_to_bf16(v);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    default: fail("synth: linear weights cannot be stored as {}", type_traits(type).name);
  }
}

void encode_floats(TensorType type, const std::vector<float>& v, uint8_t* dst) {
  if (!can_quantize(type) || type == TensorType::BF16) fail("synth: embeddings cannot be stored as {}", type_traits(type).name);
  quantize_row(type, v.data(), v.size(), dst);
}

void check_options(const SynthOptions& o, const ArchInfo& info) {
  if (o.n_heads == 0 || o.dim % o.n_heads != 0) fail("synth: --dim {} is not divisible by --heads {}", o.dim, o.n_heads);
  if (o.n_kv_heads == 0 || o.n_heads % o.n_kv_heads != 0)
    fail("synth: --heads {} is not a multiple of --kv-heads {}", o.n_heads, o.n_kv_heads);
  if ((o.dim / o.n_heads) % 2 != 0) fail("synth: head dimension {} must be even (RoPE)", o.dim / o.n_heads);
  if (o.n_layers == 0) fail("synth: --layers must be at least 1");
  const TypeTraits& wt = type_traits(o.weight_type);
  const bool linear_ok = o.weight_type == TensorType::I2_S || o.weight_type == TensorType::TQ2_0 ||
                         o.weight_type == TensorType::TQ1_0 || o.weight_type == TensorType::F16 ||
                         o.weight_type == TensorType::BF16 || o.weight_type == TensorType::F32;
  if (!linear_ok) fail("synth: --type {} is not a linear weight type (i2_s, tq2_0, tq1_0, f16, bf16, f32)", wt.name);
  if (o.weight_type == TensorType::I2_S && info.arch != Arch::BitnetB158)
    fail("synth: I2_S is bitnet.cpp's type and only valid for arch bitnet-b1.58 (llama.cpp reads id 36 differently)");
  for (uint32_t k : {o.dim, o.hidden_dim})
    if (k % wt.block_size != 0)
      fail("synth: {} weights need input dimensions that are multiples of {}, got {}", wt.name, wt.block_size, k);
  const TypeTraits& et = type_traits(o.embd_type);
  if (o.embd_type != TensorType::F16 && o.embd_type != TensorType::F32 && o.embd_type != TensorType::Q8_0 &&
      o.embd_type != TensorType::Q6_K)
    fail("synth: --embd-type {} is not supported (f16, f32, q8_0, q6_k)", et.name);
  if (o.dim % et.block_size != 0) fail("synth: {} embeddings need --dim a multiple of {}", et.name, et.block_size);
}

}  // namespace

void apply_preset(SynthOptions& o, const std::string& preset) {
  if (preset != "2b-4t") fail("synth: unknown preset '{}' (known: 2b-4t)", preset);
  o.dim = 2560;
  o.hidden_dim = 6912;
  o.n_layers = 30;
  o.n_heads = 20;
  o.n_kv_heads = 5;
  o.n_ctx = 4096;
  o.rope_theta = 500000.0f;
  o.norm_eps = 1e-5f;
  o.vocab = "llama3";
  o.name = "bitnet2b-synth";
}

GgufWriter synth_model(const SynthOptions& o) {
  const auto info = arch_info(o.arch);
  if (!info || o.arch == "bitnet-25")
    fail("synth: --arch '{}' is not one of bitnet-b1.58, bitnet, llama", o.arch);
  check_options(o, *info);
  if (o.output_tensor && !info->output_allowed)
    fail("synth: arch {} has no output.weight (llama.cpp always ties its LM head to token_embd)", o.arch);

  VocabData vocab;
  if (o.vocab == "tiny") {
    vocab = tiny_bpe_vocab();
  } else if (o.vocab == "llama3") {
    if (o.tokenizer_json.empty()) fail("synth: the llama3 vocabulary needs the path of its tokenizer.json");
    vocab = load_hf_tokenizer_json(o.tokenizer_json);
  } else {
    fail("synth: unknown --vocab '{}' (tiny, llama3)", o.vocab);
  }
  vocab.pre = o.write_pre ? "llama-bpe" : "";
  if (info->arch != Arch::BitnetB158) vocab.pre = "llama-bpe";  // llama.cpp would fall back to its default regex

  GgufWriter w;
  const std::string A = o.arch + ".";
  w.set("general.architecture", GgufValue::of_string(o.arch));
  w.set("general.name", GgufValue::of_string(o.name));
  w.set(A + "vocab_size", GgufValue::of_u32(static_cast<uint32_t>(vocab.tokens.size())));
  w.set(A + "context_length", GgufValue::of_u32(o.n_ctx));
  w.set(A + "embedding_length", GgufValue::of_u32(o.dim));
  w.set(A + "block_count", GgufValue::of_u32(o.n_layers));
  w.set(A + "feed_forward_length", GgufValue::of_u32(o.hidden_dim));
  w.set(A + "rope.dimension_count", GgufValue::of_u32(o.dim / o.n_heads));
  w.set(A + "attention.head_count", GgufValue::of_u32(o.n_heads));
  w.set(A + "attention.head_count_kv", GgufValue::of_u32(o.n_kv_heads));
  w.set(A + "attention.layer_norm_rms_epsilon", GgufValue::of_f32(o.norm_eps));
  w.set(A + "rope.freq_base", GgufValue::of_f32(o.rope_theta));
  if (!o.activation.empty()) {
    if (info->arch != Arch::Bitnet) fail("synth: --act applies to arch bitnet only");
    if (!activation_from_name(o.activation)) fail("synth: unknown activation '{}'", o.activation);
    w.set(A + "hidden_activation", GgufValue::of_string(o.activation));
  }
  w.set("general.file_type", GgufValue::of_u32(file_type_for(o.weight_type)));
  put_vocab(w, vocab);
  if (info->arch == Arch::BitnetB158) w.set("tokenizer.chat_template", GgufValue::of_string(kOfficialChatTemplate));
  w.set("general.quantization_version", GgufValue::of_u32(2));

  // The config the file describes, to lay out the tensors from the architecture table.
  ModelConfig c;
  c.info = *info;
  c.dim = o.dim;
  c.hidden_dim = o.hidden_dim;
  c.n_layers = o.n_layers;
  c.n_heads = o.n_heads;
  c.n_kv_heads = o.n_kv_heads;
  c.head_dim = o.dim / o.n_heads;
  c.vocab_size = static_cast<uint32_t>(vocab.tokens.size());

  const uint64_t seed = o.seed;
  for (const ExpectedTensor& t : expected_tensors(c)) {
    if (!t.required && !(t.role == TensorRole::Output && o.output_tensor)) continue;
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    const std::string name = t.name;
    switch (t.role) {
      case TensorRole::Linear: {
        const TensorType type = o.weight_type;
        w.add_tensor(name, type, t.ne, [=](uint8_t* dst, uint64_t) {
          std::vector<int8_t> tern(n);
          ternary_values(seed, name, n, tern.data());
          encode_linear(type, tern.data(), n, ternary_scale(seed, name), dst);
        });
        break;
      }
      case TensorRole::Norm: {
        const NormRange r = synth_norm_range(info->arch, t.kind, t.layer, o.n_layers);
        w.add_tensor(name, TensorType::F32, t.ne, [=](uint8_t* dst, uint64_t) {
          SynthRng rng(seed, name);
          std::vector<float> g(n);
          for (float& x : g) x = static_cast<float>(rng.uniform(r.lo, r.hi));
          if (r.outlier != 0) g[n / 2] = r.outlier;  // the real last attn_sub_norm holds one large negative gain
          encode_floats(TensorType::F32, g, dst);
        });
        break;
      }
      case TensorRole::Embedding:
      case TensorRole::Output: {
        const TensorType type = o.embd_type;
        w.add_tensor(name, type, t.ne, [=](uint8_t* dst, uint64_t) {
          SynthRng rng(seed, name);
          std::vector<float> e(n);
          for (float& x : e) x = static_cast<float>(0.35 * rng.normal());
          encode_floats(type, e, dst);
        });
        break;
      }
      case TensorRole::Scale: break;
    }
  }
  return w;
}

}  // namespace bitnet
