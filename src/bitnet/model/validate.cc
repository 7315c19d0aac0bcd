#include "bitnet/model/validate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/tensor_stats.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/norm_profile.h"
#include "bitnet/model/vocab_gguf.h"

namespace bitnet {

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::Info: return "info";
    case Severity::Warning: return "warning";
    case Severity::Error: return "error";
  }
  return "?";
}

bool ValidationReport::has(Severity s) const {
  return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) { return f.severity == s; });
}

namespace {

// Plausible ternary scales: the real checkpoint's absmean scales are O(1) (about 1-2).
constexpr double kScaleWarnLo = 0.2, kScaleWarnHi = 10.0, kScaleErrLo = 0.01, kScaleErrHi = 100.0;
// Real ternary tensors have about one third zeros.
constexpr double kZeroWarnLo = 0.15, kZeroWarnHi = 0.6;

bool allowed_type(const ArchInfo& a, TensorRole role, TensorType t) {
  switch (role) {
    case TensorRole::Linear:
      return t == TensorType::TQ1_0 || t == TensorType::TQ2_0 || t == TensorType::F16 || t == TensorType::BF16 ||
             t == TensorType::F32 || (t == TensorType::I2_S && a.arch == Arch::BitnetB158);
    case TensorRole::Embedding:
    case TensorRole::Output:
      return t == TensorType::F16 || t == TensorType::F32 || t == TensorType::BF16 || t == TensorType::Q8_0 ||
             t == TensorType::Q6_K || t == TensorType::Q4_0;
    case TensorRole::Norm:
    case TensorRole::Scale: return t == TensorType::F32;
  }
  return false;
}

std::string shape_of(const std::vector<uint64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

class Validator {
 public:
  explicit Validator(const GgufFile& f) : f_(f) {}

  ValidationReport run() {
    ModelConfig c;
    try {
      c = ModelConfig::from_gguf(f_);
    } catch (const Error& e) {
      add(Severity::Error, "config", "", "{}", e.what());
      return std::move(r_);
    }
    check_tensors(c);
    check_vocab(c);
    return std::move(r_);
  }

 private:
  template <typename... Args>
  void add(Severity s, const char* check, const std::string& subject, fmt::format_string<Args...> f, Args&&... a) {
    r_.findings.push_back({s, check, subject, fmt::format(f, std::forward<Args>(a)...)});
  }

  void check_tensors(const ModelConfig& c) {
    const auto expected = expected_tensors(c);
    std::set<std::string> known;
    std::map<std::string, std::vector<std::pair<int, double>>> sub_norm_means;  // kind -> (layer, mean|g|)
    for (const ExpectedTensor& e : expected) {
      known.insert(e.name);
      const GgufTensorInfo* t = f_.tensor(e.name);
      if (!t) {
        if (e.required) add(Severity::Error, "tensor-missing", e.name, "required tensor is missing");
        continue;
      }
      std::vector<uint64_t> ne(t->ne.begin(), t->ne.begin() + t->n_dims);
      if (ne != e.ne) {
        add(Severity::Error, "tensor-shape", e.name, "shape {} does not match {} expected from the hyperparameters",
            t->shape_string(), shape_of(e.ne));
        continue;
      }
      if (!allowed_type(c.info, e.role, t->type)) {
        add(Severity::Error, "tensor-type", e.name, "type {} is not allowed for this tensor in {}",
            type_traits(t->type).name, c.arch_name);
        continue;
      }
      const TensorStats s = tensor_stats(*t);
      if (s.nonfinite > 0)
        add(Severity::Error, "non-finite", e.name, "{} of {} values are NaN or infinite", s.nonfinite, s.count);
      if (e.role == TensorRole::Linear && s.ternary) check_ternary(e.name, s);
      if (e.role == TensorRole::Norm) {
        check_norm(c, e, s);
        if (e.kind == "attn_sub_norm" || e.kind == "ffn_sub_norm") sub_norm_means[e.kind].push_back({e.layer, s.mean_abs});
      }
      if (e.role == TensorRole::Embedding && (s.rms == 0 || s.rms > 100))
        add(Severity::Warning, "embedding", e.name, "rms {:.4g} is implausible for an embedding", s.rms);
      if (e.role == TensorRole::Scale && !(s.min > 0 && std::isfinite(s.max)))
        add(Severity::Error, "scale-tensor", e.name, "scale {:.6g} is not a finite positive number", s.min);
    }
    if (c.tied_output) add(Severity::Info, "lm-head", "token_embd.weight", "no output.weight: the LM head is tied to token_embd");
    for (const auto& [kind, means] : sub_norm_means) check_depth_growth(c, kind, means);
    for (const GgufTensorInfo& t : f_.tensors()) {
      if (known.count(t.name)) continue;
      if (t.name == "rope_freqs.weight")
        add(Severity::Info, "tensor-ignored", t.name, "ignored: BitNet uses plain RoPE (bitnet.cpp's converter stores "
            "inverse frequencies here, not llama.cpp frequency factors)");
      else
        add(Severity::Warning, "tensor-unknown", t.name, "not used by architecture {}", c.arch_name);
    }
  }

  void check_ternary(const std::string& name, const TensorStats& s) {
    const uint64_t valid = s.codes[0] + s.codes[1] + s.codes[2];
    if (s.codes[3] > 0)
      add(Severity::Error, "ternary-codes", name, "{} invalid ternary codes (2-bit code 3 or non-canonical TQ1_0 "
          "bytes) among {} values", s.codes[3], s.count);
    if (s.scale_nonfinite > 0)
      add(Severity::Error, "ternary-scale", name, "{} of {} scales are NaN or infinite", s.scale_nonfinite, s.n_scales);
    const double scale = s.scale_median;
    const std::string what = s.n_scales == 1 ? "scale" : "median block scale";
    if (!(scale > 0))
      add(Severity::Error, "ternary-scale", name, "{} {:.6g} is not positive", what, scale);
    else if (scale < kScaleErrLo || scale > kScaleErrHi)
      add(Severity::Error, "ternary-scale", name, "{} {:.6g} is implausible: absmean scales of real BitNet weights "
          "are about 1-2 (expected {}..{}); an inverted or misread scale looks like this", what, scale, kScaleErrLo,
          kScaleErrHi);
    else if (scale < kScaleWarnLo || scale > kScaleWarnHi)
      add(Severity::Warning, "ternary-scale", name, "{} {:.6g} is outside the usual {}..{}", what, scale, kScaleWarnLo,
          kScaleWarnHi);
    if (valid > 0) {
      const double zero = static_cast<double>(s.codes[1]) / valid;
      if (zero >= 0.999)
        add(Severity::Error, "ternary-zeros", name, "all weights are zero");
      else if (zero < kZeroWarnLo || zero > kZeroWarnHi)
        add(Severity::Warning, "ternary-zeros", name, "zero fraction {:.3f} is outside the usual {}..{} of ternary "
            "weights", zero, kZeroWarnLo, kZeroWarnHi);
    }
  }

  void check_norm(const ModelConfig& c, const ExpectedTensor& e, const TensorStats& s) {
    const NormBands b = norm_bands(c.info.arch, e.kind, e.layer, c.n_layers);
    const double m = s.mean_abs;
    if (!b.known) {
      if (m == 0 || m > 1e4) add(Severity::Warning, "norm-range", e.name, "mean |gamma| {:.4g} is implausible", m);
      return;
    }
    if (m < b.err_lo || m > b.err_hi)
      add(Severity::Error, "norm-range", e.name, "mean |gamma| {:.4g} is far outside {:.3g}..{:.3g} for {} in {} "
          "(the real 2B-4T checkpoint is inside {:.3g}..{:.3g})", m, b.err_lo, b.err_hi, e.kind, c.arch_name,
          b.warn_lo, b.warn_hi);
    else if (m < b.warn_lo || m > b.warn_hi)
      add(Severity::Warning, "norm-range", e.name, "mean |gamma| {:.4g} is outside {:.3g}..{:.3g} seen for {} in the "
          "real 2B-4T checkpoint", m, b.warn_lo, b.warn_hi, e.kind);
  }

  // In 2B-4T both sub-norms grow by two to three decades from the first layer to the last.
  void check_depth_growth(const ModelConfig& c, const std::string& kind, std::vector<std::pair<int, double>> means) {
    if (c.info.arch != Arch::BitnetB158 || means.size() < 4) return;
    std::sort(means.begin(), means.end());
    const size_t q = means.size() / 4;
    double early = 0, late = 0;
    for (size_t i = 0; i < q; ++i) early += means[i].second, late += means[means.size() - 1 - i].second;
    if (late <= early)
      add(Severity::Warning, "norm-depth", kind, "{} gains do not grow with depth (first quarter mean |gamma| {:.4g}, "
          "last quarter {:.4g}); in 2B-4T they grow by orders of magnitude", kind, early / q, late / q);
  }

  void check_vocab(const ModelConfig& c) {
    if (!has_vocab(f_)) {
      add(Severity::Warning, "tokenizer", "tokenizer.ggml.tokens", "no vocabulary: only token-id commands (eval) work");
      return;
    }
    VocabData v;
    try {
      v = vocab_from_gguf(f_);
    } catch (const Error& e) {
      add(Severity::Error, "tokenizer", "tokenizer.ggml", "{}", e.what());
      return;
    }
    const GgufTensorInfo* emb = f_.tensor("token_embd.weight");
    if (emb && emb->n_dims == 2) {
      if (v.tokens.size() > emb->ne[1])
        add(Severity::Error, "tokenizer", "tokenizer.ggml.tokens", "{} tokens but token_embd has only {} rows",
            v.tokens.size(), emb->ne[1]);
      else if (v.tokens.size() < emb->ne[1])
        add(Severity::Info, "tokenizer", "tokenizer.ggml.tokens", "{} tokens, token_embd has {} rows (padding)",
            v.tokens.size(), emb->ne[1]);
    }
    if (c.vocab_size != 0 && f_.find(c.arch_name + ".vocab_size") && c.vocab_size != v.tokens.size())
      add(Severity::Warning, "tokenizer", c.arch_name + ".vocab_size", "{} but the vocabulary has {} tokens",
          c.vocab_size, v.tokens.size());
    if (v.model == "gpt2" && v.pre.empty())
      add(Severity::Warning, "tokenizer", "tokenizer.ggml.pre", "missing (as in the official 2B-4T file): bitnet uses "
          "the llama-bpe (LLaMA-3) pre-tokenizer regex; llama.cpp would fall back to its default regex");
    if (v.model != "gpt2" && v.model != "llama")
      add(Severity::Error, "tokenizer", "tokenizer.ggml.model", "tokenizer model '{}' is not supported (gpt2, llama)",
          v.model);
    if (v.model == "gpt2" && v.merges.empty())
      add(Severity::Error, "tokenizer", "tokenizer.ggml.merges", "byte-level BPE vocabulary without merges");
    if (v.bos_id < 0 && v.add_bos)
      add(Severity::Warning, "tokenizer", "tokenizer.ggml.bos_token_id", "add_bos_token is set but no BOS id is given");
  }

  const GgufFile& f_;
  ValidationReport r_;
};

}  // namespace

ValidationReport validate_model(const GgufFile& f) { return Validator(f).run(); }

}  // namespace bitnet
