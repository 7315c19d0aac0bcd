// Token sampler: llama.cpp's default sampler chain, restricted to the stages bitnet offers (no DRY,
// typical-p, XTC, top-n-sigma, mirostat or grammar).
//
//   logits[n_vocab] -> penalties over the last repeat_last_n accepted tokens -> top-k -> top-p -> min-p
//                   -> temperature -> one draw from the softmax of what is left
//
// Temperature comes last, as in llama.cpp, so top-p and min-p select from the untempered distribution
// and keep the same set at every temperature. temperature <= 0 is greedy: the argmax after penalties
// (ties to the lowest id), with no random draw.
//
// Reproducibility: the random stream is std::mt19937_64 (its output is fixed by the C++ standard) and
// the uniforms are derived here rather than by std::uniform_real_distribution, whose output differs
// between standard libraries. Candidate order is fully determined (logit, then id), so one seed gives
// one token sequence wherever std::exp rounds the same way (glibc, musl and libc++ on IEEE hardware).
//
// Cost per sample() at n_vocab = 128k (one core, measured): greedy 0.1 ms (one pass); the default chain
// 0.4 ms (one pass + a 40-heap); top-k off costs one exp per token (~0.8 ms with min-p on), and top-p
// sorts only as far as its nucleus reaches (a wide nucleus with min-p off: ~4 ms, as llama.cpp's full
// sort). Memory: 12 bytes per vocabulary entry, allocated once. Not thread-safe: one Sampler per
// sequence.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace bitnet {

// The seed value that asks for a random seed (llama.cpp's LLAMA_DEFAULT_SEED, include/llama.h).
inline constexpr uint64_t kRandomSeed = 0xFFFFFFFF;

// Defaults are llama.cpp's `common_params_sampling` (common/common.h); the flag names are llama.cpp's.
struct SamplingParams {
  float temperature = 0.8f;      // --temp; <= 0: greedy. llama.cpp `temp` = 0.80f
  int top_k = 40;                // --top-k; <= 0: off. llama.cpp `top_k` = 40
  float top_p = 0.95f;           // --top-p, in [0, 1]; 1: off. llama.cpp `top_p` = 0.95f
  float min_p = 0.05f;           // --min-p, in [0, 1]; 0: off. llama.cpp `min_p` = 0.05f
  float repeat_penalty = 1.0f;   // --repeat-penalty, > 0; 1: off. llama.cpp `penalty_repeat` = 1.00f
  int repeat_last_n = 64;        // --repeat-last-n; 0: off, -1: every accepted token since reset().
                                 //   llama.cpp `penalty_last_n` = 64 (its -1 means the context size)
  float frequency_penalty = 0.0f;  // --frequency-penalty; 0: off. llama.cpp `penalty_freq` = 0.00f
  float presence_penalty = 0.0f;   // --presence-penalty; 0: off. llama.cpp `penalty_present` = 0.00f
  uint64_t seed = kRandomSeed;     // --seed; kRandomSeed: drawn from std::random_device.
                                   //   llama.cpp `seed` = LLAMA_DEFAULT_SEED
};

// Throws bitnet::Error with a sentence naming the flag for a value that is NaN, infinite where a
// number is needed, or out of range. Callers may run it before loading a model; Sampler runs it too.
void validate_sampling_params(const SamplingParams& p);

class Sampler {
 public:
  // Validates `params` and allocates the buffers (n_vocab candidates and counts). Throws bitnet::Error
  // on bad params or n_vocab <= 0.
  Sampler(const SamplingParams& params, int32_t n_vocab);

  // The next token for logits[n_vocab] (read, never written). NaN counts as -inf; -inf is never picked.
  // Throws bitnet::Error when every logit is NaN or -inf. Does not record the token: accept() does.
  // No allocation.
  int32_t sample(const float* logits);

  // Records a token for the penalties. llama.cpp's CLI accepts the prompt tokens as well as the
  // generated ones; do the same to match it. Throws bitnet::Error for an id outside [0, n_vocab).
  void accept(int32_t token);

  // Forgets the accepted tokens and restarts the random stream from the seed; with kRandomSeed a new
  // seed is drawn (as llama.cpp's dist sampler does on reset).
  void reset();

  uint64_t seed() const { return seed_; }  // in use; the drawn one when params.seed == kRandomSeed
  const SamplingParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  struct Candidate {
    float logit;  // after penalties; in the final draw, the unnormalized probability instead
    int32_t id;
  };

  // logits[i] with NaN -> -inf and the penalties for token i applied.
  float penalized_logit(const float* logits, int32_t i) const;
  int32_t sample_greedy(const float* logits) const;
  double uniform01();  // [0, 1) with 53 random bits

  SamplingParams params_;
  int32_t n_vocab_;
  bool penalties_on_ = false;   // repeat_last_n != 0 and some penalty differs from neutral
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::vector<Candidate> cand_;   // [n_vocab] working set, reused by every sample()
  std::vector<int32_t> counts_;   // [n_vocab] occurrences of each id in the penalty window
  std::vector<int32_t> window_;   // ring of the last repeat_last_n accepted ids (empty when -1);
                                  //   grows by accept() up to repeat_last_n, then wraps
  size_t window_next_ = 0;        // slot the next accept() overwrites once window_ is full
};

}  // namespace bitnet
