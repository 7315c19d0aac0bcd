// Drafters for speculative decoding: each proposes tokens likely to follow a context; generate() verifies
// them with one batched forward pass of the model and keeps the ones its own sampling agrees with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/engine/session.h"

namespace bitnet {

class Drafter {
 public:
  virtual ~Drafter() = default;
  // Up to max_tokens tokens to follow `context` (may be none).
  virtual std::vector<int32_t> draft(const std::vector<int32_t>& context, int32_t max_tokens) = 0;
  virtual std::string name() const = 0;
};

// Prompt lookup: the longest n-gram ending the context (ngram_max down to ngram_min tokens) that also occurs
// earlier in it; the tokens that followed its latest earlier occurrence are the draft. No second model.
class LookupDrafter : public Drafter {
 public:
  explicit LookupDrafter(int32_t ngram_min = 2, int32_t ngram_max = 4);
  std::vector<int32_t> draft(const std::vector<int32_t>& context, int32_t max_tokens) override;
  std::string name() const override { return "prompt lookup"; }

 private:
  int32_t ngram_min_, ngram_max_;
};

// Error unless the draft model's vocabulary is the target's, token for token (speculative decoding compares ids).
void check_same_vocabulary(const Tokenizer& draft, int64_t draft_vocab, const Tokenizer& target, int64_t target_vocab);

// A smaller model with the same vocabulary drafts greedily in its own session (its cache keeps the context
// between calls: only the tokens new since the last call are evaluated).
class ModelDrafter : public Drafter {
 public:
  // Error unless the draft's vocabulary is the target's, token for token.
  ModelDrafter(Session& draft, const Session& target);
  std::vector<int32_t> draft(const std::vector<int32_t>& context, int32_t max_tokens) override;
  std::string name() const override { return "draft model"; }

 private:
  Session& s_;
  std::vector<float> logits_;
};

// How many tokens to draft before a verify pass: the k that maximizes expected tokens per second,
// (1 + a + a^2 + ... + a^k) / (t1 + k * (b + d)), where t1 is a one-token pass, b what each further token
// adds to a pass, d the drafter's time per token (all measured as generation goes) and a the share of drafts
// accepted so far. Where extra tokens cost nearly as much as the first (a small model, compute-bound) it
// drafts only when nearly everything is accepted; where a pass costs the weights' read (memory-bound) it
// drafts freely. Probes with one token now and then while drafting does not pay, so `a` keeps being measured.
class DraftBudget {
 public:
  explicit DraftBudget(int32_t max_tokens) : max_(max_tokens) {}
  int32_t choose();
  void on_prompt(int32_t n_tokens, double sec);  // the prompt's batched passes: a first estimate of b
  void on_pass(int32_t n_tokens, double sec);    // a generation pass of n tokens (1: plain)
  void on_draft(int32_t n_tokens, double sec);   // the drafter's call
  void on_verify(int32_t drafted, int32_t accepted);
  // A new sequence (the server's next request in a slot): its acceptance is its own, but the pass costs are
  // the model's and machine's, so they are kept and drafting starts at once.
  void new_sequence();

 private:
  int32_t max_;
  double t1_ = 0, b_ = -1, d_ = 0;  // seconds; b_ < 0: unknown
  double tried_ = 0, accepted_ = 0;  // decaying counts of drafted positions reached, and accepted
  int32_t idle_ = 0;                 // passes since the last draft
};

}  // namespace bitnet
