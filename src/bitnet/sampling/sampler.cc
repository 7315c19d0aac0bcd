#include "bitnet/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "bitnet/base/error.h"

namespace bitnet {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Candidate order everywhere: higher logit first, then lower id. A strict total order once NaN is gone,
// so sorting is deterministic on every standard library.
struct Better {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
};

// exp((logit - max) / temp) without inf - inf: the maximum itself (also when it is +inf) weighs 1.
float weight(float logit, float max, float temp) {
  return logit == max ? 1.0f : std::exp((logit - max) / temp);
}

// Puts the best k = (mid - first) candidates of [first, last) into [first, mid), best first. Small k:
// partial_sort's k-heap, where most candidates cost one well-predicted comparison with the heap top
// (~0.25 ms for k = 40 of 128k). Large k: nth_element then sort, O(n + k log k).
template <typename It>
void sort_best(It first, It mid, It last) {
  if (mid == last) {
    std::sort(first, last, Better{});
  } else if (mid - first <= 512) {
    std::partial_sort(first, mid, last, Better{});
  } else {
    std::nth_element(first, mid - 1, last, Better{});
    std::sort(first, mid, Better{});
  }
}

void require_finite(float v, const char* flag) {
  if (!std::isfinite(v)) fail("{} must be a finite number, got {}.", flag, v);
}

}  // namespace

void validate_sampling_params(const SamplingParams& p) {
  require_finite(p.temperature, "--temp");
  require_finite(p.top_p, "--top-p");
  if (p.top_p < 0.0f || p.top_p > 1.0f) {
    fail("--top-p must be between 0 and 1 (1 turns it off), got {}.", p.top_p);
  }
  require_finite(p.min_p, "--min-p");
  if (p.min_p < 0.0f || p.min_p > 1.0f) {
    fail("--min-p must be between 0 and 1 (0 turns it off), got {}.", p.min_p);
  }
  require_finite(p.repeat_penalty, "--repeat-penalty");
  if (p.repeat_penalty <= 0.0f) {
    fail("--repeat-penalty must be greater than 0 (1 turns it off), got {}.", p.repeat_penalty);
  }
  if (p.repeat_last_n < -1) {
    fail("--repeat-last-n must be -1 (all tokens), 0 (off) or a positive count, got {}.",
         p.repeat_last_n);
  }
  require_finite(p.frequency_penalty, "--frequency-penalty");
  require_finite(p.presence_penalty, "--presence-penalty");
  // top_k: every value is meaningful (<= 0 turns it off, more than n_vocab keeps all).
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab) : params_(params), n_vocab_(n_vocab) {
  validate_sampling_params(params_);
  if (n_vocab_ <= 0) fail("the sampler needs a vocabulary of at least one token, got {}.", n_vocab_);
  penalties_on_ = params_.repeat_last_n != 0 &&
                  (params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                   params_.presence_penalty != 0.0f);
  cand_.resize(static_cast<size_t>(n_vocab_));
  counts_.assign(static_cast<size_t>(n_vocab_), 0);
  reset();
}

void Sampler::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  window_.clear();
  window_next_ = 0;
  if (params_.seed == kRandomSeed) {
    std::random_device rd;
    seed_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } else {
    seed_ = params_.seed;
  }
  rng_.seed(seed_);
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= n_vocab_) {
    fail("token id {} is outside the vocabulary [0, {}).", token, n_vocab_);
  }
  if (!penalties_on_) return;
  ++counts_[static_cast<size_t>(token)];
  if (params_.repeat_last_n < 0) return;  // unbounded: counts only
  const size_t cap = static_cast<size_t>(params_.repeat_last_n);
  if (window_.size() < cap) {
    window_.push_back(token);  // grows once per sequence, up to cap
    return;
  }
  int32_t& slot = window_[window_next_];
  --counts_[static_cast<size_t>(slot)];
  slot = token;
  window_next_ = (window_next_ + 1) % cap;
}

// llama.cpp's penalties sampler: a positive logit is divided by repeat_penalty, a negative (or zero)
// one multiplied, then frequency_penalty * count and presence_penalty (once) are subtracted.
float Sampler::penalized_logit(const float* logits, int32_t i) const {
  float l = logits[i];
  if (std::isnan(l)) return kNegInf;
  if (!penalties_on_) return l;
  const int32_t count = counts_[static_cast<size_t>(i)];
  if (count == 0) return l;
  l = l <= 0.0f ? l * params_.repeat_penalty : l / params_.repeat_penalty;
  return l - static_cast<float>(count) * params_.frequency_penalty - params_.presence_penalty;
}

int32_t Sampler::sample_greedy(const float* logits) const {
  int32_t best = -1;
  float best_logit = kNegInf;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const float l = penalized_logit(logits, i);
    if (l > best_logit) {  // strict: ties keep the lower id, -inf never wins
      best = i;
      best_logit = l;
    }
  }
  if (best < 0) fail("cannot sample: all {} logits are NaN or -inf.", n_vocab_);
  return best;
}

double Sampler::uniform01() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float* logits) {
  if (params_.temperature <= 0.0f) return sample_greedy(logits);

  // Candidates: every token with a logit above -inf, in id order.
  size_t n = 0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const float l = penalized_logit(logits, i);
    if (l != kNegInf) cand_[n++] = {l, i};
  }
  if (n == 0) fail("cannot sample: all {} logits are NaN or -inf.", n_vocab_);
  const auto first = cand_.begin();
  size_t n_sorted = 0;  // cand_[0, n_sorted) holds the n_sorted best, best first

  // Top-k.
  const int top_k = params_.top_k;
  if (top_k > 0 && static_cast<size_t>(top_k) < n) {
    sort_best(first, first + top_k, first + static_cast<ptrdiff_t>(n));
    n = static_cast<size_t>(top_k);
    n_sorted = n;
  }
  float max = n_sorted > 0 ? cand_[0].logit : kNegInf;
  if (n_sorted == 0) {
    for (size_t i = 0; i < n; ++i) max = std::max(max, cand_[i].logit);
  }

  // Top-p needs the normalizer of the whole top-k set (softmax at temperature 1), before min-p.
  const bool top_p_on = params_.top_p < 1.0f;
  double z = 0.0;
  if (top_p_on) {
    for (size_t i = 0; i < n; ++i) z += weight(cand_[i].logit, max, 1.0f);
  }

  // Min-p: keep logit >= max + log(min_p), i.e. p >= min_p * p_max. Applied here, before top-p, because
  // both keep a best-first prefix and min-p's threshold does not depend on top-p's renormalization: the
  // result is the same as llama.cpp's top-p-then-min-p, and top-p then has fewer candidates to sort.
  if (params_.min_p > 0.0f) {
    const float threshold = max + std::log(params_.min_p);
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      if (cand_[i].logit >= threshold) cand_[kept++] = cand_[i];  // order preserved
    }
    n = kept;  // >= 1: the maximum passes
    n_sorted = std::min(n_sorted, n);
  }

  // Top-p: the shortest best-first prefix whose probability reaches top_p (the crossing token
  // included). Sorts in growing steps, so a small nucleus costs little even with top-k off.
  if (top_p_on) {
    double cum = 0.0;
    size_t i = 0;
    while (i < n) {
      if (i == n_sorted) {
        const size_t m = std::min(n, std::max<size_t>(64, 4 * n_sorted));
        sort_best(first + static_cast<ptrdiff_t>(n_sorted), first + static_cast<ptrdiff_t>(m),
                  first + static_cast<ptrdiff_t>(n));
        n_sorted = m;
      }
      cum += weight(cand_[i].logit, max, 1.0f) / z;
      ++i;
      if (cum >= params_.top_p) break;
    }
    n = i;
  }

  // Temperature, then one draw. Weights replace the logits in place.
  const float temp = params_.temperature;
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cand_[i].logit = weight(cand_[i].logit, max, temp);
    total += cand_[i].logit;
  }
  const double r = uniform01() * total;
  double acc = 0.0;
  size_t last_positive = 0;
  for (size_t i = 0; i < n; ++i) {
    if (cand_[i].logit <= 0.0f) continue;
    acc += cand_[i].logit;
    last_positive = i;
    if (r < acc) return cand_[i].id;
  }
  return cand_[last_positive].id;  // r landed on the rounding slack at the top
}

}  // namespace bitnet
