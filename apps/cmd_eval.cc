// bitnet eval -m MODEL --tokens 1,2,3 --logits-out FILE: the logits of every position, as raw
// little-endian float32 [n_tokens][n_vocab], for comparison with other engines.
#include <cstdio>

#include "bitnet/base/atomic_file.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

Action register_eval(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    std::string tokens, out;
  };
  auto o = std::make_shared<Opts>();
  o->model.add(app);
  app.add_option("--tokens", o->tokens, "Comma-separated token ids, run as one prompt (no BOS is added)")->required();
  app.add_option("--logits-out", o->out, "Output file: float32 [n_tokens][n_vocab]")->required();
  return [o]() {
    const std::vector<int32_t> ids = parse_token_list(o->tokens, "--tokens");
    Session s(o->model.path(), o->model.session_options());
    std::vector<float> logits;
    s.eval(ids, &logits, nullptr);
    AtomicFile f(o->out);
    f.write(logits.data(), logits.size() * sizeof(float));
    f.commit();
    std::fprintf(stderr, "bitnet eval: %zu positions x %d logits -> %s\n", ids.size(), s.n_vocab(), o->out.c_str());
    return 0;
  };
}

}  // namespace bitnet::cli
