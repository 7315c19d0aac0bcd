#include "bitnet/engine/session.h"

#include <algorithm>
#include <cstdio>

#include "bitnet/base/error.h"

namespace bitnet {

Session::Session(const std::string& model_path, const SessionOptions& opts) {
  LoadOptions lo;
  lo.act_quant = opts.act_quant;
  lo.lm_head = opts.lm_head;
  lo.n_threads = opts.n_threads;
  model_ = Model::load(model_path, lo);
  int32_t n_ctx = opts.n_ctx;
  if (n_ctx <= 0) n_ctx = static_cast<int32_t>(std::min<uint32_t>(model_->config().n_ctx_train, 4096));
  if (n_ctx > (1 << 20)) fail("context size {} is too large", n_ctx);
  if (opts.n_seq < 1 || opts.n_seq > 4096) fail("{} KV cache slots: expected 1 to 4096", opts.n_seq);
  cache_ = std::make_unique<KvCache>(model_->config(), n_ctx, opts.kv_type, opts.n_seq);
  n_batch_ = std::clamp(opts.n_batch, 1, n_ctx);
  pool_ = std::make_unique<ThreadPool>(opts.n_threads > 0 ? opts.n_threads : ThreadPool::default_threads());
  forward_ = std::make_unique<Forward>(*model_, *cache_, n_batch_, *pool_);
}

void Session::decode(const std::vector<BatchToken>& batch, std::vector<float>* logits) {
  size_t rows = 0;
  for (const BatchToken& t : batch) rows += t.logits;
  if (logits) logits->resize(rows * model_->config().vocab_size);
  if (rows > 0 && !logits) fail("decode: tokens ask for logits but no buffer was given");
  size_t done = 0;  // logits rows written by earlier parts
  for (size_t i = 0; i < batch.size(); i += n_batch_) {  // Forward takes at most n_batch_ tokens a call
    const std::vector<BatchToken> part(batch.begin() + i, batch.begin() + std::min(batch.size(), i + n_batch_));
    forward_->eval(part, logits ? logits->data() + done * model_->config().vocab_size : nullptr);
    for (const BatchToken& t : part) done += t.logits;
  }
}

const Tokenizer& Session::tokenizer() const {
  const Tokenizer* tokenizer = model_->tokenizer();
  if (!tokenizer) fail("{}: the model file has no vocabulary (tokenizer.ggml.* keys)", model_->file().path());
  if (!pre_noted_ && model_->pre_missing())
    std::fprintf(stderr, "bitnet: note: the file has no tokenizer.ggml.pre (like the official 2B-4T GGUF); using the %s "
                 "pre-tokenizer\n", tokenizer->pre_tokenizer_name().c_str());
  pre_noted_ = true;
  return *tokenizer;
}

void Session::eval(const std::vector<int32_t>& tokens, std::vector<float>* all, std::vector<float>* last,
                   size_t logits_from) {
  const int64_t V = n_vocab();
  if (n_past_ + static_cast<int64_t>(tokens.size()) > cache_->n_ctx())
    fail("{} tokens after {} already in context exceed the context size of {} (-c)", tokens.size(), n_past_,
         cache_->n_ctx());
  logits_from = std::min(logits_from, tokens.size());
  if (all) all->resize((tokens.size() - logits_from) * V);
  std::vector<BatchToken> batch;
  std::vector<float> chunk;
  size_t rows_done = 0;  // rows of `all` filled so far
  for (size_t i = 0; i < tokens.size(); i += n_batch_) {
    const size_t n = std::min<size_t>(n_batch_, tokens.size() - i);
    const bool is_last = i + n == tokens.size();
    batch.clear();
    size_t n_rows = 0;
    for (size_t j = 0; j < n; ++j) {
      const bool want = (all != nullptr && i + j >= logits_from) || (is_last && j + 1 == n && last != nullptr);
      batch.push_back({tokens[i + j], n_past_ + static_cast<int32_t>(j), 0, want});
      n_rows += want;
    }
    float* out;
    const bool into_all = all != nullptr && i + n > logits_from;
    if (into_all) {
      out = all->data() + rows_done * V;
    } else {
      chunk.resize(n_rows * V);
      out = chunk.data();
    }
    forward_->eval(batch, out);
    n_past_ += static_cast<int32_t>(n);
    history_.insert(history_.end(), tokens.begin() + i, tokens.begin() + i + n);
    if (into_all) rows_done += n_rows;
    if (is_last && last) last->assign(out + (n_rows - 1) * V, out + n_rows * V);
  }
}

void Session::truncate(int32_t n) {
  n_past_ = std::clamp(n, 0, n_past_);
  history_.resize(n_past_);
  cache_->set_length(0, n_past_);
}

int32_t Session::eval_reusing_prefix(const std::vector<int32_t>& tokens, std::vector<float>* last) {
  size_t common = 0;
  while (common < history_.size() && common < tokens.size() && history_[common] == tokens[common]) ++common;
  if (common == tokens.size() && common > 0) --common;  // re-evaluate the last token for its logits
  truncate(static_cast<int32_t>(common));
  const std::vector<int32_t> rest(tokens.begin() + common, tokens.end());
  eval(rest, nullptr, last);
  return static_cast<int32_t>(rest.size());
}

}  // namespace bitnet
