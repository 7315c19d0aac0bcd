// Text generation over a Session: sampling, streaming UTF-8 output, stop conditions.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/engine/draft.h"
#include "bitnet/engine/session.h"
#include "bitnet/sampling/sampler.h"

namespace bitnet {

struct GenerateParams {
  int32_t n_predict = -1;           // -n; -1: until end of generation or the context is full
  std::vector<std::string> stop;    // --stop strings; output ends before the first one
  SamplingParams sampling;
  bool ignore_eos = false;          // keep going past end-of-generation tokens
  // Speculative decoding: tokens proposed by `drafter` (up to draft_max a step) are verified together with
  // the last sampled token in one forward pass. Each position's token is still drawn by the sampler from
  // that position's logits, in order, and a draft is kept only while it equals the drawn token: the output
  // is the plain decoding's, token for token (for a deterministic draft this is the standard rejection rule:
  // a draft d is kept with probability p(d), and on rejection the token comes from p without d).
  Drafter* drafter = nullptr;
  int32_t draft_max = 8;
  bool adaptive_draft = true;  // draft as many tokens (0 to draft_max) as pays off (DraftBudget), not always all
};

struct GenerateResult {
  std::string text;                 // generated text (without a matched stop string)
  std::vector<int32_t> tokens;      // generated token ids
  int32_t n_prompt = 0;             // prompt tokens evaluated (after reusing the cached prefix)
  double prompt_ms = 0, gen_ms = 0;
  std::string stop_reason;          // "eog", "stop", "length", "context"
  int32_t n_drafted = 0, n_accepted = 0;  // speculative decoding: drafted tokens, and those kept
  int32_t n_passes = 0;             // forward passes while generating
};

// Length of the longest suffix of `text` that is a proper prefix of some (non-empty) stop string: those
// bytes are held back, since the next token may complete the stop string.
size_t held_back(std::string_view text, const std::vector<std::string>& stops);

// Streams text pieces to `on_text` as they become final (stop strings are held back until they can no
// longer match). `on_text` returning false stops generation. The prompt is evaluated after reusing the
// longest prefix already in the session's cache.
GenerateResult generate(Session& s, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<bool(std::string_view)>& on_text);

}  // namespace bitnet
