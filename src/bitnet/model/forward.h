// The forward pass (BITNET_FORMATS.md §4) over a batch of tokens. Each token names its sequence slot in
// the KV cache and its position, so a prompt, one decode step, or several sequences decoding together
// are the same call. Every named intermediate goes to an optional trace sink (names as in llama.cpp).
#pragma once

#include <initializer_list>
#include <utility>

#include <cstdint>
#include <string_view>
#include <vector>

#include "bitnet/model/kv_cache.h"
#include "bitnet/model/model.h"

namespace bitnet {

struct BatchToken {
  int32_t token = 0;
  int32_t pos = 0;      // position in its sequence; K/V of positions < pos must already be cached
  int32_t seq = 0;      // KV cache slot
  bool logits = false;  // compute logits for this token
};

// Receives every named intermediate: one call per (name, layer, token in batch) with that token's row.
// layer is -1 for tensors outside the layers (result_norm, logits).
class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void on_tensor(std::string_view name, int layer, int token, const float* data, size_t n) = 0;
};

// Wall time spent per part of the forward pass (filled when a profile is attached; for `bitnet bench`).
struct ForwardProfile {
  double linear_ms = 0, lm_head_ms = 0, attention_ms = 0, total_ms = 0;
  int64_t calls = 0;
};

class Forward {
 public:
  Forward(const Model& model, KvCache& cache, int32_t max_batch, ThreadPool& pool);
  ~Forward();
  Forward(const Forward&) = delete;
  Forward& operator=(const Forward&) = delete;

  // Runs the batch; logits of tokens with .logits set go to `logits`, [n_with_logits][vocab] in batch
  // order. Throws Error when a position is outside the cache (the context limit).
  void eval(const std::vector<BatchToken>& batch, float* logits);
  void set_trace(TraceSink* sink) { trace_ = sink; }
  void set_profile(ForwardProfile* p) { profile_ = p; }
  // Reads every weight byte a one-token eval reads (each layer's linear layers, the LM head as held) with
  // eval's jobs, thread pool and row split, doing nothing with them: the memory roofline of decoding as
  // decoding reads memory (`bitnet bench --roofline`). Returns the bytes read and the seconds taken, the
  // layers and the head apart (norm vectors and the embedding row, a few KB, are left out).
  struct WeightReads {
    uint64_t layer_bytes = 0, head_bytes = 0;
    double layer_s = 0, head_s = 0;
    uint64_t bytes() const { return layer_bytes + head_bytes; }
  };
  WeightReads read_weights();
  int32_t max_batch() const { return max_batch_; }

 private:
  void layer(int l, const std::vector<BatchToken>& batch);
  // fn(t0, t1) over the batch's tokens, split over the pool (one token runs on the caller).
  template <typename F>
  void per_token(int32_t T, F&& fn) {
    pool_.parallel_for(T, 1, [&](int64_t t0, int64_t t1, int) { fn(t0, t1); });
  }
  void attention(int l, const std::vector<BatchToken>& batch);
  // y[T][L.rows] = L(x[T][L.cols]); quantizes x once when `q_ready` is false.
  // `ahead`: what the caller reads after the product, asked for when its part of the product is done.
  void linear(const Linear& L, const float* x, int32_t T, float* y, bool reuse_quantized = false,
              std::span<const Prefetch> ahead = {});
  void linear_group(std::initializer_list<std::pair<const Linear*, float*>> group, const float* x, int32_t T,
                    std::span<const Prefetch> ahead = {});
  void emit(std::string_view name, int layer, const float* data, int32_t T, int64_t width);
  // Has each worker read the start of its share of the next job (these matrices as one stack of rows, or
  // the LM head) while the caller does the serial work before it (ThreadPool::warm).
  void warm(std::initializer_list<const Linear*> group);
  void warm_head();
  // The LM head as decoding reads it (the quantized head when there is one): its rows and their size.
  std::pair<const uint8_t*, size_t> head_rows() const;

  const Model& m_;
  const ModelConfig& c_;
  KvCache& cache_;
  int32_t max_batch_;
  ThreadPool& pool_;
  LinearScratch lin_;
  TraceSink* trace_ = nullptr;
  ForwardProfile* profile_ = nullptr;

  // Scratch, [max_batch][width] each; resident only as far as batches use it (ScratchVector).
  ScratchVector<float> x_, xn_, q_, k_, v_, att_, o_, gate_, up_;
  // Attention tiles: up to kAttnTile tokens of a prompt share one pass over a KV head's rows.
  static constexpr int32_t kAttnTile = 4;
  struct AttnTile {
    int32_t t0, t1;  // batch tokens [t0, t1), all of one sequence
  };
  std::vector<AttnTile> attn_tiles_;  // of the batch in eval(), formed once for all layers
  // Attention runs over chunks of kAttnChunk positions (attention()); scratch in slots, one per thread or per KV
  // head, each of kAttnTile * (query heads per KV head) rows.
  static constexpr int64_t kAttnChunk = 256;
  int64_t attn_chunks_ = 0;          // chunks of a full context
  ScratchVector<float> scores_;      // [slot][row][n_ctx] scores, then exps
  ScratchVector<float> q_tile_;      // [slot][row][head_dim] a tile's gathered queries
  ScratchVector<float> part_max_;    // [slot][chunk][row] the chunk's largest score
  ScratchVector<double> part_sum_;   // [slot][chunk][row] the sum of its exps
  ScratchVector<float> part_mix_;    // [slot][chunk][row][head_dim] its exps times its V rows
  ScratchVector<float> chunk_scale_;  // [thread][chunk] exp(m_c - M) while combining
  std::vector<float> trace_kq_;      // [row][n_ctx] a traced tile's scaled scores
  ScratchVector<float> rope_cos_, rope_sin_;  // [max_batch][rope_dim/2]
  std::vector<Prefetch> ahead_;  // layer(): what the attention's steps read after the q/k/v product
};

}  // namespace bitnet
