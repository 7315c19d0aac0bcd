#include "bitnet/model/forward.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/kernels/kernels.h"

namespace bitnet {

namespace {
using Clock = std::chrono::steady_clock;
// Adds the time until destruction to *slot (when slot is non-null).
struct Timed {
  double* slot;
  Clock::time_point t0 = Clock::now();
  explicit Timed(double* s) : slot(s) {}
  ~Timed() {
    if (slot) *slot += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }
};

// The rows [b, e) of a group of matrices taken as one stack of rows (a linear_group job's chunk), as calls
// fn(matrix, its output, its rows [m0, m1)) for each matrix the range touches.
template <typename F>
void for_each_part(std::initializer_list<std::pair<const Linear*, float*>> group, int64_t b, int64_t e, F&& fn) {
  int64_t off = 0;
  for (const auto& [L, y] : group) {
    const int64_t m0 = std::max(b, off) - off, m1 = std::min(e, off + L->rows) - off;
    if (m0 < m1) fn(*L, y, m0, m1);
    off += L->rows;
  }
}

// A job of fewer multiply-adds than this runs on the calling thread alone: waking and joining another thread
// costs more than it saves. The trained 5M model (largest matrix 768 x 256; only its LM head, 4096 x 256, is
// above the bound) decoded at 8100-8700 tok/s on two threads and 11300 on one when every job was split; now
// 13300 on two (bench -n 64, 2 alternated pairs). The 2B-4T shape's matrices are all far above it.
constexpr int64_t kSerialWork = int64_t(1) << 19;
int64_t grain_for(int64_t n, int64_t work_per_item, int64_t grain) { return n * work_per_item < kSerialWork ? n : grain; }

// A linear layer's weights in memory: where they begin, and the bytes before row m (rows are contiguous in
// every layout, and a panel layout's last, padded panel ends the matrix: row_offset(L, L.rows) is its size).
const uint8_t* weight_base(const Linear& L) { return L.ternary ? L.tern.codes : L.flt.data; }
uint64_t row_offset(const Linear& L, int64_t m) {
  if (!L.ternary) return uint64_t(m) * L.flt.row_bytes;
  if (m == L.rows) return kernels::ternary_layout_bytes(L.tern.layout, L.rows, L.cols);
  return uint64_t(m) * L.cols / 4;
}

// Each row of x[T][K] to int8 (absmax) with its scale and sum, into s: the activations of the int8 kernels.
void quantize_activations(const float* x, int32_t T, int64_t K, LinearScratch& s, ThreadPool& pool) {
  const kernels::KernelTable& kt = kernels::active();
  pool.parallel_for(T, grain_for(T, K, 1), [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) s.scale[t] = kt.quantize_i8(x + t * K, K, &s.q[t * K], &s.sum[t]);
  });
}

}  // namespace

// Decoding one token, the caller's serial steps between products read data nothing has touched since the
// last token: each RMSNorm's weights, the RoPE row, the KV cache rows the token writes. Read when needed
// they come from memory one latency-bound line at a time. Asked for before the product that precedes the
// step, they were gone again when it ended (the product streams megabytes through the caller's L2), so each
// product asks for them when the caller's own rows are done, while it waits for the workers' last ones.
// Per-step cycle counts, 2B-4T shape, norms on huge pages (Model::copy_norms), asked before -> after:
// attn_norm 0.84 -> 0.64, attn_sub_norm 0.73 -> 0.57, ffn_norm (with the residual) 1.52 -> 1.29,
// ffn_sub_norm 1.71 -> 1.18 us (hot: 0.4 us for a 2560-wide norm).
void prefetch(std::span<const Prefetch> ahead) {
  for (const Prefetch& a : ahead) {
    const auto* p = static_cast<const uint8_t*>(a.p);
    for (int64_t i = 0; p && i < a.bytes; i += 64) {
      if (a.write) __builtin_prefetch(p + i, /*rw=*/1, /*locality=*/3);
      else __builtin_prefetch(p + i, /*rw=*/0, /*locality=*/3);
    }
  }
}

Forward::Forward(const Model& model, KvCache& cache, int32_t max_batch, ThreadPool& pool)
    : m_(model), c_(model.config()), cache_(cache), max_batch_(max_batch), pool_(pool),
      lin_(max_batch, std::max({int64_t(model.config().dim), int64_t(model.config().hidden_dim),
                                int64_t(model.config().n_heads) * model.config().head_dim}),
           pool.size()) {
  if (max_batch < 1) fail("batch size {} must be at least 1", max_batch);
  const size_t B = max_batch, d = c_.dim, qd = size_t(c_.n_heads) * c_.head_dim,
               kvd = size_t(c_.n_kv_heads) * c_.head_dim, ff = c_.hidden_dim;
  x_.resize(B * d);
  xn_.resize(B * std::max(d, qd));
  q_.resize(B * qd);
  k_.resize(B * kvd);
  v_.resize(B * kvd);
  att_.resize(B * qd);
  o_.resize(B * d);
  gate_.resize(B * ff);
  up_.resize(B * ff);
  const size_t group = c_.n_heads / c_.n_kv_heads;
  // A scratch slot per thread, or per KV head when one tile is split over its chunks (attention()).
  const size_t slots = std::max<size_t>(pool.size(), c_.n_kv_heads), rows = size_t(kAttnTile) * group;
  attn_chunks_ = (cache.n_ctx() + kAttnChunk - 1) / kAttnChunk;
  scores_.resize(slots * rows * cache.n_ctx());
  q_tile_.resize(slots * rows * c_.head_dim);
  part_max_.resize(slots * attn_chunks_ * rows);
  part_sum_.resize(slots * attn_chunks_ * rows);
  part_mix_.resize(slots * attn_chunks_ * rows * c_.head_dim);
  chunk_scale_.resize(size_t(pool.size()) * attn_chunks_);
  rope_cos_.resize(B * c_.rope_dim / 2);
  rope_sin_.resize(B * c_.rope_dim / 2);
}

Forward::~Forward() { pool_.clear_warm(); }  // no worker may read these weights after this

// Decoding one token, the caller's serial work between two products (norms, RoPE, attention, the activation:
// ~32 us per layer of the 2B-4T shape, ~8 % of the token) left the workers and the memory bus idle. Now each
// worker reads the start of its share of the next product meanwhile: 140-200 KB per gap on average, about 2 %
// of the token's bytes. Per-token A/B in one process (2 threads, 2B-4T shape): q8 head +3.0/+3.3/-1.5/+3.2/
// +0.7/+0.4 %, F16 head +0.2/-0.7/+2.4/+2.0 % tok/s (same-code runs: +0.4/+1.8/-1.2/-0.1 %).
void Forward::warm(std::initializer_list<const Linear*> group) {
  int64_t total = 0;
  for (const Linear* L : group) total += L->rows;
  const int64_t K = (*group.begin())->cols, nt = pool_.size();
  if (nt < 2 || grain_for(total, K, 16) == total) return;  // the job will run on the caller alone
  for (int64_t i = 1; i < nt; ++i) {
    int64_t row = ThreadPool::share_begin(total, 16, i, nt), end = ThreadPool::share_begin(total, 16, i + 1, nt);
    for (const Linear* L : group) {  // the matrix the share begins in; warming stops at its end
      if (row < L->rows) {
        const uint64_t begin = row_offset(*L, row);
        pool_.warm(int(i), weight_base(*L) + begin, row_offset(*L, std::min(end, L->rows)) - begin);
        break;
      }
      row -= L->rows, end -= L->rows;
    }
  }
}

std::pair<const uint8_t*, size_t> Forward::head_rows() const {
  if (m_.quant_head) return {m_.quant_head->w.data(), m_.quant_head->row_bytes};
  return {m_.output.data, m_.output.row_bytes};
}

void Forward::warm_head() {
  const int64_t V = c_.vocab_size, nt = pool_.size();
  if (nt < 2 || grain_for(V, c_.dim, 64) == V) return;
  const auto [head, row_bytes] = head_rows();
  for (int64_t i = 1; i < nt; ++i) {
    const int64_t v0 = ThreadPool::share_begin(V, 64, i, nt), v1 = ThreadPool::share_begin(V, 64, i + 1, nt);
    pool_.warm(int(i), head + v0 * row_bytes, (v1 - v0) * row_bytes);
  }
}

void Forward::emit(std::string_view name, int layer, const float* data, int32_t T, int64_t width) {
  if (!trace_) return;
  for (int32_t t = 0; t < T; ++t) trace_->on_tensor(name, layer, t, data + t * width, width);
}

LinearScratch::LinearScratch(int32_t max_batch, int64_t max_k_, int n_threads)
    : q(size_t(max_batch) * max_k_), scale(max_batch), sum(max_batch),
      rows(size_t(n_threads) * max_k_), max_k(max_k_) {}

void apply_linear(const Linear& L, ActQuant act_quant, const float* x, int32_t T, float* y, LinearScratch& s,
                  ThreadPool& pool, bool reuse_quantized, std::span<const Prefetch> ahead) {
  const kernels::KernelTable& kt = kernels::active();
  // Ternary codes are packed at load for the active table; any other layout (I2_S) runs on the scalar one.
  const kernels::KernelTable& tt = L.tern.layout == kt.layout ? kt : kernels::scalar_table();
  const int64_t K = L.cols;
  const bool quantize = L.ternary || act_quant == ActQuant::PerToken;
  const bool fast_ternary = L.ternary && L.tern.block_scales.empty();
  if (quantize && !reuse_quantized) quantize_activations(x, T, K, s, pool);
  // Row ranges in multiples of 16 keep threads off each other's output cache lines.
  pool.parallel_for(L.rows, grain_for(L.rows, K * T, 16), [&](int64_t m0, int64_t m1, int thread) {
    if (fast_ternary) {
      tt.ternary_gemm(L.tern.codes, K, m0, m1, s.q.data(), s.sum.data(), s.scale.data(), T, L.tern.scale, y, L.rows);
    } else if (L.ternary) {
      kernels::ternary_gemm_blocks(L.tern.codes, K, m0, m1, s.q.data(), s.scale.data(), T, L.tern.block_scales.data(),
                                   y, L.rows);
    } else {
      float* scratch = &s.rows[size_t(thread) * s.max_k];
      if (quantize)
        kernels::float_gemm_i8(L.flt.type, L.flt.data, L.flt.row_bytes, K, m0, m1, s.q.data(), s.scale.data(), T, y,
                               L.rows, scratch);
      else
        kernels::float_gemm(kt, L.flt.type, L.flt.data, L.flt.row_bytes, K, m0, m1, x, T, y, L.rows, scratch);
    }
  }, [&] { prefetch(ahead); });
  if (L.out_scale != 1.0f)
    for (int64_t i = 0; i < int64_t(T) * L.rows; ++i) y[i] *= L.out_scale;
}

void Forward::linear(const Linear& L, const float* x, int32_t T, float* y, bool reuse_quantized,
                     std::span<const Prefetch> ahead) {
  Timed timed(profile_ ? &profile_->linear_ms : nullptr);
  apply_linear(L, m_.act_quant(), x, T, y, lin_, pool_, reuse_quantized, ahead);
}

// Linear layers reading one input (q, k, v; gate, up) as one job for the pool when all are ternary in the
// active layout: x is quantized once and the threads take row chunks of all of them in turn, so there is one
// join instead of one per matrix and the small K/V projections ride in the same stream of weights. Each row
// is computed by the same kernel call as apart, so the results are the same bits.
void Forward::linear_group(std::initializer_list<std::pair<const Linear*, float*>> group, const float* x, int32_t T,
                           std::span<const Prefetch> ahead) {
  const kernels::KernelTable& kt = kernels::active();
  bool fused = true;
  for (const auto& [L, y] : group)
    fused = fused && L->ternary && L->tern.block_scales.empty() && L->tern.layout == kt.layout && L->out_scale == 1.0f &&
            L->cols == group.begin()->first->cols;
  if (!fused) {
    bool first = true;
    for (const auto& [L, y] : group) {
      linear(*L, x, T, y, /*reuse_quantized=*/!first && L->ternary && group.begin()->first->ternary,
             L == std::prev(group.end())->first ? ahead : std::span<const Prefetch>{});
      first = false;
    }
    return;
  }
  Timed timed(profile_ ? &profile_->linear_ms : nullptr);
  const int64_t K = group.begin()->first->cols;
  quantize_activations(x, T, K, lin_, pool_);
  int64_t total = 0;
  for (const auto& [L, y] : group) total += L->rows;
  pool_.parallel_for(total, grain_for(total, K * T, 16), [&](int64_t b, int64_t e, int) {
    for_each_part(group, b, e, [&](const Linear& L, float* y, int64_t m0, int64_t m1) {
      kt.ternary_gemm(L.tern.codes, K, m0, m1, lin_.q.data(), lin_.sum.data(), lin_.scale.data(), T, L.tern.scale, y,
                      L.rows);
    });
  }, [&] { prefetch(ahead); });
}

Forward::WeightReads Forward::read_weights() {
  const kernels::KernelTable& kt = kernels::active();
  std::atomic<uint64_t> sink{0};
  WeightReads r;
  const auto t0 = Clock::now();
  // One job per group, as linear_group runs q/k/v and gate/up (and linear the others), grain 16.
  auto job = [&](std::initializer_list<std::pair<const Linear*, float*>> group) {
    int64_t total = 0;
    for (const auto& [L, y] : group) total += L->rows, r.layer_bytes += row_offset(*L, L->rows);
    pool_.parallel_for(total, 16, [&](int64_t b, int64_t e, int) {
      uint64_t s = 0;
      for_each_part(group, b, e, [&](const Linear& L, float*, int64_t m0, int64_t m1) {
        s += kt.read_sum(weight_base(L) + row_offset(L, m0), row_offset(L, m1) - row_offset(L, m0));
      });
      sink.fetch_add(s, std::memory_order_relaxed);
    });
  };
  for (const LayerWeights& L : m_.layers) {
    job({{&L.wq, nullptr}, {&L.wk, nullptr}, {&L.wv, nullptr}});
    job({{&L.wo, nullptr}});
    job({{&L.w_gate, nullptr}, {&L.w_up, nullptr}});
    job({{&L.w_down, nullptr}});
  }
  const auto t1 = Clock::now();
  const int64_t V = c_.vocab_size;
  const auto rows = head_rows();  // named members, not a structured binding: clang before 16 cannot capture one
  const uint8_t* head = rows.first;
  const size_t row_bytes = rows.second;
  r.head_bytes = uint64_t(V) * row_bytes;
  pool_.parallel_for(V, 64, [&](int64_t v0, int64_t v1, int) {
    sink.fetch_add(kt.read_sum(head + v0 * row_bytes, (v1 - v0) * row_bytes), std::memory_order_relaxed);
  });
  r.layer_s = std::chrono::duration<double>(t1 - t0).count();
  r.head_s = std::chrono::duration<double>(Clock::now() - t1).count();
  return r;  // (the sums are not used: the reads happen in calls through the kernel table)
}

void Forward::eval(const std::vector<BatchToken>& batch, float* logits) {
  const int32_t T = static_cast<int32_t>(batch.size());
  if (T == 0) return;
  if (T > max_batch_) fail("batch of {} tokens exceeds the maximum {}", T, max_batch_);
  Timed timed(profile_ ? &profile_->total_ms : nullptr);
  if (profile_) ++profile_->calls;
  for (const BatchToken& b : batch) {
    if (b.seq < 0 || b.seq >= cache_.n_seq()) fail("sequence slot {} does not exist", b.seq);
    if (b.pos < 0 || b.pos >= cache_.n_ctx())
      fail("position {} is outside the context of {} tokens (-c)", b.pos, cache_.n_ctx());
    if (b.token < 0 || b.token >= static_cast<int32_t>(c_.vocab_size))
      fail("token id {} is outside the vocabulary of {} tokens", b.token, c_.vocab_size);
  }
  const int64_t d = c_.dim;

  // Embedding lookup (no scaling), then the rotary angles of each token's position.
  for (int32_t t = 0; t < T; ++t)
    kernels::dequantize_row(m_.token_embd.type, m_.token_embd.data + size_t(batch[t].token) * m_.token_embd.row_bytes,
                            d, &x_[t * d]);
  emit("inp_embd", -1, x_.data(), T, d);
  const int half = c_.rope_dim / 2;
  for (int32_t t = 0; t < T; ++t)
    for (int i = 0; i < half; ++i) {
      const double theta = batch[t].pos * std::pow(static_cast<double>(c_.rope_theta), -2.0 * i / c_.rope_dim);
      rope_cos_[t * half + i] = static_cast<float>(std::cos(theta));
      rope_sin_[t * half + i] = static_cast<float>(std::sin(theta));
    }

  // Attention tiles: runs of up to kAttnTile consecutive tokens of one sequence (one token each under a
  // trace, whose sink sees one token at a time).
  const int32_t tile_max = trace_ ? 1 : kAttnTile;
  attn_tiles_.clear();
  for (int32_t t = 0; t < T; ++t) {
    const AttnTile* last = attn_tiles_.empty() ? nullptr : &attn_tiles_.back();
    if (!last || last->t1 - last->t0 == tile_max || batch[last->t0].seq != batch[t].seq) attn_tiles_.push_back({t, t});
    attn_tiles_.back().t1 = t + 1;
  }

  for (int l = 0; l < static_cast<int>(c_.n_layers); ++l) layer(l, batch);
  for (const BatchToken& b : batch) cache_.set_length(b.seq, std::max(cache_.length(b.seq), b.pos + 1));

  // Final norm and LM head for the tokens that want logits: [n_out][dim] -> [n_out][vocab].
  const int64_t V = c_.vocab_size;
  int32_t n_out = 0;
  for (int32_t t = 0; t < T; ++t) {
    if (!batch[t].logits) continue;
    kernels::rmsnorm(&x_[t * d], m_.output_norm, d, c_.norm_eps, &xn_[n_out * d]);
    if (trace_) trace_->on_tensor("result_norm", -1, t, &xn_[n_out * d], d);
    ++n_out;
  }
  if (n_out == 0) return;
  Timed lm_timed(profile_ ? &profile_->lm_head_ms : nullptr);
  const kernels::KernelTable& kt = kernels::active();
  if (const QuantHead* h = m_.quant_head.get()) {
    for (int32_t r = 0; r < n_out; ++r)
      lin_.scale[r] = kt.quantize_i8(&xn_[r * d], d, &lin_.q[r * d], nullptr);
    pool_.parallel_for(V, grain_for(V, d * n_out, 64), [&](int64_t v0, int64_t v1, int) {
      if (h->bits == 8)
        kt.int8_gemm(reinterpret_cast<const int8_t*>(h->w.data()), d, v0, v1, lin_.q.data(), lin_.scale.data(), n_out,
                     h->row_scale.data(), logits, V);
      else
        kt.qhead_gemm(h->bits, h->w.data(), h->row_bytes, d, v0, v1, lin_.q.data(), lin_.scale.data(), n_out,
                      h->row_scale.data(), logits, V);
    });
  } else {
    pool_.parallel_for(V, grain_for(V, d * n_out, 64), [&](int64_t v0, int64_t v1, int thread) {
      kernels::float_gemm(kt, m_.output.type, m_.output.data, m_.output.row_bytes, d, v0, v1, xn_.data(), n_out,
                          logits, V, &lin_.rows[size_t(thread) * lin_.max_k]);
    });
  }
  if (trace_) {
    int32_t row = 0;
    for (int32_t t = 0; t < T; ++t)
      if (batch[t].logits) trace_->on_tensor("result_output", -1, t, logits + int64_t(row++) * V, V);
  }
}

void Forward::layer(int l, const std::vector<BatchToken>& batch) {
  const LayerWeights& L = m_.layers[l];
  const int32_t T = static_cast<int32_t>(batch.size());
  const int64_t d = c_.dim, qd = int64_t(c_.n_heads) * c_.head_dim, ff = c_.hidden_dim;

  // Attention block: h = RMSNorm(x); q,k,v = BitLinear(h); rotate q,k; attend; sub-norm; x += W_o a.
  per_token(T, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) kernels::rmsnorm(&x_[t * d], L.attn_norm, d, c_.norm_eps, &xn_[t * d]);
  });
  emit("attn_norm", l, xn_.data(), T, d);
  // What one token's serial steps read after each product (see prefetch): the attention's RoPE row, its KV
  // cache rows and sub-norm; then each next norm.
  std::vector<Prefetch>& ahead = ahead_;
  ahead.clear();
  if (T == 1) {
    const int64_t row = cache_.row_bytes(), at = int64_t(batch[0].pos) * row, half = c_.rope_dim / 2;
    ahead.push_back({L.attn_sub_norm, qd * 4});
    ahead.push_back({rope_cos_.data(), half * 4});
    ahead.push_back({rope_sin_.data(), half * 4});
    for (int h = 0; h < static_cast<int>(c_.n_kv_heads); ++h) {
      ahead.push_back({cache_.k_head(l, batch[0].seq, h) + at, row, true});
      ahead.push_back({cache_.v_head(l, batch[0].seq, h) + at, row, true});
    }
  }
  const float* next_norm = l + 1 < static_cast<int>(c_.n_layers) ? m_.layers[l + 1].attn_norm : m_.output_norm;
  const Prefetch after_wo[] = {{T == 1 ? L.ffn_norm : nullptr, d * 4}};
  const Prefetch after_gate_up[] = {{T == 1 ? L.ffn_sub_norm : nullptr, ff * 4}};
  const Prefetch after_down[] = {{T == 1 ? next_norm : nullptr, d * 4}};
  linear_group({{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}}, xn_.data(), T, ahead);
  if (T == 1) warm({&L.wo});  // (each product of one token warms the next: see ThreadPool::warm)
  attention(l, batch);
  const float* a = att_.data();
  if (L.attn_sub_norm) {
    per_token(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) kernels::rmsnorm(&att_[t * qd], L.attn_sub_norm, qd, c_.norm_eps, &xn_[t * qd]);
    });
    emit("attn_sub_norm", l, xn_.data(), T, qd);
    a = xn_.data();
  }
  linear(L.wo, a, T, o_.data(), false, after_wo);
  if (T == 1) warm({&L.w_gate, &L.w_up});
  emit("attn_out", l, o_.data(), T, d);
  per_token(T, [&](int64_t t0, int64_t t1) {
    for (int64_t i = t0 * d; i < t1 * d; ++i) x_[i] += o_[i];
  });
  emit("ffn_inp", l, x_.data(), T, d);

  // Feed-forward block: h = RMSNorm(x); f = act(W_gate h) * (W_up h); sub-norm; x += W_down f.
  per_token(T, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) kernels::rmsnorm(&x_[t * d], L.ffn_norm, d, c_.norm_eps, &xn_[t * d]);
  });
  emit("ffn_norm", l, xn_.data(), T, d);
  linear_group({{&L.w_gate, gate_.data()}, {&L.w_up, up_.data()}}, xn_.data(), T, after_gate_up);
  if (T == 1) warm({&L.w_down});
  emit("ffn_gate", l, gate_.data(), T, ff);
  emit("ffn_up", l, up_.data(), T, ff);
  per_token(T, [&](int64_t t0, int64_t t1) {
    const float* __restrict g = &gate_[t0 * ff];
    float* __restrict u = &up_[t0 * ff];  // the product overwrites up (one buffer less)
    const int64_t n = (t1 - t0) * ff;
    switch (c_.act) {  // one branch-free loop (or kernel) per activation
      case Activation::ReluSqr:
        kernels::active().relu_sqr_mul(g, u, n);  // max(g, 0)^2 * u
        break;
      case Activation::Relu:
        for (int64_t i = 0; i < n; ++i) u[i] = (g[i] > 0 ? g[i] : 0.0f) * u[i];
        break;
      case Activation::Gelu:
        for (int64_t i = 0; i < n; ++i)
          u[i] = 0.5f * g[i] * (1.0f + std::tanh(0.7978845608f * (g[i] + 0.044715f * g[i] * g[i] * g[i]))) * u[i];
        break;
      case Activation::Silu:
      default:
        kernels::active().silu_mul(g, u, n);  // g / (1 + exp(-g)) * u
        break;
    }
  });
  emit("ffn_act", l, up_.data(), T, ff);
  const float* f = up_.data();
  if (L.ffn_sub_norm) {
    per_token(T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) kernels::rmsnorm(&up_[t * ff], L.ffn_sub_norm, ff, c_.norm_eps, &gate_[t * ff]);
    });
    emit("ffn_sub_norm", l, gate_.data(), T, ff);
    f = gate_.data();
  }
  linear(L.w_down, f, T, o_.data(), false, after_down);
  if (T == 1 && l + 1 < static_cast<int>(c_.n_layers)) {
    const LayerWeights& next = m_.layers[l + 1];
    warm({&next.wq, &next.wk, &next.wv});
  } else if (T == 1 && batch[0].logits) {
    warm_head();
  }
  emit("ffn_out", l, o_.data(), T, d);
  per_token(T, [&](int64_t t0, int64_t t1) {
    for (int64_t i = t0 * d; i < t1 * d; ++i) x_[i] += o_[i];
  });
  emit("l_out", l, x_.data(), T, d);
}

void Forward::attention(int l, const std::vector<BatchToken>& batch) {
  const int32_t T = static_cast<int32_t>(batch.size());
  const int hd = c_.head_dim, nh = c_.n_heads, group = c_.n_heads / c_.n_kv_heads, half = c_.rope_dim / 2;
  const int64_t qd = int64_t(nh) * hd, kvd = int64_t(c_.n_kv_heads) * hd;

  // RoPE on every head of q and k: NEOX pairs (i, i + rope_dim/2), NORM pairs (2i, 2i+1).
  auto rotate = [&](float* head, int32_t t) {
    for (int i = 0; i < half; ++i) {
      const float cs = rope_cos_[t * half + i], sn = rope_sin_[t * half + i];
      const int a = c_.info.rope == RopeStyle::Neox ? i : 2 * i, b = c_.info.rope == RopeStyle::Neox ? i + half : 2 * i + 1;
      const float x0 = head[a], x1 = head[b];
      head[a] = x0 * cs - x1 * sn;
      head[b] = x0 * sn + x1 * cs;
    }
  };
  per_token(T, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int h = 0; h < nh; ++h) rotate(&q_[t * qd + h * hd], static_cast<int32_t>(t));
      for (int h = 0; h < static_cast<int>(c_.n_kv_heads); ++h) rotate(&k_[t * kvd + h * hd], static_cast<int32_t>(t));
    }
  });
  // (Serial: two tokens of a batch could name the same cache row.)
  for (int32_t t = 0; t < T; ++t) cache_.store(l, batch[t].seq, batch[t].pos, &k_[t * kvd], &v_[t * kvd]);
  emit("Qcur", l, q_.data(), T, qd);
  emit("Kcur", l, k_.data(), T, kvd);
  emit("Vcur", l, v_.data(), T, kvd);

  Timed timed(profile_ ? &profile_->attention_ms : nullptr);
  // softmax(q.k / sqrt(head_dim)) over positions 0..pos of the token's sequence, times v, in chunks of
  // kAttnChunk positions from position 0 (flash decoding's split, the same on every path, so that one decoded
  // token's KV heads can spread over the threads). For a query row with n positions, chunk c's positions J:
  //   s_j = scale * q.k_j,  m_c = max_J s_j,  e_j = exp(s_j - m_c),  S_c = sum_J e_j (double),
  //   o_c = sum_J e_j v_j (the mix kernel's fma order);
  // then M = max_c m_c, f_c = exp(m_c - M), and the output is (sum_c f_c o_c) / (sum_c f_c S_c), the sums
  // over c in order. Dots use the kernel table's canonical order, and exp is exp_canonical.
  const kernels::KernelTable& kt = kernels::active();
  const bool f16 = cache_.type() == KvType::F16;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t ld = cache_.n_ctx(), stride = cache_.row_bytes(), rows_max = int64_t(kAttnTile) * group;
  const int n_kv = static_cast<int>(c_.n_kv_heads);
  if (trace_ && trace_kq_.size() < size_t(rows_max * ld)) trace_kq_.resize(rows_max * ld);
  auto tile_positions = [&](const AttnTile& tile) {  // the tile's longest context
    int32_t n = 0;
    for (int32_t t = tile.t0; t < tile.t1; ++t) n = std::max(n, batch[t].pos + 1);
    return n;
  };
  // Scratch slot `slot` (a thread's, or a KV head's when one tile is split): scores [rows][n_ctx], and per
  // chunk the rows' maxima, sums and mixes.
  auto scores = [&](int slot) { return &scores_[size_t(slot) * rows_max * ld]; };
  auto part = [&](int slot, int64_t c) { return size_t(slot) * attn_chunks_ + size_t(c); };

  // Chunk c of a tile's rows for KV head g (queries q: [token][head][hd]) into slot `slot`. The scores
  // kernel asks for each V row beside the K row of its position, so the mix reads them from cache.
  auto chunk = [&](const AttnTile& tile, int g, int64_t c, const float* q, int slot) {
    const int32_t seq = batch[tile.t0].seq, nt = tile.t1 - tile.t0;
    const int64_t j0 = c * kAttnChunk, j1 = std::min<int64_t>(tile_positions(tile), j0 + kAttnChunk);
    float* s = scores(slot);
    const uint8_t* v = cache_.v_head(l, seq, g);
    kt.attn_scores(cache_.k_head(l, seq, g) + j0 * stride, stride, f16, j1 - j0, q, int64_t(nt) * group, hd, s + j0,
                   ld, v + j0 * stride);
    const size_t pc = part(slot, c);
    for (int32_t u = 0; u < nt; ++u) {
      const int64_t je = std::min<int64_t>(j1, batch[tile.t0 + u].pos + 1), n = je - j0;
      for (int i = 0; i < group; ++i) {
        const int64_t r = int64_t(u) * group + i;
        float* sr = s + r * ld + j0;
        if (n <= 0) {  // the token's positions end before this chunk
          part_max_[pc * rows_max + r] = -INFINITY;
          part_sum_[pc * rows_max + r] = 0.0;
          continue;
        }
        float m4[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};  // four chains; max is exact in any order
        int64_t j = 0;
        for (; j + 4 <= n; j += 4)
          for (int w = 0; w < 4; ++w) {
            sr[j + w] *= scale;
            m4[w] = std::max(m4[w], sr[j + w]);
          }
        for (; j < n; ++j) {
          sr[j] *= scale;
          m4[0] = std::max(m4[0], sr[j]);
        }
        const float m = std::max(std::max(m4[0], m4[1]), std::max(m4[2], m4[3]));
        if (trace_) std::copy_n(sr, n, &trace_kq_[r * ld + j0]);
        kt.exp_shift(sr, m, sr, n);
        double s4[4] = {0, 0, 0, 0};
        for (j = 0; j + 4 <= n; j += 4)
          for (int w = 0; w < 4; ++w) s4[w] += sr[j + w];
        for (; j < n; ++j) s4[0] += sr[j];
        part_max_[pc * rows_max + r] = m;
        part_sum_[pc * rows_max + r] = (s4[0] + s4[1]) + (s4[2] + s4[3]);
      }
      if (n > 0)
        kt.attn_mix(v + j0 * stride, stride, f16, n, s + int64_t(u) * group * ld + j0, ld, group, hd,
                    &part_mix_[(pc * rows_max + int64_t(u) * group) * hd]);
    }
  };
  // The tile's rows for KV head g from the chunks' partials in slot `slot`, into att_ (f: `thread`'s scratch).
  auto combine = [&](const AttnTile& tile, int g, int slot, int thread) {
    float* f = &chunk_scale_[size_t(thread) * attn_chunks_];
    for (int32_t u = 0; u < tile.t1 - tile.t0; ++u) {
      const int32_t t = tile.t0 + u, n = batch[t].pos + 1;
      const int64_t chunks = (n + kAttnChunk - 1) / kAttnChunk;
      for (int i = 0; i < group; ++i) {
        const int64_t r = int64_t(u) * group + i;
        float mx = -INFINITY;
        for (int64_t c = 0; c < chunks; ++c) {
          f[c] = part_max_[part(slot, c) * rows_max + r];
          mx = std::max(mx, f[c]);
        }
        kt.exp_shift(f, mx, f, chunks);
        double sum = 0.0;
        for (int64_t c = 0; c < chunks; ++c) sum += part_sum_[part(slot, c) * rows_max + r] * f[c];
        const float inv = static_cast<float>(1.0 / sum);
        float* out = &att_[t * qd + (int64_t(g) * group + i) * hd];
        std::fill_n(out, hd, 0.0f);
        for (int64_t c = 0; c < chunks; ++c) {
          const float* o = &part_mix_[(part(slot, c) * rows_max + r) * hd];
          for (int k = 0; k < hd; ++k) out[k] += f[c] * o[k];
        }
        for (int k = 0; k < hd; ++k) out[k] *= inv;
        if (trace_) {  // the row's scaled scores and its softmax, one call per head, heads in order
          trace_->on_tensor("kq", l, t, &trace_kq_[r * ld], n);
          float* p = scores(slot) + r * ld;
          for (int64_t j = 0; j < n; ++j) p[j] *= f[j / kAttnChunk] * inv;
          trace_->on_tensor("kq_soft_max", l, t, p, n);
        }
      }
    }
  };
  // A tile's queries for KV head g, [token][head][hd]: in q_ for one token, else in q_tile_'s slot, where
  // gather_queries puts them.
  auto queries = [&](const AttnTile& tile, int g, int slot) -> const float* {
    if (tile.t1 - tile.t0 == 1) return &q_[tile.t0 * qd + int64_t(g) * group * hd];
    return &q_tile_[size_t(slot) * rows_max * hd];
  };
  auto gather_queries = [&](const AttnTile& tile, int g, int slot) {
    if (tile.t1 - tile.t0 == 1) return;
    for (int32_t u = 0; u < tile.t1 - tile.t0; ++u)
      std::copy_n(&q_[(tile.t0 + u) * qd + int64_t(g) * group * hd], group * hd,
                  &q_tile_[(size_t(slot) * rows_max + size_t(u) * group) * hd]);
  };

  const int64_t n_tiles = static_cast<int64_t>(attn_tiles_.size());
  const int64_t one_tile_chunks = n_tiles == 1 ? (tile_positions(attn_tiles_[0]) + kAttnChunk - 1) / kAttnChunk : 0;
  if (!trace_ && n_tiles == 1 && pool_.size() > 1 && one_tile_chunks > 1) {
    // One tile over several chunks (a decoded token, a few drafted ones, at a long context): its KV heads'
    // chunks are the tasks, then each head's combination. Slot g is KV head g's.
    const AttnTile& tile = attn_tiles_[0];
    for (int g = 0; g < n_kv; ++g) gather_queries(tile, g, g);
    pool_.parallel_for(n_kv * one_tile_chunks, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t k = b; k < e; ++k) {
        const int g = static_cast<int>(k / one_tile_chunks);
        chunk(tile, g, k % one_tile_chunks, queries(tile, g, g), g);
      }
    });
    pool_.parallel_for(n_kv, 1, [&](int64_t b, int64_t e, int thread) {
      for (int64_t g = b; g < e; ++g) combine(tile, static_cast<int>(g), static_cast<int>(g), thread);
    });
  } else {
    // A task: a tile and KV head g with its query heads g*group .. (g+1)*group - 1 (adjacent in q_ and att_),
    // chunk after chunk in the thread's slot. The tile's queries are scored in one pass over the K rows, up to
    // the tile's longest context (each query then uses only its own positions), and its tokens' mixes run
    // back to back: a long prompt reads each head's K and V rows from L2 once per tile instead of from memory
    // once per token. Every value is the one for that query alone, so tiling changes no bit. eval() forms the
    // tiles (attn_tiles_) once for all layers.
    auto task = [&](const AttnTile& tile, int g, int thread) {
      gather_queries(tile, g, thread);
      const float* q = queries(tile, g, thread);
      const int64_t chunks = (tile_positions(tile) + kAttnChunk - 1) / kAttnChunk;
      for (int64_t c = 0; c < chunks; ++c) chunk(tile, g, c, q, thread);
      combine(tile, g, thread, thread);
    };
    if (trace_) {  // the trace sink sees rows in order, from one thread
      for (const AttnTile& tile : attn_tiles_)
        for (int g = 0; g < n_kv; ++g) task(tile, g, 0);
    } else {
      // Last tiles first: in a prompt they attend to the most positions, so handing them out first leaves
      // the cheap tasks to even out the threads' finishing times.
      const int64_t tasks = n_tiles * n_kv;
      int64_t work = 0;  // multiply-adds of the scores and mixes
      for (const BatchToken& b : batch) work += 2 * int64_t(b.pos + 1) * qd;
      pool_.parallel_for(tasks, grain_for(tasks, work / tasks, 1), [&](int64_t b, int64_t e, int thread) {
        for (int64_t k = b; k < e; ++k) {
          const int64_t i = tasks - 1 - k;
          task(attn_tiles_[i / n_kv], static_cast<int>(i % n_kv), thread);
        }
      });
    }
  }
  emit("kqv_out", l, att_.data(), T, qd);
}

}  // namespace bitnet
