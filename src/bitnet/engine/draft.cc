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

ModelDrafter::ModelDrafter(Session& draft, const Session& target) : s_(draft) {
  const Tokenizer& a = draft.tokenizer();
  const Tokenizer& b = target.tokenizer();
  if (draft.n_vocab() != target.n_vocab())
    fail("the draft model has {} tokens, the model {}: speculative decoding needs one vocabulary", draft.n_vocab(),
         target.n_vocab());
  for (int32_t id = 0; id < a.n_vocab(); ++id)
    if (a.token_text(id, true) != b.token_text(id, true))
      fail("the draft model's token {} is \"{}\", the model's \"{}\": speculative decoding needs one vocabulary", id,
           a.token_text(id, true), b.token_text(id, true));
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

}  // namespace bitnet
