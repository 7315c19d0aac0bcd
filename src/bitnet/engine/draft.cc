#include "bitnet/engine/draft.h"

#include <algorithm>

#include "bitnet/base/error.h"

namespace bitnet {

LookupDrafter::LookupDrafter(int32_t ngram_min, int32_t ngram_max) : ngram_min_(ngram_min), ngram_max_(ngram_max) {
  if (ngram_min < 1 || ngram_max < ngram_min) fail("prompt lookup: n-gram sizes {}..{} are not a range >= 1", ngram_min, ngram_max);
}

std::vector<int32_t> LookupDrafter::draft(const std::vector<int32_t>& c, int32_t max_tokens) {
  const int64_t L = static_cast<int64_t>(c.size());
  if (max_tokens <= 0) return {};
  for (int64_t n = std::min<int64_t>(ngram_max_, L - 1); n >= ngram_min_; --n) {
    const int32_t* key = c.data() + L - n;
    // Latest earlier occurrence first: text that repeats tends to repeat its most recent form.
    for (int64_t i = L - n - 1; i >= 0; --i) {
      if (!std::equal(key, key + n, c.data() + i)) continue;
      const int64_t from = i + n, to = std::min<int64_t>(L, from + max_tokens);
      return std::vector<int32_t>(c.begin() + from, c.begin() + to);
    }
  }
  return {};
}

void check_same_vocabulary(const Tokenizer& draft, int64_t draft_vocab, const Tokenizer& target, int64_t target_vocab) {
  if (draft_vocab != target_vocab)
    fail("the draft model has {} tokens, the model {}: speculative decoding needs one vocabulary", draft_vocab,
         target_vocab);
  for (int32_t id = 0; id < draft.n_vocab(); ++id)
    if (draft.token_text(id, true) != target.token_text(id, true))
      fail("the draft model's token {} is \"{}\", the model's \"{}\": speculative decoding needs one vocabulary", id,
           draft.token_text(id, true), target.token_text(id, true));
}

ModelDrafter::ModelDrafter(Session& draft, const Session& target) : s_(draft) {
  check_same_vocabulary(draft.tokenizer(), draft.n_vocab(), target.tokenizer(), target.n_vocab());
}

std::vector<int32_t> ModelDrafter::draft(const std::vector<int32_t>& context, int32_t max_tokens) {
  std::vector<int32_t> out;
  max_tokens = std::min(max_tokens, s_.n_ctx() - static_cast<int32_t>(context.size()));
  if (max_tokens <= 0 || context.empty()) return out;
  s_.eval_reusing_prefix(context, &logits_);
  const Tokenizer& tok = s_.tokenizer();
  while (true) {
    const int32_t t = static_cast<int32_t>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
    if (tok.is_eog(t)) break;
    out.push_back(t);
    if (static_cast<int32_t>(out.size()) >= max_tokens) break;
    s_.eval({t}, nullptr, &logits_);
  }
  return out;
}

int32_t DraftBudget::choose() {
  if (t1_ <= 0) return 0;  // no one-token pass measured yet
  const double a = (accepted_ + 1) / (tried_ + 2);  // acceptance, with a prior of one half
  const double b = b_ >= 0 ? b_ : t1_;
  int32_t best = 0;
  double best_rate = 1 / t1_, expected = 1, ak = 1;
  for (int32_t k = 1; k <= max_; ++k) {
    ak *= a;
    expected += ak;
    const double rate = expected / (t1_ + k * (b + d_));
    if (rate > best_rate * 1.02) best = k, best_rate = rate;  // a 2 % margin against timing noise
  }
  if (best > 0) {
    idle_ = 0;
    return best;
  }
  if (++idle_ >= 16) {  // keep measuring the acceptance
    idle_ = 0;
    return 1;
  }
  return 0;
}

void DraftBudget::on_prompt(int32_t n_tokens, double sec) {
  if (n_tokens >= 8 && b_ < 0) b_ = sec / n_tokens;  // batched cost per token: an upper bound for small passes
}

void DraftBudget::on_pass(int32_t n_tokens, double sec) {
  if (n_tokens == 1) {
    t1_ = t1_ > 0 ? 0.8 * t1_ + 0.2 * sec : sec;
  } else if (t1_ > 0) {
    const double extra = std::max(0.0, (sec - t1_) / (n_tokens - 1));
    b_ = b_ >= 0 ? 0.7 * b_ + 0.3 * extra : extra;
  }
}

void DraftBudget::on_draft(int32_t n_tokens, double sec) {
  if (n_tokens > 0) d_ = 0.7 * d_ + 0.3 * sec / n_tokens;
}

void DraftBudget::on_verify(int32_t drafted, int32_t accepted) {
  tried_ = 0.9 * tried_ + accepted + (accepted < drafted ? 1 : 0);
  accepted_ = 0.9 * accepted_ + accepted;
}

void DraftBudget::new_sequence() {
  tried_ = accepted_ = 0;
  idle_ = 0;
}

}  // namespace bitnet
