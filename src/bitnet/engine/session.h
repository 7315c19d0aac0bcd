// Session: a model, its tokenizer, a KV cache and the forward pass for one conversation (sequence slot 0).
// Commands (run, chat, eval, perplexity, trace) are thin layers over it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bitnet/model/forward.h"
#include "bitnet/model/kv_cache.h"
#include "bitnet/model/model.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet {

struct SessionOptions {
  int32_t n_ctx = 0;  // 0: the model's training context, capped at 4096
  KvType kv_type = KvType::F16;
  int32_t n_batch = 512;  // tokens per forward call when evaluating a prompt
  ActQuant act_quant = ActQuant::Auto;
  int32_t n_threads = 0;  // 0: every CPU this process may use
  LmHead lm_head = LmHead::Stored;
  int32_t n_seq = 1;  // KV cache slots: eval() and friends use slot 0, decode() any
};

class Session {
 public:
  Session(const std::string& model_path, const SessionOptions& opts);

  const Model& model() const { return *model_; }
  bool has_tokenizer() const { return model_->tokenizer() != nullptr; }
  // Error when the file has no vocabulary. The first call notes on stderr a missing tokenizer.ggml.pre.
  const Tokenizer& tokenizer() const;
  int32_t n_ctx() const { return cache_->n_ctx(); }
  int32_t n_past() const { return n_past_; }
  int n_threads() const { return pool_->size(); }
  int32_t n_vocab() const { return static_cast<int32_t>(model_->config().vocab_size); }

  // Appends tokens to the sequence. Logits of every evaluated position go to `all` ([n][vocab]) when
  // non-null; the last position's go to `last` when non-null. Error past the context limit.
  // With `logits_from` > 0, `all` holds only positions >= logits_from (of this call's tokens).
  void eval(const std::vector<int32_t>& tokens, std::vector<float>* all, std::vector<float>* last,
            size_t logits_from = 0);
  // Makes the sequence equal `tokens`, reusing the longest cached prefix (at least the last token is
  // evaluated, for its logits in `last`). Returns the number of tokens evaluated.
  int32_t eval_reusing_prefix(const std::vector<int32_t>& tokens, std::vector<float>* last);
  // Drops positions >= n (keeps the cached prefix [0, n)).
  void truncate(int32_t n);
  const std::vector<int32_t>& history() const { return history_; }
  // One forward pass over tokens of any slots (positions and slots as given; the caller keeps track of
  // each slot's length). Logits of the tokens marked .logits go to `logits`, [n][vocab] in batch order.
  void decode(const std::vector<BatchToken>& batch, std::vector<float>* logits);
  int32_t n_seq() const { return cache_->n_seq(); }
  void set_trace(TraceSink* sink) { forward_->set_trace(sink); }
  void set_profile(ForwardProfile* p) { forward_->set_profile(p); }
  // Forward::read_weights: what one decoded token reads from the weights, read the way decoding reads it.
  Forward::WeightReads read_weights() { return forward_->read_weights(); }

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<Forward> forward_;
  int32_t n_batch_;
  int32_t n_past_ = 0;
  std::vector<int32_t> history_;  // tokens at positions [0, n_past)
  mutable bool pre_noted_ = false;
};

}  // namespace bitnet
