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

// Two kinds of judgement. Models of the 2B-4T shape (below) are held to the real checkpoint's statistics:
// its absmean scales are O(1) (about 1-2) and its norm gains follow norm_profile.h. Every other model is
// held to plain sanity: finite, non-zero, and consistent within the file (a scale or gain far from the
// others of its kind is what a misread tensor looks like), since the absolute size of a master weight or
// a gain depends on how that model was trained (the project's trained model has scales near 0.02).
constexpr double kScaleWarnLo = 0.2, kScaleWarnHi = 10.0, kScaleErrLo = 0.01, kScaleErrHi = 100.0;
// Elsewhere: a ternary scale this far (factor) from the file's median scale.
constexpr double kScaleSpreadWarn = 30.0, kScaleSpreadErr = 1000.0;
// Elsewhere: an attn_norm / ffn_norm mean |gamma| this far from the median of its kind across layers.
constexpr double kNormSpreadWarn = 50.0;
// Real ternary tensors have about one third zeros (absmean rounding of bell-shaped weights gives 0.31).
constexpr double kZeroWarnLo = 0.15, kZeroWarnHi = 0.6;

// The width of bitnet-b1.58-2B-4T (BITNET_FORMATS.md section 4); any depth, so short test models count.
bool reference_shape(const ModelConfig& c) {
  return c.info.arch == Arch::BitnetB158 && c.dim == 2560 && c.hidden_dim == 6912 && c.n_heads == 20 &&
         c.n_kv_heads == 5;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

bool allowed_type(const ArchInfo& /*a*/, TensorRole role, TensorType t) {
  switch (role) {
    case TensorRole::Linear:
      return t == TensorType::TQ1_0 || t == TensorType::TQ2_0 || t == TensorType::F16 || t == TensorType::BF16 ||
             t == TensorType::F32 || t == TensorType::I2_S;  // I2_S: bitnet.cpp writes it for every arch
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
    std::map<std::string, std::vector<std::pair<std::string, double>>> norm_means;  // kind -> (tensor, mean|g|)
    std::vector<std::pair<std::string, double>> scales;                           // (tensor, scale)
    const bool ref = reference_shape(c);
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
      if (e.role == TensorRole::Linear && s.ternary) {
        check_ternary(e.name, s, ref);
        if (s.scale_median > 0 && std::isfinite(s.scale_median)) scales.push_back({e.name, s.scale_median});
      }
      if (e.role == TensorRole::Norm) {
        if (ref) check_norm(c, e, s);
        else check_norm_sanity(e, s);
        norm_means[e.kind].push_back({e.name, s.mean_abs});
        if (e.kind == "attn_sub_norm" || e.kind == "ffn_sub_norm") sub_norm_means[e.kind].push_back({e.layer, s.mean_abs});
      }
      if (e.role == TensorRole::Embedding && (s.rms == 0 || s.rms > 100))
        add(Severity::Warning, "embedding", e.name, "rms {:.4g} is implausible for an embedding", s.rms);
      if (e.role == TensorRole::Scale && !(s.min > 0 && std::isfinite(s.max)))
        add(Severity::Error, "scale-tensor", e.name, "scale {:.6g} is not a finite positive number", s.min);
    }
    if (c.tied_output) add(Severity::Info, "lm-head", "token_embd.weight", "no output.weight: the LM head is tied to token_embd");
    if (ref) {
      for (const auto& [kind, means] : sub_norm_means) check_depth_growth(c, kind, means);
    } else {
      check_scale_spread(scales);
      if (c.info.arch == Arch::BitnetB158)
        for (const char* kind : {"attn_norm", "ffn_norm"}) check_norm_spread(kind, norm_means[kind]);
    }
    for (const GgufTensorInfo& t : f_.tensors()) {
      if (known.count(t.name)) continue;
      if (t.name == "rope_freqs.weight")
        add(Severity::Info, "tensor-ignored", t.name, "ignored: BitNet uses plain RoPE (bitnet.cpp's converter stores "
            "inverse frequencies here, not llama.cpp frequency factors)");
      else
        add(Severity::Warning, "tensor-unknown", t.name, "not used by architecture {}", c.arch_name);
    }
  }

  void check_ternary(const std::string& name, const TensorStats& s, bool ref) {
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
    else if (!ref)
      ;  // judged against the file's other scales (check_scale_spread)
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

  // Not the 2B-4T shape: gains must be finite (checked above), not all zero, and not absurd.
  void check_norm_sanity(const ExpectedTensor& e, const TensorStats& s) {
    if (s.mean_abs == 0)
      add(Severity::Error, "norm-range", e.name, "every gain is zero: the layer's output would be zero");
    else if (s.mean_abs > 1e4)
      add(Severity::Warning, "norm-range", e.name, "mean |gamma| {:.4g} is implausible", s.mean_abs);
  }

  // Not the 2B-4T shape: one per-tensor scale far from the rest is a misread or corrupted scale.
  void check_scale_spread(const std::vector<std::pair<std::string, double>>& scales) {
    if (scales.size() < 3) return;
    std::vector<double> v;
    for (const auto& p : scales) v.push_back(p.second);
    const double med = median(v);
    for (const auto& [name, scale] : scales) {
      const double f = std::max(scale / med, med / scale);
      if (f > kScaleSpreadErr)
        add(Severity::Error, "ternary-scale", name, "scale {:.6g} is {:.3g}x away from the median {:.4g} of this "
            "file's ternary scales; a misread or corrupted scale looks like this", scale, f, med);
      else if (f > kScaleSpreadWarn)
        add(Severity::Warning, "ternary-scale", name, "scale {:.6g} is {:.3g}x away from the median {:.4g} of this "
            "file's ternary scales", scale, f, med);
    }
  }

  // Not the 2B-4T shape: a layer's attn_norm or ffn_norm far from the same norm in the other layers (2B-4T's
  // stay within a factor of 2.5 across depth; its sub-norms grow three decades, so they are not judged so).
  void check_norm_spread(const char* kind, const std::vector<std::pair<std::string, double>>& means) {
    if (means.size() < 3) return;
    std::vector<double> v;
    for (const auto& p : means) v.push_back(p.second);
    const double med = median(v);
    if (!(med > 0)) return;
    for (const auto& [name, m] : means) {
      if (!(m > 0)) continue;
      const double f = std::max(m / med, med / m);
      if (f > kNormSpreadWarn)
        add(Severity::Warning, "norm-range", name, "mean |gamma| {:.4g} is {:.3g}x away from the median {:.4g} of "
            "{} across layers", m, f, med, kind);
    }
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
    if (v.model == "gpt2" && v.pre.empty() && v.pipeline.empty())
      add(Severity::Warning, "tokenizer", "tokenizer.ggml.pre", "missing (as in the official 2B-4T file): bitnet uses "
          "the llama-bpe (LLaMA-3) pre-tokenizer regex; llama.cpp would fall back to its default regex");
    if (v.model == "bpe" && !v.pipeline.empty())
      add(Severity::Info, "tokenizer", "tokenizer.ggml.model", "'bpe' with the stored Hugging Face pipeline: bitnet "
          "reads it, llama.cpp does not");
    if (v.model != "gpt2" && v.model != "llama" && !(v.model == "bpe" && !v.pipeline.empty()))
      add(Severity::Error, "tokenizer", "tokenizer.ggml.model", "tokenizer model '{}' is not supported (gpt2, llama, "
          "bpe with tokenizer.bitnet.hf_pipeline)", v.model);
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
