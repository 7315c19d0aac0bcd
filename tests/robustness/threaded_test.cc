// The threaded forward pass, for ThreadSanitizer: CI runs tests named Threaded.* under the tsan preset
// (.ci/run), where a data race between the pool's workers is a failure. Several threads must also give
// exactly the logits of one (the kernels split rows, never a reduction).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bitnet/base/thread_pool.h"
#include "bitnet/engine/session.h"
#include "bitnet/model/forward.h"
#include "bitnet/model/kv_cache.h"
#include "bitnet/model/model.h"
#include "bitnet/model/synth.h"
#include "test_util.h"

namespace bitnet {
namespace {

std::vector<float> logits_with(const std::string& path, int32_t threads, int32_t n_batch) {
  SessionOptions o;
  o.n_ctx = 32;
  o.n_threads = threads;
  o.n_batch = n_batch;
  Session s(path, o);
  std::vector<float> all, last;
  s.eval({1, 5, 9, 200, 17, 3, 42, 8}, &all, nullptr);  // prompt: batched
  for (int32_t t : {11, 12, 13}) {                       // decode: one token at a time
    s.eval({t}, nullptr, &last);
    all.insert(all.end(), last.begin(), last.end());
  }
  return all;
}

TEST(Threaded, ForwardPassIsRaceFreeAndMatchesOneThread) {
  bitnet::testing::ScratchDir dir;
  for (TensorType type : {TensorType::I2_S, TensorType::TQ2_0, TensorType::F16}) {
    SynthOptions o;
    o.dim = 256, o.hidden_dim = 512, o.n_layers = 2, o.n_heads = 4, o.n_kv_heads = 2, o.n_ctx = 64;
    o.weight_type = type;
    if (type != TensorType::I2_S) o.arch = "llama";
    const std::string path = (dir / "t.gguf").string();
    synth_model(o).write(path);
    const std::vector<float> one = logits_with(path, 1, 8);
    for (int32_t threads : {2, 4}) {
      EXPECT_EQ(logits_with(path, threads, 8), one) << type_traits(type).name << ", " << threads << " threads";
      EXPECT_EQ(logits_with(path, threads, 3), one) << type_traits(type).name << ", batch 3";
    }
  }
}

// Several sequences in one batch (how a server decodes): attention tiles group a prompt's tokens of one
// sequence, so batches that interleave, group or split sequences must give each token the logits it gets
// when its sequence runs alone, one token at a time.
TEST(Threaded, SequencesInOneBatchMatchEachAlone) {
  bitnet::testing::ScratchDir dir;
  SynthOptions o;
  o.dim = 256, o.hidden_dim = 512, o.n_layers = 2, o.n_heads = 8, o.n_kv_heads = 2, o.n_ctx = 64;
  const std::string path = (dir / "s.gguf").string();
  synth_model(o).write(path);
  LoadOptions lo;
  lo.tokenizer = false;
  const auto model = Model::load(path, lo);
  const int64_t V = model->config().vocab_size;
  const std::vector<std::vector<int32_t>> seqs = {{1, 5, 9, 200, 17, 3, 42, 8, 11}, {7, 7, 300, 2, 90, 14}, {4}};

  // Reference: each sequence alone, one token per batch, one thread.
  std::vector<std::vector<float>> want(seqs.size());
  {
    ThreadPool pool(1);
    for (size_t s = 0; s < seqs.size(); ++s) {
      KvCache cache(model->config(), 32, KvType::F16);
      Forward f(*model, cache, 1, pool);
      for (size_t i = 0; i < seqs[s].size(); ++i) {
        std::vector<float> l(V);
        f.eval({{seqs[s][i], int32_t(i), 0, true}}, l.data());
        want[s].insert(want[s].end(), l.begin(), l.end());
      }
    }
  }
  // Batches: round-robin interleaving (tiles of one token), grouped sequences (tiles of several), and a
  // grouped prompt split mid-sequence across two batches.
  enum class Order { Interleaved, Grouped, Split };
  for (Order order : {Order::Interleaved, Order::Grouped, Order::Split})
    for (int32_t threads : {1, 2, 3}) {
      std::vector<BatchToken> all;
      if (order == Order::Interleaved) {
        for (size_t i = 0; i < 9; ++i)
          for (size_t s = 0; s < seqs.size(); ++s)
            if (i < seqs[s].size()) all.push_back({seqs[s][i], int32_t(i), int32_t(s), true});
      } else {
        for (size_t s = 0; s < seqs.size(); ++s)
          for (size_t i = 0; i < seqs[s].size(); ++i) all.push_back({seqs[s][i], int32_t(i), int32_t(s), true});
      }
      std::vector<std::vector<BatchToken>> batches = {all};
      if (order == Order::Split) batches = {{all.begin(), all.begin() + 6}, {all.begin() + 6, all.end()}};
      ThreadPool pool(threads);
      KvCache cache(model->config(), 32, KvType::F16, int32_t(seqs.size()));
      Forward f(*model, cache, int32_t(all.size()), pool);
      for (const auto& batch : batches) {
        std::vector<float> got(batch.size() * V);
        f.eval(batch, got.data());
        for (size_t b = 0; b < batch.size(); ++b) {
          const auto& t = batch[b];
          const float* w = &want[t.seq][size_t(t.pos) * V];
          ASSERT_TRUE(std::equal(w, w + V, &got[b * V]))
              << "order " << int(order) << ", " << threads << " threads, seq " << t.seq << " pos " << t.pos;
        }
      }
    }

  // Session::decode: the same batch through a session of 3 slots whose n_batch (4) splits it into several
  // forward passes; logits only for some tokens, gathered in batch order.
  SessionOptions so;
  so.n_ctx = 32, so.n_batch = 4, so.n_seq = 3, so.n_threads = 2;
  Session session(path, so);
  std::vector<BatchToken> all;
  for (size_t s = 0; s < seqs.size(); ++s)
    for (size_t i = 0; i < seqs[s].size(); ++i) all.push_back({seqs[s][i], int32_t(i), int32_t(s), i % 2 == 0});
  std::vector<float> got;
  session.decode(all, &got);
  size_t row = 0;
  for (const BatchToken& t : all) {
    if (!t.logits) continue;
    const float* w = &want[t.seq][size_t(t.pos) * V];
    ASSERT_TRUE(std::equal(w, w + V, &got[row++ * V])) << "decode: seq " << t.seq << " pos " << t.pos;
  }
  EXPECT_EQ(got.size(), row * V);
}

// A long context (600 positions: attention's tasks then run on every thread) decoded one token at a time,
// in tiles of three and across two tiles: every logit must be the one thread's, for F16 and F32 caches, head
// sizes of 96 and 128, and fewer, as many or more KV heads than threads.
TEST(Threaded, LongContextMatchesOneThread) {
  bitnet::testing::ScratchDir dir;
  struct Shape {
    uint32_t dim, n_heads, n_kv_heads;  // head_dim 96, 128, 128
  };
  for (const Shape sh : {Shape{384, 4, 2}, Shape{512, 4, 1}, Shape{384, 3, 3}}) {
    SynthOptions o;
    o.dim = sh.dim, o.hidden_dim = 512, o.n_layers = 2, o.n_heads = sh.n_heads, o.n_kv_heads = sh.n_kv_heads;
    o.n_ctx = 1024;
    const std::string path = (dir / "long.gguf").string();
    synth_model(o).write(path);
    LoadOptions lo;
    lo.tokenizer = false;
    const auto model = Model::load(path, lo);
    const int64_t V = model->config().vocab_size;
    // A prompt in batches of 64, then batches of one token, of three (one tile) and of five (two tiles).
    std::vector<std::vector<BatchToken>> batches;
    int32_t pos = 0;
    auto token = [&](int32_t p) { return int32_t((p * 7919 + 13) % (V - 1)) + 1; };
    while (pos < 600) {
      std::vector<BatchToken> b;
      for (int i = 0; i < 64 && pos < 600; ++i, ++pos) b.push_back({token(pos), pos, 0, pos >= 570});
      batches.push_back(b);
    }
    for (int32_t n : {1, 1, 3, 1, 5}) {
      std::vector<BatchToken> b;
      for (int i = 0; i < n; ++i, ++pos) b.push_back({token(pos), pos, 0, true});
      batches.push_back(b);
    }
    for (KvType kv : {KvType::F16, KvType::F32}) {
      auto run = [&](int threads) {
        ThreadPool pool(threads);
        KvCache cache(model->config(), 640, kv);
        Forward f(*model, cache, 64, pool);
        std::vector<float> all;
        for (const auto& b : batches) {
          const size_t n_out = std::count_if(b.begin(), b.end(), [](const BatchToken& t) { return t.logits; });
          std::vector<float> got(n_out * V);  // rows of the tokens with logits, in batch order
          f.eval(b, got.data());
          all.insert(all.end(), got.begin(), got.end());
        }
        return all;
      };
      const std::vector<float> one = run(1);
      for (int threads : {2, 3})
        EXPECT_EQ(run(threads), one) << "dim " << sh.dim << ", " << sh.n_kv_heads << " KV heads, "
                                     << (kv == KvType::F16 ? "F16" : "F32") << " cache, " << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace bitnet
