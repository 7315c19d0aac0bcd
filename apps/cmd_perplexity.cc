// bitnet perplexity -m MODEL -f TEXT [-c CTX] [--chunks N] [--json]
// llama.cpp's method: the text is tokenized once (BOS first), cut into non-overlapping windows of CTX
// tokens; each window starts from an empty cache with its first token replaced by BOS, and the second
// half is scored: logits at position j predict token j+1 for j in [CTX/2, CTX-1).
// PPL = exp(mean NLL), +/- PPL * sqrt((E[nll^2] - E[nll]^2) / (N - 1)).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bitnet/base/error.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

Action register_perplexity(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    std::string file;
    int32_t chunks = -1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  o->model.add(app);
  o->model.n_ctx = 512;
  app.get_option("--ctx-size")->default_val(512)->description("Window size in tokens (llama.cpp's default: 512)");
  app.add_option("-f,--file", o->file, "Text file")->required();
  app.add_option("--chunks", o->chunks, "Score at most this many windows (-1: all)")->capture_default_str();
  app.add_flag("--json", o->json, "Machine-readable output");
  return [o]() {
    std::ifstream in(o->file, std::ios::binary);
    if (!in) fail("{}: cannot open", o->file);
    std::stringstream ss;
    ss << in.rdbuf();
    SessionOptions so = o->model.session_options();
    const int32_t n_ctx = so.n_ctx;
    if (n_ctx < 4) fail("-c: window size {} is too small (at least 4)", n_ctx);
    Session s(o->model.path(), so);
    const Tokenizer& tok = s.tokenizer();
    const bool add_bos = tok.add_bos_default();
    std::vector<int32_t> tokens = tok.encode(ss.str(), add_bos, /*parse_special=*/false);
    int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
    if (n_chunks < 2)
      fail("{}: {} tokens are fewer than two windows of {} (-c); use a longer text or a smaller -c", o->file,
           tokens.size(), n_ctx);
    if (o->chunks > 0) n_chunks = std::min<int64_t>(n_chunks, o->chunks);
    const int32_t first = n_ctx / 2;
    const int64_t V = s.n_vocab();
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    std::vector<float> logits;
    for (int64_t c = 0; c < n_chunks; ++c) {
      std::vector<int32_t> window(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
      if (add_bos) window[0] = tok.bos_id();
      s.truncate(0);
      s.eval(window, &logits, nullptr, first);
      for (int32_t j = first; j < n_ctx - 1; ++j) {
        const float* row = logits.data() + (j - first) * V;
        float mx = row[0];
        for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
        double sum = 0;
        for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
        const double lp = row[window[j + 1]] - mx - std::log(sum);
        nll -= lp;
        nll2 += lp * lp;
        ++count;
      }
      if (!o->json) std::fprintf(stderr, "[%ld]%.4f ", static_cast<long>(c + 1), std::exp(nll / count));
    }
    const double mean = nll / count;
    const double ppl = std::exp(mean);
    const double var = nll2 / count - mean * mean;
    const double err = var > 0 ? ppl * std::sqrt(var / (count - 1)) : 0.0;
    // Bits per byte of the whole text, log2(PPL) x tokens / bytes (the text's tokens, BOS included as
    // llama.cpp counts it): comparable across tokenizers and with compressors.
    const uint64_t n_bytes = ss.str().size();
    const double bpb = n_bytes ? std::log2(ppl) * static_cast<double>(tokens.size()) / static_cast<double>(n_bytes) : 0.0;
    if (o->json) {
      nlohmann::ordered_json j{{"file", o->file}, {"n_ctx", n_ctx}, {"chunks", n_chunks}, {"tokens_scored", count},
                               {"nll_sum", nll}, {"ppl", ppl}, {"ppl_err", err},
                               {"tokens", tokens.size()}, {"bytes", n_bytes}, {"bits_per_byte", bpb}};
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("\nPPL = %.4f +/- %.5f (%ld tokens in %ld windows of %d); %.4f bits per byte\n", ppl, err,
                  static_cast<long>(count), static_cast<long>(n_chunks), n_ctx, bpb);
    }
    return 0;
  };
}

}  // namespace bitnet::cli
