#include "bitnet/convert/convert.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/base/utf8.h"
#include "bitnet/convert/hf_config.h"
#include "bitnet/convert/progress.h"
#include "bitnet/convert/ternary_tensor.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/safetensors.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/vocab_gguf.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/spm_model.h"
#include "bitnet/text/vocab.h"

namespace bitnet {

namespace {

// GGUF tensor kind -> Hugging Face names (layer tensors after "model.layers.N."), BITNET_FORMATS.md §5.4.
// The second spelling is that of the older BitnetForCausalLM checkpoints (1bitLLM), as gguf-py maps them.
struct KindRule {
  const char* kind;
  std::array<const char*, 2> hf;
};
constexpr std::array<KindRule, 14> kNameTable = {{
    {"token_embd", {"model.embed_tokens.weight", nullptr}},
    {"output_norm", {"model.norm.weight", nullptr}},
    {"output", {"lm_head.weight", nullptr}},
    {"attn_norm", {"input_layernorm.weight", nullptr}},
    {"attn_q", {"self_attn.q_proj.weight", nullptr}},
    {"attn_k", {"self_attn.k_proj.weight", nullptr}},
    {"attn_v", {"self_attn.v_proj.weight", nullptr}},
    {"attn_sub_norm", {"self_attn.attn_sub_norm.weight", "self_attn.inner_attn_ln.weight"}},
    {"attn_output", {"self_attn.o_proj.weight", nullptr}},
    {"ffn_norm", {"post_attention_layernorm.weight", nullptr}},
    {"ffn_gate", {"mlp.gate_proj.weight", nullptr}},
    {"ffn_up", {"mlp.up_proj.weight", nullptr}},
    {"ffn_sub_norm", {"mlp.ffn_sub_norm.weight", "mlp.ffn_layernorm.weight"}},
    {"ffn_down", {"mlp.down_proj.weight", nullptr}},
}};

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("{}: cannot open", p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string dims(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::optional<TensorType> float_type(StDtype d) {
  switch (d) {
    case StDtype::F32: return TensorType::F32;
    case StDtype::F16: return TensorType::F16;
    case StDtype::BF16: return TensorType::BF16;
    default: return std::nullopt;
  }
}

// A view of a float safetensors tensor as a GGUF tensor (same row-major bytes; ne reversed).
GgufTensorInfo as_gguf(const SafetensorsTensor& t, const std::string& gguf_name) {
  GgufTensorInfo g;
  g.name = gguf_name;
  g.n_dims = static_cast<uint32_t>(t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) g.ne[i] = t.shape[t.shape.size() - 1 - i];
  g.type = *float_type(t.dtype);
  g.nbytes = t.nbytes;
  g.data = t.data;
  return g;
}

// Calls f(at) with at(i) -> float for element i, specialised per dtype (hot loops over billions of values).
template <typename F>
void with_float_reader(const SafetensorsTensor& t, F&& f) {
  const uint8_t* p = t.data;
  switch (t.dtype) {
    case StDtype::F32: f([p](uint64_t i) { float v; std::memcpy(&v, p + 4 * i, 4); return v; }); return;
    case StDtype::F16: f([p](uint64_t i) { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return fp16_to_f32(h); }); return;
    case StDtype::BF16: f([p](uint64_t i) { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return bf16_to_f32(h); }); return;
    default: fail("{}: tensor '{}' is {}, expected F32, F16 or BF16", *t.file, t.name, st_dtype_name(t.dtype));
  }
}

// How one linear weight is stored in the checkpoint.
struct LinearSource {
  enum Form { kMaster, kPacked, kInt8, kFloatTernary } form = kMaster;
  const SafetensorsTensor* w = nullptr;
  float scale = 0;  // kPacked / kInt8: the per-tensor scale to store
};

TernaryTensor load_linear(const LinearSource& src, const std::string& name, uint64_t cols, uint64_t rows) {
  TernaryTensor t;
  t.name = name;
  t.cols = cols;
  t.rows = rows;
  const SafetensorsTensor& w = *src.w;
  switch (src.form) {
    case LinearSource::kMaster:
      with_float_reader(w, [&](auto at) { ternarize_absmean(t, at); });
      return t;
    case LinearSource::kFloatTernary: {
      t = ternary_from_gguf(as_gguf(w, name));
      return t;
    }
    case LinearSource::kPacked: {
      // [rows/4][cols] bytes; bits 2i..2i+1 of byte (r, c) hold row i*(rows/4) + r (§5.2).
      const uint64_t pr = rows / 4;
      t.codes.resize(rows * cols);
      for (uint64_t r = 0; r < pr; ++r)
        for (uint64_t c = 0; c < cols; ++c) {
          const uint8_t b = w.data[r * cols + c];
          for (uint64_t i = 0; i < 4; ++i) {
            const int code = (b >> (2 * i)) & 3;
            if (code == 3)
              fail("{}: tensor '{}': packed byte at row {}, column {} (file offset {}) holds the invalid 2-bit code 3",
                   *w.file, w.name, r, c, w.offset + r * cols + c);
            t.codes[(i * pr + r) * cols + c] = static_cast<int8_t>(code - 1);
          }
        }
      t.scale = src.scale;
      return t;
    }
    case LinearSource::kInt8: {
      t.codes.resize(rows * cols);
      for (uint64_t i = 0; i < rows * cols; ++i) {
        const int8_t v = static_cast<int8_t>(w.data[i]);
        if (v < -1 || v > 1)
          fail("{}: tensor '{}': element {} (file offset {}) is {}, expected -1, 0 or 1", *w.file, w.name, i,
               w.offset + i, v);
        t.codes[i] = v;
      }
      t.scale = src.scale;
      return t;
    }
  }
  return t;
}

std::string chat_template_of(const std::filesystem::path& config_path) {
  if (!std::filesystem::exists(config_path)) return {};
  try {
    const nlohmann::json c = nlohmann::json::parse(read_text(config_path));
    if (!c.contains("chat_template")) return {};
    const nlohmann::json& t = c.at("chat_template");
    if (t.is_string()) return t.get<std::string>();
    if (t.is_array()) {  // [{name, template}]: the "default" one, else the first
      for (const auto& e : t)
        if (e.value("name", "") == "default") return e.value("template", "");
      if (!t.empty()) return t[0].value("template", "");
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}", config_path.string(), e.what());
  }
  return {};
}

// What a SentencePiece model's folder adds to its pieces (1bitLLM's <pad>, </line>): added_tokens.json
// {content: id}, with tokenizer_config.json's added_tokens_decoder {id: {content, special}} for which are
// special (control) and which user-defined; and tokenizer_config.json's pad_token, usually one of them.
void add_hf_added_tokens(VocabData& v, const std::filesystem::path& dir) {
  std::map<int64_t, std::pair<std::string, bool>> added;  // id -> (content, special)
  const auto parse = [](const std::filesystem::path& p) {
    try {
      return nlohmann::json::parse(read_text(p));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: {}", p.string(), e.what());
    }
  };
  const std::filesystem::path config_path = dir / "tokenizer_config.json", list = dir / "added_tokens.json";
  const nlohmann::json config = std::filesystem::exists(config_path) ? parse(config_path) : nlohmann::json::object();
  if (config.contains("added_tokens_decoder") && config.at("added_tokens_decoder").is_object())
    for (const auto& [key, t] : config.at("added_tokens_decoder").items()) {
      char* end = nullptr;
      const long long id = std::strtoll(key.c_str(), &end, 10);
      if (end == key.c_str() || *end != '\0' || id < 0 || !t.is_object() || !t.contains("content") ||
          !t.at("content").is_string())
        fail("{}: added_tokens_decoder entry '{}' is not {{\"<id>\": {{\"content\": ...}}}}", config_path.string(), key);
      added[id] = {t.at("content").get<std::string>(), t.value("special", false)};
    }
  if (std::filesystem::exists(list)) {
    const nlohmann::json a = parse(list);
    if (!a.is_object()) fail("{}: expected an object {{\"token\": id}}", list.string());
    for (const auto& [content, id] : a.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0)
        fail("{}: token '{}' has id {}, expected a non-negative integer", list.string(), escape_for_message(content), id.dump());
      auto& slot = added[id.get<int64_t>()];
      if (slot.first.empty()) slot = {content, false};
    }
  }
  for (const auto& [id, t] : added) {
    const auto i = static_cast<size_t>(id);
    if (i < v.tokens.size()) {
      if (v.tokens[i] != t.first)
        fail("{}: added token '{}' has id {}, which tokenizer.model gives to '{}'", dir.string(),
             escape_for_message(t.first), id, escape_for_message(v.tokens[i]));
      continue;
    }
    if (i > v.tokens.size() + 65536) fail("{}: added token '{}' has the unlikely id {}", dir.string(), escape_for_message(t.first), id);
    while (v.tokens.size() < i) {  // holes, as llama.cpp's converter pads them
      v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
      v.scores.push_back(0.0f);
      v.token_types.push_back(static_cast<int32_t>(TokenType::kUnused));
    }
    v.tokens.push_back(t.first);
    v.scores.push_back(0.0f);
    v.token_types.push_back(static_cast<int32_t>(t.second ? TokenType::kControl : TokenType::kUserDefined));
  }
  // pad_token: a string or an AddedToken object {"content": ...}.
  const nlohmann::json pad = config.value("pad_token", nlohmann::json());
  const nlohmann::json pad_text = pad.is_object() ? pad.value("content", nlohmann::json()) : pad;
  if (v.pad_id < 0 && pad_text.is_string()) {
    const auto it = std::find(v.tokens.begin(), v.tokens.end(), pad_text.get<std::string>());
    if (it != v.tokens.end()) v.pad_id = static_cast<int32_t>(it - v.tokens.begin());
  }
}

// The folder's vocabulary: SentencePiece tokenizer.model when there is one (what llama.cpp's and bitnet.cpp's
// converters read for LLaMA-2-vocabulary models, GGUF model "llama"), else tokenizer.json.
VocabData vocab_of_folder(const std::filesystem::path& dir, std::vector<std::string>& notes) {
  const std::filesystem::path spm = dir / "tokenizer.model", tok = dir / "tokenizer.json";
  if (std::filesystem::exists(spm)) {
    VocabData v = load_sentencepiece_model(spm);
    add_hf_added_tokens(v, dir);
    notes.push_back(fmt::format("vocabulary from tokenizer.model (SentencePiece BPE, {} tokens)", v.tokens.size()));
    return v;
  }
  if (!std::filesystem::exists(tok))
    fail("{}: no tokenizer.model or tokenizer.json: the converter needs the model's vocabulary", dir.string());
  VocabData v = load_hf_tokenizer_json(tok);
  if (v.model == "bpe")
    notes.push_back("tokenizer.json is not byte-level BPE: the file stores its pipeline "
                    "(tokenizer.bitnet.hf_pipeline), which llama.cpp does not read");
  else if (v.pre.empty())
    notes.push_back("no llama.cpp pre-tokenizer name matches tokenizer.json's; the file stores the pipeline "
                    "(tokenizer.bitnet.hf_pipeline), llama.cpp will use its default");
  return v;
}

// llama.cpp's LLaMA graph rotates adjacent pairs (2i, 2i+1); Hugging Face's rotates (i, i + d/2). Its
// converter therefore reorders the rows of q_proj and k_proj within each head (convert_hf_to_gguf.py
// LlamaModel.permute): new row 2i + t of a head = old row t * d/2 + i.
void permute_for_norm_rope(TernaryTensor& t, uint32_t n_head) {
  const uint64_t d = t.rows / n_head, half = d / 2;
  std::vector<int8_t> out(t.codes.size());
  for (uint64_t h = 0; h < n_head; ++h)
    for (uint64_t i = 0; i < half; ++i)
      for (uint64_t k = 0; k < 2; ++k)
        std::memcpy(&out[(h * d + 2 * i + k) * t.cols], &t.codes[(h * d + k * half + i) * t.cols], t.cols);
  t.codes = std::move(out);
}

}  // namespace

std::vector<std::string> hf_names_for(const std::string& kind, int layer) {
  std::vector<std::string> out;
  for (const KindRule& r : kNameTable) {
    if (kind != r.kind) continue;
    for (const char* n : r.hf)
      if (n) out.push_back(layer < 0 ? std::string(n) : "model.layers." + std::to_string(layer) + "." + n);
  }
  return out;
}

GgufWriter plan_convert(const ConvertOptions& o, const SafetensorsCheckpoint& ckpt, Progress& progress,
                        ConvertSummary* summary) {
  const std::filesystem::path cfg_path = o.input / "config.json";
  const HfConfig cfg = parse_hf_config(read_text(cfg_path), cfg_path.string());
  return plan_convert(o, cfg, vocab_of_folder(o.input, summary->notes), chat_template_of(o.input / "tokenizer_config.json"),
                      ckpt, progress, summary);
}

GgufWriter plan_convert(const ConvertOptions& o, const HfConfig& cfg, VocabData vocab, const std::string& chat_template,
                        const SafetensorsCheckpoint& ckpt, Progress& progress, ConvertSummary* summary) {
  std::vector<std::string>& notes = summary->notes;
  auto find_any = [&](const std::vector<std::string>& names) -> const SafetensorsTensor* {
    for (const auto& n : names)
      if (const SafetensorsTensor* t = ckpt.find(n)) return t;
    return nullptr;
  };

  // ---- architecture, activation, types ----
  const auto act = activation_from_name(cfg.hidden_act);
  if (!act) fail("config.json: hidden_act '{}' is not supported (relu2, silu, gelu, relu)", cfg.hidden_act);
  const bool has_sub_norms = find_any(hf_names_for("attn_sub_norm", 0)) != nullptr;
  std::string arch = o.arch;
  if (arch.empty()) {
    if (cfg.architecture == "LlamaForCausalLM" && !has_sub_norms) arch = "llama";
    else arch = *act == Activation::ReluSqr ? "bitnet-b1.58" : "bitnet";
  }
  const auto info = arch_info(arch);
  if (!info || arch == "bitnet-25") fail("--arch '{}' is not one of bitnet-b1.58, bitnet, llama", arch);
  if (info->arch == Arch::BitnetB158 && *act != Activation::ReluSqr)
    fail("--arch bitnet-b1.58 implies the relu2 activation, but config.json has hidden_act '{}'; use --arch bitnet",
         cfg.hidden_act);
  if (info->arch == Arch::Llama && *act != Activation::Silu)
    fail("--arch llama implies SiLU, but config.json has hidden_act '{}'", cfg.hidden_act);
  if (info->arch == Arch::Llama && has_sub_norms)
    fail("the checkpoint has BitNet sub-norms (attn_sub_norm), which arch llama would drop; use --arch bitnet");
  if (info->arch == Arch::Bitnet && *act != Activation::Silu)
    notes.push_back(fmt::format("bitnet.hidden_activation = {}: bitnet honours it, but llama.cpp releases up to "
                                "v0.4.0 ignore the key and run SiLU", activation_name(*act)));

  const TensorType type = o.type.empty() ? (info->arch == Arch::BitnetB158 ? TensorType::I2_S : TensorType::TQ2_0)
                                         : linear_type_from_name(o.type);
  if (type == TensorType::I2_S && info->arch != Arch::BitnetB158)
    notes.push_back(fmt::format("I2_S with arch {}: bitnet and bitnet.cpp read it; mainline llama.cpp does not know "
                                "type 36 (use tq2_0 or tq1_0 for it)", arch));
  const TensorType embd_type = embedding_type_from_name(o.embedding_type);
  const TensorType output_type = o.output_type.empty() ? embd_type : output_type_from_name(o.output_type);
  summary->arch = arch;
  summary->type = type;
  summary->embedding_type = embd_type;

  ModelConfig c;
  c.info = *info;
  c.arch_name = arch;
  c.dim = cfg.dim;
  c.hidden_dim = cfg.hidden_dim;
  c.n_layers = cfg.n_layers;
  c.n_heads = cfg.n_heads;
  c.n_kv_heads = cfg.n_kv_heads;
  c.head_dim = cfg.dim / cfg.n_heads;
  c.vocab_size = cfg.vocab_size;

  // ---- LM head: tied unless the checkpoint has an lm_head and does not say it is tied ----
  const SafetensorsTensor* lm_head = ckpt.find("lm_head.weight");
  const bool untied = lm_head && cfg.tie_word_embeddings != 1;
  if (cfg.tie_word_embeddings == 0 && !lm_head)
    fail("{}: config.json says tie_word_embeddings: false, but there is no lm_head.weight", ckpt.source());
  if (untied && !info->output_allowed)
    fail("{}: the checkpoint has an untied lm_head.weight, but llama.cpp's bitnet architecture always uses token_embd "
         "as the LM head; use --arch bitnet-b1.58", ckpt.source());
  if (lm_head && !untied) notes.push_back("lm_head.weight ignored: tie_word_embeddings is true");

  // ---- vocabulary ----
  if (vocab.tokens.size() > cfg.vocab_size)
    fail("tokenizer.json has {} tokens but config.json vocab_size is {}", vocab.tokens.size(), cfg.vocab_size);
  for (size_t i = vocab.tokens.size(); i < cfg.vocab_size; ++i) {  // padded embedding rows, as llama.cpp's converter
    vocab.tokens.push_back("[PAD" + std::to_string(i) + "]");
    if (!vocab.token_types.empty()) vocab.token_types.push_back(static_cast<int32_t>(TokenType::kUnused));
    if (!vocab.scores.empty()) vocab.scores.push_back(0.0f);
  }

  // ---- weight_scale direction (packed and int8 forms) ----
  std::string direction = o.weight_scale;
  if (direction != "auto" && direction != "multiply" && direction != "divide")
    fail("--weight-scale '{}' is not one of auto, multiply, divide", direction);
  bool direction_noted = false;
  auto resolve_direction = [&]() {
    if (direction == "auto") {
      if (cfg.linear_class == "autobitlinear") direction = "multiply";
      else if (cfg.linear_class == "bitlinear" || (cfg.quant_method == "bitnet" && cfg.linear_class.empty()))
        direction = "divide";
      else
        fail("config.json has no quantization_config.linear_class, so the meaning of weight_scale is unknown: pass "
             "--weight-scale multiply (AutoBitLinear: weight_scale is the absmean) or divide (BitLinear: its inverse)");
    }
    if (!direction_noted)
      notes.push_back(fmt::format("weight_scale {} (quantization_config.linear_class '{}'{})",
                                  direction == "multiply" ? "multiplies: stored as the scale" : "divides: stored as 1/weight_scale",
                                  cfg.linear_class, o.weight_scale == "auto" ? "" : ", set by --weight-scale"));
    direction_noted = true;
  };

  // ---- metadata, in the official file's order (as bitnet synth writes it) ----
  GgufWriter w;
  const std::string A = arch + ".";
  w.set("general.architecture", GgufValue::of_string(arch));
  std::string model_name = o.name;
  if (model_name.empty()) {  // the folder's name, for "dir" and "dir/" alike
    std::filesystem::path p = std::filesystem::absolute(o.input).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    model_name = p.filename().string();
  }
  w.set("general.name", GgufValue::of_string(model_name));
  w.set(A + "vocab_size", GgufValue::of_u32(cfg.vocab_size));
  w.set(A + "context_length", GgufValue::of_u32(cfg.n_ctx));
  w.set(A + "embedding_length", GgufValue::of_u32(cfg.dim));
  w.set(A + "block_count", GgufValue::of_u32(cfg.n_layers));
  w.set(A + "feed_forward_length", GgufValue::of_u32(cfg.hidden_dim));
  w.set(A + "rope.dimension_count", GgufValue::of_u32(c.head_dim));
  w.set(A + "attention.head_count", GgufValue::of_u32(cfg.n_heads));
  w.set(A + "attention.head_count_kv", GgufValue::of_u32(cfg.n_kv_heads));
  w.set(A + "attention.layer_norm_rms_epsilon", GgufValue::of_f32(cfg.norm_eps));
  w.set(A + "rope.freq_base", GgufValue::of_f32(cfg.rope_theta));
  if (info->arch == Arch::Bitnet) w.set(A + "hidden_activation", GgufValue::of_string(activation_name(*act)));
  w.set("general.file_type", GgufValue::of_u32(file_type_of(type)));
  put_vocab(w, vocab);
  if (!chat_template.empty()) w.set("tokenizer.chat_template", GgufValue::of_string(chat_template));
  w.set("general.quantization_version", GgufValue::of_u32(2));

  // ---- tensors ----
  std::set<std::string> used;
  auto need = [&](const ExpectedTensor& e) -> const SafetensorsTensor* {
    const std::vector<std::string> names = hf_names_for(e.kind, e.layer);
    const SafetensorsTensor* t = find_any(names);
    if (!t) fail("{}: tensor '{}' (for {}) is missing", ckpt.source(), names.at(0), e.name);
    used.insert(t->name);
    return t;
  };
  auto check_shape = [&](const SafetensorsTensor& t, const std::vector<uint64_t>& want, const std::string& gguf) {
    if (t.shape != want)
      fail("{}: tensor '{}' (for {}) has shape {}, expected {} from config.json", *t.file, t.name, gguf,
           t.shape_string(), dims(want));
  };
  auto check_float = [&](const SafetensorsTensor& t) {
    if (!float_type(t.dtype))
      fail("{}: tensor '{}' is {}, expected F32, F16 or BF16", *t.file, t.name, st_dtype_name(t.dtype));
  };
  const SafetensorsCheckpoint* ck = &ckpt;
  Progress* prog = &progress;

  for (const ExpectedTensor& e : expected_tensors(c)) {
    const std::string name = e.name;
    if (e.role == TensorRole::Scale) continue;
    if (e.role == TensorRole::Output && !untied) continue;
    const SafetensorsTensor* src = need(e);
    const std::vector<uint64_t> hf_shape(e.ne.rbegin(), e.ne.rend());
    switch (e.role) {
      case TensorRole::Embedding:
      case TensorRole::Output: {
        check_float(*src);
        check_shape(*src, hf_shape, name);
        const TensorType out_type = e.role == TensorRole::Output ? output_type : embd_type;
        if (e.ne[0] % type_traits(out_type).block_size != 0)
          fail("{} {} needs hidden_size a multiple of {}, got {}", type_traits(out_type).name, name,
               type_traits(out_type).block_size, e.ne[0]);
        w.add_tensor(name, out_type, e.ne, [ck, prog, src, embd_type = out_type](uint8_t* dst, uint64_t) {
          const TensorType ft = *float_type(src->dtype);
          const uint64_t n = src->n_elements, row = src->shape.back();
          const uint64_t chunk = std::max<uint64_t>(1, (1u << 20) / row) * row;  // whole rows, ~1 M elements
          const uint64_t out_row_bytes = [&] { uint64_t b = 0; row_nbytes(embd_type, row, &b); return b; }();
          std::vector<float> x;
          for (uint64_t s = 0; s < n; s += chunk) {
            const uint64_t cnt = std::min(chunk, n - s);
            x.resize(cnt);
            dequantize(ft, src->data, n, s, cnt, x.data());
            encode_floats(embd_type, x.data(), cnt, dst + s / row * out_row_bytes);
            ck->release(*src, s * st_dtype_size(src->dtype), cnt * st_dtype_size(src->dtype));
            prog->advance(cnt / row * out_row_bytes);
          }
        });
        break;
      }
      case TensorRole::Norm: {
        check_float(*src);
        check_shape(*src, hf_shape, name);
        w.add_tensor(name, TensorType::F32, e.ne, [ck, prog, src](uint8_t* dst, uint64_t nbytes) {
          std::vector<float> x(src->n_elements);
          dequantize(*float_type(src->dtype), src->data, src->n_elements, 0, src->n_elements, x.data());
          encode_floats(TensorType::F32, x.data(), x.size(), dst);
          ck->release(*src);
          prog->advance(nbytes);
        });
        break;
      }
      case TensorRole::Linear: {
        const uint64_t cols = e.ne[0], rows = e.ne[1];
        const uint64_t blk = type_traits(type).block_size;  // I2_S: 128
        if (cols % blk != 0)
          fail("tensor '{}': rows of {} elements do not fit {} ({}-element blocks); choose another --type", name, cols,
               type_traits(type).name, blk);
        LinearSource ls;
        ls.w = src;
        const SafetensorsTensor* ws = ckpt.find(src->name + "_scale");  // "...weight" -> "...weight_scale"
        if (ws) used.insert(ws->name);
        if (src->dtype == StDtype::U8 || src->dtype == StDtype::I8) {
          ls.form = src->dtype == StDtype::U8 ? LinearSource::kPacked : LinearSource::kInt8;
          if (ls.form == LinearSource::kPacked && rows % 4 != 0)
            fail("tensor '{}': {} output rows cannot come from the packed uint8 form (a multiple of 4 is needed)",
                 src->name, rows);
          check_shape(*src, ls.form == LinearSource::kPacked ? std::vector<uint64_t>{rows / 4, cols} : hf_shape, name);
          if (!ws) fail("{}: tensor '{}' is {} (ternary codes) but '{}_scale' is missing", *src->file, src->name,
                        st_dtype_name(src->dtype), src->name);
          if (ws->n_elements != 1 || !float_type(ws->dtype))
            fail("{}: tensor '{}' is {} {}, expected one F32, F16 or BF16 value", *ws->file, ws->name,
                 st_dtype_name(ws->dtype), ws->shape_string());
          const float v = ws->at(0);
          if (!(v > 0) || !std::isfinite(v))
            fail("{}: tensor '{}' is {}, expected a finite positive scale", *ws->file, ws->name, v);
          resolve_direction();
          ls.scale = direction == "multiply" ? v : static_cast<float>(1.0 / static_cast<double>(v));
          if (ls.scale < 0.2f || ls.scale > 10.0f)
            notes.push_back(fmt::format("{}: scale {:.4g} is outside the 0.2..10 of real absmean scales; is the "
                                        "weight_scale direction right (--weight-scale)?", name, ls.scale));
        } else {
          check_float(*src);
          check_shape(*src, hf_shape, name);
          if (ws) fail("{}: tensor '{}' is {} but has a weight_scale; float weights with a separate scale are not a "
                       "known layout", *src->file, src->name, st_dtype_name(src->dtype));
          ls.form = cfg.bitnet_family ? LinearSource::kMaster : LinearSource::kFloatTernary;
        }
        // Arch llama rotates adjacent pairs: q and k rows reordered as llama.cpp's converter does.
        const uint32_t permute_heads = info->rope == RopeStyle::Norm && (e.kind == "attn_q" || e.kind == "attn_k")
                                           ? (e.kind == "attn_q" ? cfg.n_heads : cfg.n_kv_heads)
                                           : 0;
        w.add_tensor(name, type, e.ne, [ck, prog, ls, name, cols, rows, type, permute_heads](uint8_t* dst, uint64_t nbytes) {
          throw_if_interrupted();
          TernaryTensor t = load_linear(ls, name, cols, rows);
          if (permute_heads > 0) permute_for_norm_rope(t, permute_heads);
          ck->release(*ls.w);
          encode_ternary(t, type, /*allow_rounding=*/true, dst);
          prog->advance(nbytes);
        });
        break;
      }
      case TensorRole::Scale: break;
    }
  }

  // Leftovers: biases would change the model, anything else is reported.
  std::vector<std::string> ignored;
  for (const SafetensorsTensor* t : ckpt.tensors()) {
    if (used.count(t->name) || t->name == "lm_head.weight") continue;
    if (t->name.size() > 5 && t->name.compare(t->name.size() - 5, 5, ".bias") == 0)
      fail("{}: tensor '{}': biases are not supported", *t->file, t->name);
    if (t->name.find("rotary_emb.inv_freq") == std::string::npos) ignored.push_back(t->name);
  }
  if (!ignored.empty())
    notes.push_back(fmt::format("{} checkpoint tensor(s) not used: {}{}", ignored.size(), ignored.front(),
                                ignored.size() > 1 ? ", ..." : ""));
  return w;
}

}  // namespace bitnet
