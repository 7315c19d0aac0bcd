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
  const Tokenizer& tok = s.tokenizer();
  GenerateResult r;
  Sampler sampler(p.sampling, s.n_vocab());
  for (int32_t t : prompt) sampler.accept(t);  // prompt tokens count in the repetition window, as in llama.cpp

  auto t0 = Clock::now();
  std::vector<float> logits;
  r.n_prompt = s.eval_reusing_prefix(prompt, &logits);
  r.prompt_ms = ms_since(t0);

  TokenStreamDecoder decoder(tok);
  std::string pending;  // decoded text not yet emitted (a possible stop-string prefix)
  bool stopped_by_caller = false;
  auto emit = [&](std::string_view piece) {
    if (!piece.empty() && !stopped_by_caller) {
      r.text += piece;
      if (!on_text(piece)) stopped_by_caller = true;
    }
  };
  t0 = Clock::now();
  while (true) {
    if (p.n_predict >= 0 && static_cast<int32_t>(r.tokens.size()) >= p.n_predict) {
      r.stop_reason = "length";
      break;
    }
    const int32_t id = sampler.sample(logits.data());
    sampler.accept(id);
    if (tok.is_eog(id) && !p.ignore_eos) {
      r.stop_reason = "eog";
      break;
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
      break;
    }
    const size_t keep = held_back(pending, p.stop);
    emit(std::string_view(pending).substr(0, pending.size() - keep));
    pending.erase(0, pending.size() - keep);
    if (stopped_by_caller) {
      r.stop_reason = "stop";
      break;
    }
    if (s.n_past() >= s.n_ctx()) {
      r.stop_reason = "context";
      break;
    }
    s.eval({id}, nullptr, &logits);
  }
  if (r.stop_reason != "stop") emit(pending + decoder.flush());
  r.gen_ms = ms_since(t0);
  return r;
}

}  // namespace bitnet
