// Continuous batching over one model for `bitnet serve`.
//
// Up to `parallel` sequences, each in its own KV cache slot, advance together: every step is one
// Forward::eval whose batch holds one token for each decoding sequence and, in the room left (n_batch),
// a chunk of at most `chunk` prompt tokens of each sequence still reading its prompt. A long prompt is
// therefore read over several steps while the others keep decoding. New requests take a free slot between
// steps; the slot whose cached tokens share the longest prefix with the new prompt is chosen and that
// prefix is not evaluated again (the next turn of a chat reuses the previous turn's cache).
//
// With `lookup`, a decoding sequence may also put tokens drafted from its own context (prompt lookup) into
// the step; with a draft model, tokens that model predicts greedily (every decoding sequence drafts at once:
// the draft model has its own KV cache with a slot per sequence, and one batched pass per drafted position).
// Each draft is kept only while it equals the token the sampler draws at its position, so every request's
// output is what it would be without (see GenerateParams in engine/generate.h).
//
// A sequence whose client has not taken kMaxBacklog of its tokens yet waits (a slow or vanished client does
// not make the server compute far ahead; a vanished one is noticed when its next token cannot be sent).
//
// Threads: submit() and Job's methods are called from HTTP threads; everything else runs on the
// scheduler's own thread, which owns the model's cache, the forward pass and the samplers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bitnet/engine/draft.h"
#include "bitnet/model/forward.h"
#include "bitnet/model/kv_cache.h"
#include "bitnet/model/model.h"
#include "bitnet/sampling/sampler.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet {

struct ServeRequest {
  std::vector<int32_t> prompt;     // token ids, BOS included where the model wants one
  int32_t max_tokens = -1;         // -1: until end of generation or the context is full
  std::vector<std::string> stop;   // output ends before the first occurrence of any
  SamplingParams sampling;
  int32_t top_logprobs = -1;       // -1: no log-probabilities; k >= 0: the chosen token's and the k best
};

// One generated token: the text that became final with it (held back while it may start a stop string
// or an unfinished UTF-8 character; so it may be empty), and its log-probabilities when asked.
struct TokenEvent {
  int32_t id = 0;
  std::string text;
  float logprob = 0;                                // log softmax of the raw logits
  std::vector<std::pair<int32_t, float>> top;       // the k most likely ids with their log-probabilities
};

struct JobResult {
  std::string finish_reason;       // "stop" (end of generation or a stop string) | "length"
  std::string error;               // set when the request failed inside the scheduler
  int32_t n_prompt = 0;            // prompt tokens
  int32_t n_cached = 0;            // of which reused from the slot's cache
  int32_t n_generated = 0;
  std::string tail;                // text released at the end (held-back bytes)
};

class Scheduler;

// A submitted request: the HTTP thread waits on it; the scheduler fills it.
class Job {
 public:
  // Waits at most until `deadline` for the next token: Token (taken into *out), Finished (the job has
  // finished and every token has been taken) or Timeout.
  enum class Wait { Token, Finished, Timeout };
  Wait next_until(TokenEvent* out, std::chrono::steady_clock::time_point deadline);
  // Asks the scheduler to stop this job at its next step (the client went away).
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  // Valid after next() returned false.
  const JobResult& result() const { return result_; }
  // Tokens generated but not yet taken by next().
  size_t backlog();

 private:
  friend class Scheduler;
  void push(TokenEvent e);
  void finish(JobResult r);

  ServeRequest req_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  bool finished_ = false;
  JobResult result_;
  std::atomic<bool> cancelled_{false};
  double submitted_ms_ = 0;        // steady clock
  double last_token_ms_ = 0;
};

struct SchedulerOptions {
  int32_t parallel = 4;            // sequences decoding together (KV cache slots)
  int32_t n_ctx = 0;               // per slot; 0: the model's training context, at most 4096
  int32_t n_batch = 512;           // tokens per forward pass
  int32_t chunk = 128;             // prompt tokens per sequence per step
  int32_t max_queue = 64;          // requests waiting for a slot; more are refused
  int32_t threads = 0;             // 0: every CPU
  KvType kv_type = KvType::F16;
  bool lookup = false;             // speculative decoding with prompt lookup
  int32_t draft_max = 8;           // drafted tokens per sequence per step
  bool draft_fixed = false;        // draft in full (default: as many as pay off, DraftBudget)
};

// Latency and token counters, read by /metrics.
struct SchedulerMetrics {
  static constexpr int kBuckets = 14;
  static constexpr double kBounds[kBuckets] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                                               120000};  // milliseconds
  struct Histogram {
    uint64_t counts[kBuckets + 1] = {};  // last: +Inf
    double sum = 0;
    uint64_t n = 0;
    void add(double ms);
  };
  uint64_t prompt_tokens = 0, prompt_tokens_cached = 0, generated_tokens = 0, steps = 0;
  uint64_t drafted_tokens = 0, accepted_tokens = 0;  // speculative decoding
  Histogram ttft, itl;
  int64_t queue_depth = 0, active = 0, kv_cells_used = 0, kv_cells_total = 0;
};

class Scheduler {
 public:
  static constexpr size_t kMaxBacklog = 16;

  // `draft`: a model of the same vocabulary for speculative decoding (null: none; not with opts.lookup).
  Scheduler(std::unique_ptr<Model> model, const SchedulerOptions& opts, std::unique_ptr<Model> draft = nullptr);
  ~Scheduler();  // stops the thread; unfinished jobs end with an error
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // nullptr when the queue is full: max_queue requests already wait beyond the free slots. The prompt
  // must be non-empty and shorter than n_ctx() (checked by the caller, which can say so to its client).
  std::shared_ptr<Job> submit(ServeRequest req);

  const Model& model() const { return *model_; }
  int32_t n_ctx() const { return cache_->n_ctx(); }
  int32_t parallel() const { return cache_->n_seq(); }
  SchedulerMetrics metrics() const;

 private:
  struct Slot {
    int32_t seq = 0;
    std::vector<int32_t> cached;       // tokens whose K/V are in the slot, positions [0, size)
    std::shared_ptr<Job> job;          // null: free
    size_t prompt_done = 0;            // prompt tokens in the cache
    int32_t pending = -1;              // sampled token not yet evaluated
    std::vector<int32_t> drafts;       // in this step's batch after `pending` (speculative decoding)
    int32_t verify_base = -1;          // when drafting: the position of `pending` in this step, else -1
    std::vector<int32_t> dcached;      // tokens whose K/V are in the draft model's slot
    std::unique_ptr<DraftBudget> budget;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<TokenStreamDecoder> decoder;
    std::string held;                  // decoded text not yet released (a possible stop-string prefix)
    int32_t n_generated = 0;
    int32_t n_cached = 0;              // prompt tokens found in the cache at admission
    bool first_token = true;
  };

  void loop();
  void admit();
  void step();
  // The draft model's greedy drafts for each slot, up to its room: fills Slot::drafts.
  void model_drafts(const std::vector<std::pair<Slot*, int32_t>>& want);
  // After a logits row for the slot's last token: sample, emit, maybe finish.
  void on_logits(Slot& s, const float* row);
  // Rows for the slot's pending token and its drafts (rows[j] after d_1 .. d_j): keeps the drafts the
  // sampler agrees with and drops the rest from the slot's cache. Returns how many were kept.
  size_t verify(Slot& s, const std::vector<const float*>& rows);
  // Ends the slot's job. release_held: output the text held back for a possible stop string (not when
  // a stop string matched).
  void finish(Slot& s, const std::string& reason, const std::string& error = "", bool release_held = true);

  std::unique_ptr<Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<Forward> forward_;
  SchedulerOptions opts_;
  std::vector<Slot> slots_;
  std::vector<float> logits_;
  std::vector<BatchToken> batch_;
  LookupDrafter drafter_;
  std::unique_ptr<Model> draft_;         // the draft model, its cache (a slot per sequence) and forward pass
  std::unique_ptr<KvCache> dcache_;
  std::unique_ptr<Forward> dforward_;
  std::vector<float> dlogits_;

  mutable std::mutex mu_;              // guards queue_, stop_, metrics_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  int32_t active_ = 0;                 // slots holding a job
  bool stop_ = false;
  SchedulerMetrics metrics_;
  std::thread thread_;
};

}  // namespace bitnet
