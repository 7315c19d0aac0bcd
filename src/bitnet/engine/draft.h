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

}  // namespace bitnet
