#include "model_flags.h"

#include <charconv>
#include <limits>

#include "bitnet/base/error.h"
#include "bitnet/hub/hub.h"
#include "commands.h"

namespace bitnet::cli {

void ModelFlags::add(CLI::App& app) {
  app.add_option("-m,--model", model, "GGUF model file (default: the trained model, or $BITNET_MODEL)");
  add_hf_option(app, hf);
  app.add_option("-c,--ctx-size", n_ctx, "Context size in tokens (0: the model's, at most 4096)")->capture_default_str();
  app.add_option("-b,--batch-size", n_batch, "Tokens per forward pass while reading a prompt")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", threads, "Threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_option("--kv-type", kv_type, "KV cache type: f16 | f32")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--act-quant", act_quant,
                 "auto: BitNet per-token int8 activations for ternary layers only; per-token: also for F32/F16/BF16 "
                 "layers (compare formats exactly)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "per-token"}));
  add_lm_head_option(app, lm_head);
}

void add_lm_head_option(CLI::App& app, std::string& lm_head) {
  app.add_option("--lm-head", lm_head,
                 "LM head: f16 (as stored) | q8 | q6 | q4 (quantized at load: fewer bytes read per generated token, "
                 "slightly different logits) | auto (q6 for a float head, else as stored); README \"LM head formats\"")
      ->capture_default_str()
      ->check(CLI::IsMember({"f16", "q8", "q6", "q4", "auto"}));
}

void add_hf_option(CLI::App& app, std::string& hf) {
  app.add_option("--hf", hf,
                 "-hf REPO[:FILE]: a model from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN), downloaded into the "
                 "cache unless there (see `bitnet pull`)");
}

std::string resolve_model(const std::string& model, const std::string& hf) {
  if (!model.empty() && !hf.empty()) fail("-m and -hf both name a model: give one");
  if (!hf.empty()) return hub::pull(hub::parse_ref(hf), hub::default_options());
  return model_or_default(model);
}

std::string ModelFlags::path() const { return resolve_model(model, hf); }

SessionOptions ModelFlags::session_options() const {
  SessionOptions o;
  if (n_ctx < 0) fail("-c: context size {} is negative", n_ctx);
  o.n_ctx = n_ctx;
  o.n_batch = n_batch;
  o.n_threads = threads;
  o.lm_head = *parse_lm_head(lm_head);
  o.kv_type = kv_type == "f32" ? KvType::F32 : KvType::F16;
  o.act_quant = act_quant == "per-token" ? ActQuant::PerToken : ActQuant::Auto;
  return o;
}

std::vector<int32_t> parse_int_list(const std::string& text, const char* flag, int32_t lo, int32_t hi,
                                    const std::string& what) {
  std::vector<int32_t> values;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string_view item(text.data() + i, j - i);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < lo || v > hi)
      fail("{}: '{}' (item {}) is not {}", flag, std::string(item), values.size() + 1, what);
    values.push_back(v);
    i = j + 1;
  }
  return values;
}

std::vector<int32_t> parse_token_list(const std::string& text, const char* flag) {
  return parse_int_list(text, flag, 0, std::numeric_limits<int32_t>::max(), "a token id");
}

}  // namespace bitnet::cli
