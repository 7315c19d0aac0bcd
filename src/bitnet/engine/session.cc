#include "bitnet/engine/session.h"

#include <algorithm>
#include <cstdio>

#include "bitnet/base/error.h"

namespace bitnet {

Session::Session(const std::string& model_path, const SessionOptions& opts) {
  LoadOptions lo;
  lo.act_quant = opts.act_quant;
  model_ = Model::load(model_path, lo);
  if (model_->has_vocab()) tokenizer_ = Tokenizer::create(model_->vocab());
  int32_t n_ctx = opts.n_ctx;
  if (n_ctx <= 0) n_ctx = static_cast<int32_t>(std::min<uint32_t>(model_->config().n_ctx_train, 4096));
  if (n_ctx > (1 << 20)) fail("context size {} is too large", n_ctx);
  cache_ = std::make_unique<KvCache>(model_->config(), n_ctx, opts.kv_type);
  n_batch_ = std::clamp(opts.n_batch, 1, n_ctx);
  forward_ = std::make_unique<Forward>(*model_, *cache_, n_batch_);
}

const Tokenizer& Session::tokenizer() const {
  if (!tokenizer_) fail("{}: the model file has no vocabulary (tokenizer.ggml.* keys)", model_->file().path());
  if (!pre_noted_ && model_->vocab().model == "gpt2" && model_->vocab().pre.empty())
    std::fprintf(stderr, "bitnet: note: the file has no tokenizer.ggml.pre (like the official 2B-4T GGUF); using the %s "
                 "pre-tokenizer\n", tokenizer_->pre_tokenizer_name().c_str());
  pre_noted_ = true;
  return *tokenizer_;
}

void Session::eval(const std::vector<int32_t>& tokens, std::vector<float>* all, std::vector<float>* last) {
  const int64_t V = n_vocab();
  if (n_past_ + static_cast<int64_t>(tokens.size()) > cache_->n_ctx())
    fail("{} tokens after {} already in context exceed the context size of {} (-c)", tokens.size(), n_past_,
         cache_->n_ctx());
  if (all) all->resize(tokens.size() * V);
  std::vector<BatchToken> batch;
  std::vector<float> chunk;
  for (size_t i = 0; i < tokens.size(); i += n_batch_) {
    const size_t n = std::min<size_t>(n_batch_, tokens.size() - i);
    const bool is_last = i + n == tokens.size();
    batch.clear();
    for (size_t j = 0; j < n; ++j)
      batch.push_back({tokens[i + j], n_past_ + static_cast<int32_t>(j), 0, all != nullptr || (is_last && j + 1 == n)});
    float* out;
    if (all) {
      out = all->data() + i * V;
    } else {
      chunk.resize(V);
      out = chunk.data();
    }
    forward_->eval(batch, out);
    n_past_ += static_cast<int32_t>(n);
    if (is_last && last) last->assign(out + (all ? (n - 1) * V : 0), out + (all ? n * V : V));
  }
}

void Session::truncate(int32_t n) {
  n_past_ = std::clamp(n, 0, n_past_);
  cache_->set_length(0, n_past_);
}

}  // namespace bitnet
