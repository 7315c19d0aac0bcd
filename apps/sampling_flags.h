// Sampling and generation flags (llama.cpp names), declared once for run, chat and the server.
#pragma once

#include <CLI/CLI.hpp>

#include "bitnet/engine/generate.h"

namespace bitnet::cli {

struct SamplingFlags {
  GenerateParams gen;
  void add(CLI::App& app) {
    SamplingParams& s = gen.sampling;
    app.add_option("-n,--n-predict", gen.n_predict, "Tokens to generate (-1: until end of generation or full context)")
        ->capture_default_str()
        ->check(CLI::Range(-1, 1 << 30));
    app.add_option("--temp", s.temperature, "Temperature (<= 0: greedy)")->capture_default_str();
    app.add_option("--top-k", s.top_k, "Top-k (<= 0: off)")->capture_default_str();
    app.add_option("--top-p", s.top_p, "Top-p (1: off)")->capture_default_str();
    app.add_option("--min-p", s.min_p, "Min-p (0: off)")->capture_default_str();
    app.add_option("--repeat-penalty", s.repeat_penalty, "Repetition penalty (1: off)")->capture_default_str();
    app.add_option("--repeat-last-n", s.repeat_last_n, "Tokens considered for penalties (-1: all)")->capture_default_str();
    app.add_option("--frequency-penalty", s.frequency_penalty, "Frequency penalty")->capture_default_str();
    app.add_option("--presence-penalty", s.presence_penalty, "Presence penalty")->capture_default_str();
    app.add_option("-s,--seed", s.seed, "Random seed (default: random)");
    app.add_option("--stop", gen.stop, "Stop generation before this string (repeatable)");
    app.add_flag("--ignore-eos", gen.ignore_eos, "Continue past end-of-generation tokens");
  }
  GenerateParams params() const {
    validate_sampling_params(gen.sampling);
    return gen;
  }
};

}  // namespace bitnet::cli
