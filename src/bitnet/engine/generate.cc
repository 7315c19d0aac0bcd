#include "bitnet/engine/generate.h"

#include <algorithm>
#include <chrono>

#include "bitnet/base/error.h"

namespace bitnet {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

size_t held_back(std::string_view text, const std::vector<std::string>& stops) {
  size_t keep = 0;
  for (const std::string& s : stops)
    for (size_t n = std::min(text.size(), s.size() - 1); n > keep; --n)
      if (text.substr(text.size() - n) == std::string_view(s).substr(0, n)) {
        keep = n;
        break;
      }
  return keep;
}

GenerateResult generate(Session& s, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<bool(std::string_view)>& on_text) {
  if (prompt.empty()) fail("the prompt is empty (no tokens)");
  for (const std::string& stop : p.stop)
    if (stop.empty()) fail("--stop: empty stop strings are not allowed");
  if (p.drafter && p.draft_max < 1) fail("--draft-max must be at least 1 (got {})", p.draft_max);
  const Tokenizer& tok = s.tokenizer();
  const size_t V = static_cast<size_t>(s.n_vocab());
  GenerateResult r;
  Sampler sampler(p.sampling, s.n_vocab());
  for (int32_t t : prompt) sampler.accept(t);  // prompt tokens count in the repetition window, as in llama.cpp

  auto t0 = Clock::now();
  std::vector<float> logits;
  r.n_prompt = s.eval_reusing_prefix(prompt, &logits);
  r.prompt_ms = ms_since(t0);
  DraftBudget budget(p.draft_max);
  budget.on_prompt(r.n_prompt, r.prompt_ms / 1000);

  TokenStreamDecoder decoder(tok);
  std::string pending;  // decoded text not yet emitted (a possible stop-string prefix)
  bool stopped_by_caller = false;
  auto emit = [&](std::string_view piece) {
    if (!piece.empty() && !stopped_by_caller) {
      r.text += piece;
      if (!on_text(piece)) stopped_by_caller = true;
    }
  };
  // The next token from one position's logits, output as text; -1 when generation ends (r.stop_reason).
  auto next = [&](const float* row) -> int32_t {
    if (p.n_predict >= 0 && static_cast<int32_t>(r.tokens.size()) >= p.n_predict) {
      r.stop_reason = "length";
      return -1;
    }
    const int32_t id = sampler.sample(row);
    sampler.accept(id);
    if (tok.is_eog(id) && !p.ignore_eos) {
      r.stop_reason = "eog";
      return -1;
    }
    r.tokens.push_back(id);
    pending += decoder.feed(id);
    // Stop strings: cut at the first match; otherwise emit all but a possible partial match.
    size_t cut = std::string::npos;
    for (const std::string& stop : p.stop) cut = std::min(cut, pending.find(stop));
    if (cut != std::string::npos) {
      emit(std::string_view(pending).substr(0, cut));
      pending.clear();
      r.stop_reason = "stop";
      return -1;
    }
    const size_t keep = held_back(pending, p.stop);
    emit(std::string_view(pending).substr(0, pending.size() - keep));
    pending.erase(0, pending.size() - keep);
    if (stopped_by_caller) {
      r.stop_reason = "stop";
      return -1;
    }
    return id;
  };

  t0 = Clock::now();
  std::vector<int32_t> batch, context;
  std::vector<float> rows;
  int32_t x = next(logits.data());  // sampled, not yet in the cache
  while (x >= 0) {
    if (s.n_past() >= s.n_ctx()) {
      r.stop_reason = "context";
      break;
    }
    ++r.n_passes;
    std::vector<int32_t> drafts;
    if (p.drafter) {
      // No more drafts than pay off, than the cache has room for, or than tokens may still follow x.
      int32_t room = std::min(p.adaptive_draft ? budget.choose() : p.draft_max, s.n_ctx() - s.n_past() - 1);
      if (p.n_predict >= 0) room = std::min(room, p.n_predict - static_cast<int32_t>(r.tokens.size()) - 1);
      if (room > 0) {
        context = s.history();
        context.push_back(x);
        const auto td = Clock::now();
        drafts = p.drafter->draft(context, room);
        budget.on_draft(static_cast<int32_t>(drafts.size()), ms_since(td) / 1000);
        if (static_cast<int32_t>(drafts.size()) > room) drafts.resize(room);
      }
    }
    const auto tp = Clock::now();
    if (drafts.empty()) {
      s.eval({x}, nullptr, &logits);
      budget.on_pass(1, ms_since(tp) / 1000);
      x = next(logits.data());
      continue;
    }
    // Verify: x and the drafts in one pass; row j holds the logits after x, d_1 .. d_j.
    const int32_t base = s.n_past();
    batch.assign(1, x);
    batch.insert(batch.end(), drafts.begin(), drafts.end());
    s.eval(batch, &rows, nullptr);
    budget.on_pass(static_cast<int32_t>(batch.size()), ms_since(tp) / 1000);
    r.n_drafted += static_cast<int32_t>(drafts.size());
    x = -1;
    int32_t kept = 0;
    for (size_t j = 0; j <= drafts.size(); ++j) {
      const int32_t t = next(rows.data() + j * V);
      if (t >= 0 && j < drafts.size() && t == drafts[j]) {  // the draft is what was drawn: its cache entry stays
        ++kept;
        continue;
      }
      s.truncate(base + 1 + static_cast<int32_t>(j));  // x and the kept drafts
      x = t;  // drawn, not in the cache (or -1: the end)
      break;
    }
    r.n_accepted += kept;
    budget.on_verify(static_cast<int32_t>(drafts.size()), kept);
  }
  if (r.stop_reason != "stop") emit(pending + decoder.flush());
  r.gen_ms = ms_since(t0);
  return r;
}

}  // namespace bitnet
