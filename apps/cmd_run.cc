// bitnet run -m MODEL -p PROMPT: streams the continuation to stdout; timings to stderr.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "commands.h"
#include "model_flags.h"
#include "sampling_flags.h"

namespace bitnet::cli {

void print_timings(const GenerateResult& r, LmHead head) {
  const double gen_tps = r.gen_ms > 0 ? r.tokens.size() * 1000.0 / r.gen_ms : 0;
  const double pp_tps = r.prompt_ms > 0 ? r.n_prompt * 1000.0 / r.prompt_ms : 0;
  std::fprintf(stderr, "\nbitnet: prompt %d tokens in %.1f ms (%.1f tok/s); generated %zu tokens in %.1f ms (%.1f tok/s); "
               "stop: %s; LM head %s\n", r.n_prompt, r.prompt_ms, pp_tps, r.tokens.size(), r.gen_ms, gen_tps,
               r.stop_reason.c_str(), lm_head_name(head));
  if (r.n_drafted > 0)
    std::fprintf(stderr, "bitnet: speculative: %d of %d drafted tokens accepted (%.0f %%), %zu tokens in %d passes "
                 "(%.2f per pass)\n", r.n_accepted, r.n_drafted, 100.0 * r.n_accepted / r.n_drafted, r.tokens.size(),
                 r.n_passes, r.n_passes ? static_cast<double>(r.tokens.size()) / r.n_passes : 0.0);
}

Action register_run(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    SamplingFlags sampling;
    SpeculativeFlags spec;
    std::string prompt;
    bool no_bos = false, parse_special = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  o->model.lm_head = "auto";  // generation: the 6-bit head (README "LM head formats"); eval/perplexity keep the file's
  o->model.add(app);
  o->sampling.add(app);
  o->spec.add(app);
  app.add_option("-p,--prompt", o->prompt, "Prompt text")->required();
  app.add_flag("--no-bos", o->no_bos, "Do not add the BOS token");
  app.add_flag("--parse-special", o->parse_special, "Recognise special tokens such as <|eot_id|> in the prompt");
  app.add_flag("--json", o->json, "Print one JSON object (prompt and generated ids, text, stop reason) at the end "
               "instead of streaming");
  return [o]() {
    GenerateParams params = o->sampling.params();
    Session s(o->model.path(), o->model.session_options());
    std::unique_ptr<Session> draft_session;
    const std::unique_ptr<Drafter> drafter = o->spec.make(s, o->model.session_options(), &draft_session);
    o->spec.apply(drafter.get(), &params);
    const Tokenizer& tok = s.tokenizer();
    const auto ids = tok.encode(o->prompt, !o->no_bos && tok.add_bos_default(), o->parse_special);
    if (!o->json) {
      std::fputs(o->prompt.c_str(), stdout);
      std::fflush(stdout);
    }
    std::string text;
    const GenerateResult r = generate(s, ids, params, [&](std::string_view piece) {
      if (o->json) {
        text += piece;
      } else {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
      return true;
    });
    if (o->json) {
      nlohmann::ordered_json j{{"prompt_ids", ids}, {"ids", r.tokens}, {"text", text}, {"stop", r.stop_reason},
                               {"lm_head", lm_head_name(s.model().lm_head())}};
      if (drafter) j["speculative"] = {{"drafter", drafter->name()}, {"drafted", r.n_drafted},
                                       {"accepted", r.n_accepted}, {"passes", r.n_passes}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fputc('\n', stdout);
    }
    print_timings(r, s.model().lm_head());
    return 0;
  };
}

}  // namespace bitnet::cli
