#include "bitnet/server/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "bitnet/base/error.h"
#include "bitnet/engine/generate.h"

namespace bitnet {

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Log-probabilities of `id` and of the k most likely tokens under softmax(logits).
void logprobs(const float* logits, int32_t n_vocab, int32_t id, int32_t k, TokenEvent* e) {
  float mx = -INFINITY;
  for (int32_t v = 0; v < n_vocab; ++v) mx = std::max(mx, logits[v]);
  double sum = 0;
  for (int32_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(logits[v] - mx));
  const double lse = mx + std::log(sum);
  e->logprob = static_cast<float>(logits[id] - lse);
  if (k <= 0) return;
  std::vector<std::pair<float, int32_t>> best;  // (logit, id), k largest, ties to the lower id
  best.reserve(k + 1);
  for (int32_t v = 0; v < n_vocab; ++v) {
    if (static_cast<int32_t>(best.size()) == k && logits[v] <= best.back().first) continue;
    auto it = std::upper_bound(best.begin(), best.end(), std::pair{logits[v], v},
                               [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    best.insert(it, {logits[v], v});
    if (static_cast<int32_t>(best.size()) > k) best.pop_back();
  }
  for (const auto& [l, v] : best) e->top.push_back({v, static_cast<float>(l - lse)});
}

}  // namespace

void SchedulerMetrics::Histogram::add(double ms) {
  int b = 0;
  while (b < kBuckets && ms > kBounds[b]) ++b;
  ++counts[b];
  sum += ms;
  ++n;
}

Job::Wait Job::next_until(TokenEvent* out, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return !events_.empty() || finished_; })) return Wait::Timeout;
  if (events_.empty()) return Wait::Finished;
  *out = std::move(events_.front());
  events_.pop_front();
  return Wait::Token;
}

size_t Job::backlog() {
  std::lock_guard lock(mu_);
  return events_.size();
}

void Job::push(TokenEvent e) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void Job::finish(JobResult r) {
  {
    std::lock_guard lock(mu_);
    result_ = std::move(r);
    finished_ = true;
  }
  cv_.notify_all();
}

Scheduler::Scheduler(std::unique_ptr<Model> model, const SchedulerOptions& opts, std::unique_ptr<Model> draft)
    : model_(std::move(model)), opts_(opts), draft_(std::move(draft)) {
  if (!model_->tokenizer()) fail("{}: the model has no vocabulary; the server needs one", model_->file().path());
  if (opts.parallel < 1 || opts.parallel > 256) fail("--parallel {} is outside 1..256", opts.parallel);
  int32_t n_ctx = opts.n_ctx;
  if (n_ctx <= 0) n_ctx = static_cast<int32_t>(std::min<uint32_t>(model_->config().n_ctx_train, 4096));
  if (n_ctx < 8 || n_ctx > (1 << 20)) fail("-c {} is outside 8..{}", n_ctx, 1 << 20);
  opts_.n_batch = std::clamp(opts.n_batch, opts.parallel, 1 << 16);
  opts_.chunk = std::clamp(opts.chunk, 1, opts_.n_batch);
  if ((opts.lookup || draft_) && (opts.draft_max < 1 || opts.draft_max > 64))
    fail("--draft-max {} is outside 1..64", opts.draft_max);
  if (opts.lookup && draft_) fail("--lookup and a draft model (-md) exclude each other");
  if (draft_) {
    if (!draft_->tokenizer()) fail("{}: the draft model has no vocabulary", draft_->file().path());
    check_same_vocabulary(*draft_->tokenizer(), draft_->config().vocab_size, *model_->tokenizer(),
                          model_->config().vocab_size);
  }
  cache_ = std::make_unique<KvCache>(model_->config(), n_ctx, opts.kv_type, opts.parallel);
  pool_ = std::make_unique<ThreadPool>(opts.threads > 0 ? opts.threads : ThreadPool::default_threads());
  forward_ = std::make_unique<Forward>(*model_, *cache_, opts_.n_batch, *pool_);
  if (draft_) {
    dcache_ = std::make_unique<KvCache>(draft_->config(), n_ctx, opts.kv_type, opts.parallel);
    dforward_ = std::make_unique<Forward>(*draft_, *dcache_, opts_.n_batch, *pool_);
  }
  slots_.resize(opts.parallel);
  for (int32_t i = 0; i < opts.parallel; ++i) slots_[i].seq = i;
  metrics_.kv_cells_total = static_cast<int64_t>(n_ctx) * opts.parallel;
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  JobResult r;
  r.error = "the server is shutting down";
  for (Slot& s : slots_)
    if (s.job) s.job->finish(r);
  for (auto& j : queue_) j->finish(r);
}

std::shared_ptr<Job> Scheduler::submit(ServeRequest req) {
  auto job = std::make_shared<Job>();
  job->req_ = std::move(req);
  job->submitted_ms_ = now_ms();
  {
    std::lock_guard lock(mu_);
    const int32_t free_slots = static_cast<int32_t>(slots_.size()) - active_;
    if (static_cast<int32_t>(queue_.size()) >= opts_.max_queue + free_slots) return nullptr;
    queue_.push_back(job);
    metrics_.queue_depth = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return job;
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard lock(mu_);
  return metrics_;
}

void Scheduler::loop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || active_ > 0; });
      if (stop_) return;
    }
    admit();
    try {
      step();
    } catch (const std::exception& e) {
      // A failure of the forward pass ends every running job with its message; the server goes on.
      for (Slot& s : slots_)
        if (s.job) finish(s, "", e.what());
    }
  }
}

// New jobs into free slots, each into the free slot sharing the longest prefix with its prompt.
void Scheduler::admit() {
  // Jobs cancelled while they wait (their client went away) leave the queue now, not when their turn comes.
  std::vector<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard lock(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->cancelled()) dropped.push_back(std::move(*it)), it = queue_.erase(it);
      else ++it;
    }
    metrics_.queue_depth = static_cast<int64_t>(queue_.size());
  }
  for (const std::shared_ptr<Job>& job : dropped) job->finish({.finish_reason = "stop"});
  while (true) {
    Slot* best = nullptr;
    size_t best_common = 0;
    std::shared_ptr<Job> job;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) return;
      const std::vector<int32_t>& prompt = queue_.front()->req_.prompt;
      for (Slot& s : slots_) {
        if (s.job) continue;
        size_t common = 0;
        while (common < s.cached.size() && common < prompt.size() && s.cached[common] == prompt[common]) ++common;
        if (!best || common > best_common) best = &s, best_common = common;
      }
      if (!best) return;
      job = queue_.front();
      queue_.pop_front();
      metrics_.queue_depth = static_cast<int64_t>(queue_.size());
    }
    Slot& s = *best;
    const ServeRequest& r = job->req_;
    if (job->cancelled()) {
      job->finish({.finish_reason = "stop"});
      continue;
    }
    if (r.prompt.empty() || static_cast<int32_t>(r.prompt.size()) >= n_ctx()) {
      job->finish({.error = fmt::format("the prompt has {} tokens; the context holds {}", r.prompt.size(), n_ctx())});
      continue;
    }
    // At least the last prompt token is evaluated again, for its logits.
    const size_t keep = std::min(best_common, r.prompt.size() - 1);
    s.cached.resize(keep);
    cache_->set_length(s.seq, static_cast<int32_t>(keep));
    s.job = job;
    {
      std::lock_guard lock(mu_);
      ++active_;
      metrics_.active = active_;  // at once: a client that has its first token must never read 0 here
    }
    s.prompt_done = keep;
    s.pending = -1;
    s.sampler = std::make_unique<Sampler>(r.sampling, static_cast<int32_t>(model_->config().vocab_size));
    for (int32_t t : r.prompt) s.sampler->accept(t);  // prompt tokens count for the penalties, as in `run`
    s.decoder = std::make_unique<TokenStreamDecoder>(*model_->tokenizer());
    s.held.clear();
    s.n_generated = 0;
    s.n_cached = static_cast<int32_t>(keep);
    s.first_token = true;
    s.drafts.clear();
    s.verify_base = -1;  // (a step that threw may have left one)
    if (opts_.lookup || draft_) {  // one budget per slot: what passes cost carries over to its next request
      if (!s.budget) s.budget = std::make_unique<DraftBudget>(opts_.draft_max);
      s.budget->new_sequence();
    }
    std::lock_guard lock(mu_);
    metrics_.prompt_tokens += r.prompt.size();
    metrics_.prompt_tokens_cached += keep;
  }
}

void Scheduler::step() {
  // Cancelled jobs leave before the step (their cache stays for prefix reuse).
  for (Slot& s : slots_)
    if (s.job && s.job->cancelled()) finish(s, "stop");

  // Decoding sequences: each puts its pending token and, when drafting, its drafts into the batch (a slot's
  // rows consecutive). Drafts are no more than pay off, than the batch, the slot's context and the request's
  // limit have room for; a draft model drafts for every sequence at once, after the rooms are known.
  batch_.clear();
  std::vector<Slot*> rows;  // the slot of each logits row, in batch order
  std::vector<Slot*> decoding;
  std::vector<std::pair<Slot*, int32_t>> want;  // draft-model drafts: slot and room
  int32_t planned = 0;                          // tokens of the decoding sequences so far, drafts included
  for (Slot& s : slots_) {
    if (!s.job || s.pending < 0 || s.job->backlog() >= kMaxBacklog) continue;
    decoding.push_back(&s);
    s.verify_base = -1;
    s.drafts.clear();
    const int32_t pos = static_cast<int32_t>(s.cached.size());
    s.cached.push_back(s.pending);
    ++planned;
    if (!s.budget) continue;
    s.verify_base = pos;
    int32_t room = std::min({opts_.draft_fixed ? opts_.draft_max : s.budget->choose(),
                             opts_.n_batch - planned - static_cast<int32_t>(slots_.size()),
                             n_ctx() - static_cast<int32_t>(s.cached.size())});
    const ServeRequest& r = s.job->req_;
    if (r.max_tokens >= 0) room = std::min(room, r.max_tokens - s.n_generated - 1);
    if (room <= 0) continue;
    if (draft_) {
      want.push_back({&s, room});
      planned += room;
    } else {
      s.drafts = drafter_.draft(s.cached, room);
      planned += static_cast<int32_t>(s.drafts.size());
    }
  }
  if (!want.empty()) model_drafts(want);
  for (Slot* sp : decoding) {
    Slot& s = *sp;
    batch_.push_back({s.pending, static_cast<int32_t>(s.cached.size()) - 1, s.seq, true});
    s.pending = -1;
    rows.push_back(&s);
    for (const int32_t d : s.drafts) {
      batch_.push_back({d, static_cast<int32_t>(s.cached.size()), s.seq, true});
      s.cached.push_back(d);
      rows.push_back(&s);
    }
  }
  for (Slot& s : slots_) {
    if (!s.job || s.prompt_done >= s.job->req_.prompt.size()) continue;
    const std::vector<int32_t>& prompt = s.job->req_.prompt;
    const int32_t room = opts_.n_batch - static_cast<int32_t>(batch_.size());
    const int32_t n = std::min<int32_t>({room, opts_.chunk, static_cast<int32_t>(prompt.size() - s.prompt_done)});
    for (int32_t j = 0; j < n; ++j) {
      const bool last = s.prompt_done + 1 == prompt.size();
      batch_.push_back({prompt[s.prompt_done], static_cast<int32_t>(s.prompt_done), s.seq, last});
      s.cached.push_back(prompt[s.prompt_done]);
      ++s.prompt_done;
      if (last) rows.push_back(&s);
    }
  }
  if (batch_.empty()) {  // every sequence waits for its client
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(1));
    return;
  }
  const size_t V = model_->config().vocab_size;
  logits_.resize(rows.size() * V);
  const double t0 = now_ms();
  forward_->eval(batch_, logits_.data());
  const double sec = (now_ms() - t0) / 1000;
  // A pass of many tokens (prompt chunks) bounds what each token adds to a pass: a first estimate for budgets
  // that have not verified a draft yet, as `run` takes from its prompt.
  for (Slot& s : slots_)
    if (s.budget) s.budget->on_prompt(static_cast<int32_t>(batch_.size()), sec);
  // Each slot's rows are consecutive: a decoding slot's pending token and drafts, or a prompt's last token.
  uint64_t drafted = 0, accepted = 0;
  std::vector<const float*> slot_rows;
  for (size_t i = 0; i < rows.size();) {
    Slot& s = *rows[i];
    size_t n = 1;
    while (i + n < rows.size() && rows[i + n] == &s) ++n;
    if (s.verify_base < 0) {
      on_logits(s, logits_.data() + i * V);
    } else {
      slot_rows.clear();
      for (size_t j = 0; j < n; ++j) slot_rows.push_back(logits_.data() + (i + j) * V);
      s.budget->on_pass(static_cast<int32_t>(batch_.size()), sec);
      drafted += s.drafts.size();
      accepted += verify(s, slot_rows);
    }
    i += n;
  }

  std::lock_guard lock(mu_);
  ++metrics_.steps;
  metrics_.drafted_tokens += drafted;
  metrics_.accepted_tokens += accepted;
  int64_t used = 0;
  for (const Slot& s : slots_) used += static_cast<int64_t>(s.cached.size());
  metrics_.kv_cells_used = used;
}

void Scheduler::model_drafts(const std::vector<std::pair<Slot*, int32_t>>& want) {
  const double t0 = now_ms();
  const size_t V = draft_->config().vocab_size;
  const Tokenizer& tok = *model_->tokenizer();
  auto argmax = [&](size_t row) {
    const float* l = dlogits_.data() + row * V;
    return static_cast<int32_t>(std::max_element(l, l + V) - l);
  };
  // Catch up: a slot's draft cache keeps the longest prefix it shares with the slot's tokens (pending last)
  // and evaluates the rest, in passes of at most n_batch tokens, with logits for the last one only.
  std::vector<size_t> done(want.size());  // tokens of each slot in the draft cache
  for (size_t i = 0; i < want.size(); ++i) {
    Slot& s = *want[i].first;
    size_t common = 0;
    while (common < s.dcached.size() && common + 1 < s.cached.size() && s.dcached[common] == s.cached[common]) ++common;
    s.dcached.resize(common);
    dcache_->set_length(s.seq, static_cast<int32_t>(common));
    done[i] = common;
  }
  for (bool more = true; more;) {
    std::vector<BatchToken> batch;
    std::vector<size_t> ends;  // want indices whose last token is in this pass, in row order
    for (size_t i = 0; i < want.size() && static_cast<int32_t>(batch.size()) < opts_.n_batch; ++i) {
      Slot& s = *want[i].first;
      while (done[i] < s.cached.size() && static_cast<int32_t>(batch.size()) < opts_.n_batch) {
        const bool last = done[i] + 1 == s.cached.size();
        batch.push_back({s.cached[done[i]], static_cast<int32_t>(done[i]), s.seq, last});
        s.dcached.push_back(s.cached[done[i]]);
        if (last) ends.push_back(i);
        ++done[i];
      }
    }
    more = false;
    for (size_t i = 0; i < want.size(); ++i) more = more || done[i] < want[i].first->cached.size();
    if (batch.empty()) break;
    dlogits_.resize(std::max<size_t>(ends.size(), 1) * V);
    dforward_->eval(batch, dlogits_.data());
    for (size_t r = 0; r < ends.size(); ++r) {
      Slot& s = *want[ends[r]].first;
      const int32_t t = argmax(r);
      if (!tok.is_eog(t)) s.drafts.push_back(t);
    }
  }
  // Then one pass per further position, one token of each slot still drafting (greedy, as ModelDrafter: a
  // slot stops at its room or where the draft model ends the text).
  std::vector<char> open(want.size());
  for (size_t i = 0; i < want.size(); ++i) open[i] = !want[i].first->drafts.empty();
  while (true) {
    std::vector<BatchToken> batch;
    std::vector<size_t> live;
    for (size_t i = 0; i < want.size(); ++i) {
      Slot& s = *want[i].first;
      if (!open[i] || static_cast<int32_t>(s.drafts.size()) >= want[i].second) continue;
      batch.push_back({s.drafts.back(), static_cast<int32_t>(s.dcached.size()), s.seq, true});
      s.dcached.push_back(s.drafts.back());
      live.push_back(i);
    }
    if (batch.empty()) break;
    dlogits_.resize(batch.size() * V);
    dforward_->eval(batch, dlogits_.data());
    for (size_t r = 0; r < live.size(); ++r) {
      const int32_t t = argmax(r);
      if (tok.is_eog(t)) open[live[r]] = 0;
      else want[live[r]].first->drafts.push_back(t);
    }
  }
  // Each slot's share of the drafting time, for its budget.
  size_t total = 0;
  for (const auto& [sp, room] : want) total += sp->drafts.size();
  const double sec = (now_ms() - t0) / 1000;
  for (const auto& [sp, room] : want)
    sp->budget->on_draft(static_cast<int32_t>(sp->drafts.size()), total ? sec * sp->drafts.size() / total : 0);
}

void Scheduler::on_logits(Slot& s, const float* row) {
  Job& job = *s.job;
  const ServeRequest& r = job.req_;
  const Tokenizer& tok = *model_->tokenizer();
  if (r.max_tokens >= 0 && s.n_generated >= r.max_tokens) return finish(s, "length");
  const int32_t id = s.sampler->sample(row);
  s.sampler->accept(id);
  if (tok.is_eog(id)) return finish(s, "stop");

  TokenEvent e;
  e.id = id;
  if (r.top_logprobs >= 0)
    logprobs(row, static_cast<int32_t>(model_->config().vocab_size), id, r.top_logprobs, &e);
  s.held += s.decoder->feed(id);
  bool stopped = false;
  size_t cut = std::string::npos;
  for (const std::string& stop : r.stop) cut = std::min(cut, s.held.find(stop));
  if (cut != std::string::npos) {
    e.text = s.held.substr(0, cut);
    s.held.clear();
    stopped = true;
  } else {
    const size_t keep = held_back(s.held, r.stop);
    e.text = s.held.substr(0, s.held.size() - keep);
    s.held.erase(0, s.held.size() - keep);
  }
  ++s.n_generated;
  const double t = now_ms();
  {
    std::lock_guard lock(mu_);
    ++metrics_.generated_tokens;
    if (s.first_token) metrics_.ttft.add(t - job.submitted_ms_);
    else metrics_.itl.add(t - job.last_token_ms_);
  }
  s.first_token = false;
  job.last_token_ms_ = t;
  job.push(std::move(e));
  if (stopped) return finish(s, "stop", "", /*release_held=*/false);
  if (r.max_tokens >= 0 && s.n_generated >= r.max_tokens) return finish(s, "length");
  if (static_cast<int32_t>(s.cached.size()) >= n_ctx()) return finish(s, "length");  // no room for the token
  s.pending = id;
}

size_t Scheduler::verify(Slot& s, const std::vector<const float*>& rows) {
  const std::vector<int32_t> drafts = std::move(s.drafts);
  s.drafts.clear();
  const int32_t base = s.verify_base;
  s.verify_base = -1;
  size_t j = 0;
  for (; j < rows.size(); ++j) {
    s.cached.resize(base + 1 + j);  // the pending token and the drafts kept so far
    on_logits(s, rows[j]);
    if (!s.job) break;  // finished (its cache stays for prefix reuse)
    if (j < drafts.size() && s.pending == drafts[j]) {  // drawn what was drafted: its K/V are already there
      s.cached.push_back(drafts[j]);
      s.pending = -1;
      continue;
    }
    break;  // `pending` is the next token to evaluate
  }
  const size_t kept = std::min(j, drafts.size());
  s.budget->on_verify(static_cast<int32_t>(drafts.size()), static_cast<int32_t>(kept));
  cache_->set_length(s.seq, static_cast<int32_t>(s.cached.size()));
  return kept;
}

void Scheduler::finish(Slot& s, const std::string& reason, const std::string& error, bool release_held) {
  JobResult r;
  r.finish_reason = reason;
  r.error = error;
  r.n_prompt = static_cast<int32_t>(s.job->req_.prompt.size());
  r.n_cached = s.n_cached;
  r.n_generated = s.n_generated;
  // No stop string completed: what was held back for one is output after all (as `bitnet run` does).
  if (release_held && error.empty() && s.decoder) r.tail = s.held + s.decoder->flush();
  s.pending = -1;
  s.held.clear();
  std::shared_ptr<Job> job = std::move(s.job);
  s.job = nullptr;
  {
    std::lock_guard lock(mu_);
    --active_;
    metrics_.active = active_;
  }
  s.sampler.reset();
  s.decoder.reset();
  if (!error.empty()) {  // the cache of a failed step is not trusted
    s.cached.clear();
    cache_->set_length(s.seq, 0);
  }
  job->finish(std::move(r));
}

}  // namespace bitnet
