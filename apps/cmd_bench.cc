// bitnet bench -m MODEL | --synth 2b-4t [--type i2_s] [-p 512] [-n 128] [-t N] [-r 5] [--json]
// Prompt processing (pp: -p tokens from an empty cache in batches of -b) and generation (tg: -n tokens
// one at a time, each with logits), like llama-bench: mean and standard deviation over -r repetitions.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <cstring>
#include <random>
#include <thread>
#include <unistd.h>

#include "bitnet/base/error.h"
#include "bitnet/base/page_buffer.h"
#include "bitnet/format/gguf.h"
#include "bitnet/kernels/kernels.h"
#include "bitnet/model/synth.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

namespace {

struct Series {
  std::vector<double> tps;
  double mean() const {
    double s = 0;
    for (double v : tps) s += v;
    return tps.empty() ? 0 : s / tps.size();
  }
  double stddev() const {
    if (tps.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double v : tps) s += (v - m) * (v - m);
    return std::sqrt(s / (tps.size() - 1));
  }
};

// Read bandwidth of `threads` threads streaming one buffer (each its own contiguous part) with the active
// kernel table's widest loads: best of five passes over 1 GiB, in GB/s.
double read_bandwidth(int threads) {
  const size_t n = size_t(1) << 30;
  PageBuffer buf(n);
  std::memset(buf.data(), 1, n);  // fault the pages in first
  const kernels::KernelTable& kt = kernels::active();
  double best = 1e30;
  std::atomic<uint64_t> sink{0};
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { sink += kt.read_sum(buf.data() + n / threads * t, n / threads); });
    for (auto& th : pool) th.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return n / best / 1e9;
}

}  // namespace

Action register_bench(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    std::string synth, type = "i2_s";
    int32_t n_prompt = 512, n_gen = 128, reps = 5, depth = 0;
    bool json = false, profile = false, roofline = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model.model, "GGUF model file");
  app.add_option("--synth", o->synth, "Bench a generated model of this preset instead (2b-4t)");
  app.add_option("--type", o->type, "With --synth: linear weight type")->capture_default_str();
  app.add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens (0: skip)")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  app.add_option("-n,--n-gen", o->n_gen, "Generated tokens (0: skip)")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  app.add_option("-d,--depth", o->depth,
                 "Tokens already in the context when each test starts (like llama-bench's -d): tests attention "
                 "over a long context")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("-r,--repetitions", o->reps, "Repetitions")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("-t,--threads", o->model.threads, "Threads (0: all cores)")->capture_default_str();
  app.add_option("-b,--batch-size", o->model.n_batch, "Prompt batch size")->capture_default_str();
  app.add_option("--kv-type", o->model.kv_type, "KV cache type")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--lm-head", o->model.lm_head, "f16 | q8")->capture_default_str()->check(CLI::IsMember({"f16", "q8"}));
  app.add_flag("--json", o->json, "Machine-readable output");
  app.add_flag("--profile", o->profile, "Also report where the time goes (linear layers, LM head, attention, rest)");
  app.add_flag("--roofline", o->roofline,
               "Also measure memory read bandwidth with the same threads and the decode speed it allows "
               "(bytes read per generated token / bandwidth)");
  return [o]() {
    std::string path = o->model.model;
    std::filesystem::path tmp;
    if (!o->synth.empty()) {
      SynthOptions so;
      apply_preset(so, o->synth);
      auto t = type_from_name(o->type);
      if (!t) fail("--type: unknown type '{}'", o->type);
      so.weight_type = *t;
      so.vocab = "llama3";
      so.tokenizer_json = shared_data_dir() + "/tokenizer/llama3/tokenizer.json";
      tmp = std::filesystem::temp_directory_path() / ("bitnet-bench-" + std::to_string(::getpid()) + ".gguf");
      synth_model(so).write(tmp.string());
      path = tmp.string();
    }
    if (path.empty()) fail("bench needs -m MODEL or --synth PRESET");
    struct Cleanup {
      std::filesystem::path p;
      ~Cleanup() {
        if (!p.empty()) std::filesystem::remove(p);
      }
    } cleanup{tmp};
    SessionOptions so = o->model.session_options();
    so.n_ctx = o->depth + std::max(o->n_prompt, o->n_gen) + 1;
    Session s(path, so);
    std::mt19937 rng(1);
    std::uniform_int_distribution<int32_t> tok(0, s.n_vocab() - 1);
    if (o->depth > 0) {  // the context every test starts from (not timed); truncate(depth) restores it
      std::vector<int32_t> ctx(o->depth);
      for (auto& t : ctx) t = tok(rng);
      s.eval(ctx, nullptr, nullptr);
    }
    using Clock = std::chrono::steady_clock;
    Series pp, tg;
    ForwardProfile prof_pp, prof_tg;
    for (int r = -1; r < o->reps; ++r) {  // r = -1: warm-up (page in weights), not counted
      if (o->n_prompt > 0) {
        std::vector<int32_t> prompt(o->n_prompt);
        for (auto& t : prompt) t = tok(rng);
        s.truncate(o->depth);
        if (o->profile && r >= 0) s.set_profile(&prof_pp);
        std::vector<float> last;
        const auto t0 = Clock::now();
        s.eval(prompt, nullptr, &last);
        const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
        s.set_profile(nullptr);
        if (r >= 0) pp.tps.push_back(o->n_prompt / sec);
      }
      if (o->n_gen > 0) {
        s.truncate(o->depth);
        std::vector<float> last;
        s.eval({tok(rng)}, nullptr, &last);
        if (o->profile && r >= 0) s.set_profile(&prof_tg);
        const auto t0 = Clock::now();
        for (int32_t i = 0; i < o->n_gen; ++i) s.eval({tok(rng)}, nullptr, &last);
        const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
        s.set_profile(nullptr);
        if (r >= 0) tg.tps.push_back(o->n_gen / sec);
      }
    }
    const auto f = GgufFile::open(path);
    uint64_t bytes = 0;
    for (const auto& t : f->tensors()) bytes += t.nbytes;
    const char* isa = kernels::active().name;
    // Bytes one generated token reads: every tensor but the embedding (one row) when the head is separate;
    // with --lm-head q8 the head is V x (dim + 4) bytes instead of the file's.
    const ModelConfig& c = s.model().config();
    uint64_t per_token = bytes;
    const GgufTensorInfo* embd = f->tensor("token_embd.weight");
    const bool separate_head = f->tensor("output.weight") != nullptr && !c.tied_output;
    if (embd && separate_head) per_token -= embd->nbytes;
    if (o->model.lm_head == "q8") {
      const GgufTensorInfo* head = separate_head ? f->tensor("output.weight") : embd;
      if (head) per_token = per_token - head->nbytes + uint64_t(c.vocab_size) * (c.dim + 4);
    }
    // ... and the K and V rows of the context, on average depth + n_gen / 2 positions.
    const uint64_t kv_row = uint64_t(c.n_layers) * 2 * c.n_kv_heads * c.head_dim * (o->model.kv_type == "f32" ? 4 : 2);
    per_token += kv_row * (uint64_t(o->depth) + uint64_t(o->n_gen + 1) / 2);
    const double bw = o->roofline ? read_bandwidth(s.n_threads()) : 0;
    const double roof = bw > 0 ? bw * 1e9 / double(per_token) : 0;
    auto profile_json = [](const ForwardProfile& p) {
      const double rest = p.total_ms - p.linear_ms - p.lm_head_ms - p.attention_ms;
      return nlohmann::ordered_json{{"linear_ms", p.linear_ms}, {"lm_head_ms", p.lm_head_ms},
                                    {"attention_ms", p.attention_ms}, {"other_ms", rest}, {"total_ms", p.total_ms}};
    };
    if (o->json) {
      nlohmann::ordered_json j{{"model", path},       {"arch", s.model().config().arch_name},
                               {"model_bytes", bytes}, {"threads", s.n_threads()},
                               {"isa", isa},          {"n_prompt", o->n_prompt},
                               {"n_gen", o->n_gen},   {"n_depth", o->depth},
                               {"repetitions", o->reps}};
      if (o->n_prompt > 0) j["pp"] = {{"tok_s", pp.mean()}, {"stddev", pp.stddev()}};
      if (o->n_gen > 0) j["tg"] = {{"tok_s", tg.mean()}, {"stddev", tg.stddev()}};
      if (o->profile) j["profile"] = {{"pp", profile_json(prof_pp)}, {"tg", profile_json(prof_tg)}};
      if (o->roofline)
        j["roofline"] = {{"read_gb_s", bw}, {"bytes_per_token", per_token}, {"tg_tok_s", roof},
                         {"tg_fraction", o->n_gen > 0 && roof > 0 ? tg.mean() / roof : 0.0}};
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("| model | size | threads | isa | test | t/s |\n|---|---|---|---|---|---|\n");
    const std::string name = s.model().config().arch_name + " " + std::to_string(s.model().config().n_layers) + "L";
    const std::string at = o->depth > 0 ? " @ d" + std::to_string(o->depth) : "";
    if (o->n_prompt > 0)
      std::printf("| %s | %.2f GB | %d | %s | pp%d%s | %.2f ± %.2f |\n", name.c_str(), bytes / 1e9, s.n_threads(), isa,
                  o->n_prompt, at.c_str(), pp.mean(), pp.stddev());
    if (o->n_gen > 0)
      std::printf("| %s | %.2f GB | %d | %s | tg%d%s | %.2f ± %.2f |\n", name.c_str(), bytes / 1e9, s.n_threads(), isa,
                  o->n_gen, at.c_str(), tg.mean(), tg.stddev());
    if (o->profile)
      for (auto [label, p] : {std::pair{"pp", prof_pp}, {"tg", prof_tg}}) {
        if (p.total_ms <= 0) continue;
        const double rest = p.total_ms - p.linear_ms - p.lm_head_ms - p.attention_ms;
        std::printf("%s time: linear %.1f%%, LM head %.1f%%, attention %.1f%%, rest %.1f%% (%.1f ms per call)\n", label,
                    100 * p.linear_ms / p.total_ms, 100 * p.lm_head_ms / p.total_ms, 100 * p.attention_ms / p.total_ms,
                    100 * rest / p.total_ms, p.total_ms / p.calls);
      }
    if (o->roofline)
      std::printf("memory roofline: %.1f GB/s read with %d threads, %.3f GB per generated token -> %.1f tok/s%s\n", bw,
                  s.n_threads(), per_token / 1e9, roof,
                  o->n_gen > 0 ? (", tg reaches " + std::to_string(int(std::lround(100 * tg.mean() / roof))) + " %").c_str()
                               : "");
    return 0;
  };
}

}  // namespace bitnet::cli
