// Text generation over a Session: sampling, streaming UTF-8 output, stop conditions.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/engine/session.h"
#include "bitnet/sampling/sampler.h"

namespace bitnet {

struct GenerateParams {
  int32_t n_predict = -1;           // -n; -1: until end of generation or the context is full
  std::vector<std::string> stop;    // --stop strings; output ends before the first one
  SamplingParams sampling;
  bool ignore_eos = false;          // keep going past end-of-generation tokens
};

struct GenerateResult {
  std::string text;                 // generated text (without a matched stop string)
  std::vector<int32_t> tokens;      // generated token ids
  int32_t n_prompt = 0;             // prompt tokens evaluated (after reusing the cached prefix)
  double prompt_ms = 0, gen_ms = 0;
  std::string stop_reason;          // "eog", "stop", "length", "context"
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
