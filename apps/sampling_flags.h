// Sampling and generation flags (llama.cpp names), declared once for run, chat and the server.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "bitnet/engine/draft.h"
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

// Speculative decoding (llama.cpp's names where it has them): --lookup drafts from the context's n-grams,
// -md/--model-draft from a second model with the same vocabulary; output identical to plain decoding.
struct SpeculativeFlags {
  bool lookup = false;
  std::string draft_model;
  int32_t draft_max = 8;
  int32_t ngram_min = 2, ngram_max = 4;
  bool draft_fixed = false;
  void add(CLI::App& app) {
    auto* l = app.add_flag("--lookup", lookup, "Speculative decoding with prompt lookup: drafts from n-grams of the "
                           "context, verified in one batched pass (same output, faster where text repeats)");
    auto* md = app.add_option("--md,--model-draft", draft_model,
                              "Speculative decoding with a draft model (same vocabulary; -md FILE)");
    l->excludes(md);
    app.add_option("--draft-max", draft_max, "Drafted tokens per verification pass")
        ->capture_default_str()
        ->check(CLI::Range(1, 64));
    app.add_flag("--draft-fixed", draft_fixed, "Verify every draft found, up to --draft-max tokens (default: as many "
                 "as pay off, from measured pass times and the acceptance so far)");
    app.add_option("--lookup-ngram-min", ngram_min, "Prompt lookup: shortest n-gram matched")
        ->capture_default_str()
        ->check(CLI::Range(1, 16));
    app.add_option("--lookup-ngram-max", ngram_max, "Prompt lookup: longest n-gram matched")
        ->capture_default_str()
        ->check(CLI::Range(1, 16));
  }
  // The drafter asked for (null: none); a draft model's session is kept in *draft_session.
  std::unique_ptr<Drafter> make(const Session& target, SessionOptions o, std::unique_ptr<Session>* draft_session) const {
    if (lookup) return std::make_unique<LookupDrafter>(ngram_min, ngram_max);
    if (draft_model.empty()) return nullptr;
    o.n_ctx = target.n_ctx();
    o.n_seq = 1;
    *draft_session = std::make_unique<Session>(draft_model, o);
    return std::make_unique<ModelDrafter>(**draft_session, target);
  }
  void apply(Drafter* d, GenerateParams* p) const {
    p->drafter = d;
    p->draft_max = draft_max;
    p->adaptive_draft = !draft_fixed;
  }
};

}  // namespace bitnet::cli
