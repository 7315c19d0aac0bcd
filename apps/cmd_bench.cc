// bitnet bench -m MODEL | --synth 2b-4t [--type i2_s] [-p 512] [-n 128] [-d 0] [-t N] [--parallel 1]
//              [-r 5] [--json]
// Prompt processing (pp: -p tokens after -d tokens of context, in batches of -b) and generation (tg: -n
// tokens one at a time, each with logits), like llama-bench: mean and standard deviation over -r
// repetitions after one warm-up, for every combination of the comma-separated -p/-n, -d and -t values.
// --parallel P > 1 adds batched generation (what `bitnet serve --parallel P` does): P sequences, each with
// -d tokens of context, decode together, one token of each per forward pass; tok/s counts all P. Its
// repetitions alternate with those of the one-sequence test of the same length, so their ratio compares the
// same minutes of a shared memory bus.
// --lookup adds a reuse task (a passage, then its opening again: the model is asked to repeat it), generated
// greedily with plain decoding and with prompt lookup; it reports both speeds, the share of drafts accepted,
// tokens per forward pass, and checks that both give the same tokens.
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
#include "bitnet/engine/draft.h"
#include "bitnet/engine/generate.h"
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

// One test of the sweep: pp (n_prompt > 0) or tg (n_gen > 0) at one thread count and depth.
struct Test {
  int threads = 0;
  int32_t n_prompt = 0, n_gen = 0, depth = 0;
  int32_t parallel = 1;        // tg: sequences decoding together
  std::string task;            // "reuse": --lookup's task, "reuse+lookup" with prompt lookup
  int32_t drafted = 0, accepted = 0, passes = 0, generated = 0;  // summed over repetitions (reuse tasks)
  Series series;
  ForwardProfile profile;
  double read_gb_s = 0;        // --roofline: a 1 GiB stream read with these threads, once per thread count
  uint64_t bytes_per_token = 0;  // tg: what one generated token reads
  // --roofline, tg: per repetition, the model's own weights read the way decoding reads them (after every
  // step: timed_steps), and that repetition's speed as a fraction of the speed it allows.
  std::vector<double> weights_gb_s, fractions;
  uint64_t weights_bytes = 0;  // what one read of the weights read
  double probe_layer_s = 0, probe_head_s = 0;  // the reads' seconds, layers and LM head apart (all repetitions)
  int64_t probe_reads = 0;

  std::string label() const {  // "pp512 @ d2048, 2 threads"
    return name() + ", " + std::to_string(threads) + (threads == 1 ? " thread" : " threads");
  }
  std::string name() const {
    return (n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen)) +
           (parallel > 1 ? " x" + std::to_string(parallel) : "") + (depth > 0 ? " @ d" + std::to_string(depth) : "") +
           (task.empty() ? "" : " " + task);  // "tg9 verify": passes of 9 tokens (per second)
  }
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }
  double weights_gb_s_median() const { return median(weights_gb_s); }
  double roofline_tok_s() const {
    const double bw = weights_gb_s.empty() ? read_gb_s : weights_gb_s_median();
    return bw > 0 && bytes_per_token ? bw * 1e9 / double(bytes_per_token) : 0;
  }
  double fraction() const {
    return !fractions.empty() ? median(fractions) : roofline_tok_s() > 0 ? series.mean() / roofline_tok_s() : 0;
  }
};

// Runs n decoding steps (step(i), i < n) and returns their seconds. With `roofline`, each step is followed by a
// read of the weights (Forward::read_weights: what the step read, read the way it reads it), so both sample the
// same moments of a memory bus that other machines share; when `record`, the reads' bandwidth and this
// repetition's fraction of the speed it allows (`tokens` per step over bytes_per_token each) go to t.
template <typename Step>
double timed_steps(Session& s, int32_t n, bool roofline, bool record, Test& t, double tokens, Step&& step) {
  using Clock = std::chrono::steady_clock;
  if (!roofline) {
    const auto t0 = Clock::now();
    for (int32_t i = 0; i < n; ++i) step(i);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }
  double step_s = 0, read_s = 0, layer_s = 0, head_s = 0;
  uint64_t read_bytes = 0;
  for (int32_t i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    step(i);
    const auto t1 = Clock::now();
    const Forward::WeightReads reads = s.read_weights();
    read_bytes += reads.bytes();
    layer_s += reads.layer_s;
    head_s += reads.head_s;
    step_s += std::chrono::duration<double>(t1 - t0).count();
    read_s += std::chrono::duration<double>(Clock::now() - t1).count();
  }
  if (record && n > 0) {
    const double gb_s = read_bytes / read_s / 1e9;
    t.weights_gb_s.push_back(gb_s);
    t.weights_bytes = read_bytes / n;
    t.probe_layer_s += layer_s;
    t.probe_head_s += head_s;
    t.probe_reads += n;
    if (t.bytes_per_token) t.fractions.push_back(tokens * n / step_s * double(t.bytes_per_token) / (gb_s * 1e9));
  }
  return step_s;
}

// The reuse task's text: a passage of Emma from the shared data (a fixed one when that is absent), then
// its first third again, to be continued.
std::string reuse_prompt() {
  std::string passage =
      "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to "
      "unite some of the best blessings of existence; and had lived nearly twenty-one years in the world with "
      "very little to distress or vex her. She was the youngest of the two daughters of a most affectionate, "
      "indulgent father; and had, in consequence of her sister's marriage, been mistress of his house from a "
      "very early period.";
  if (FILE* f = std::fopen((shared_data_dir() + "/text/austen/emma.txt").c_str(), "rb")) {
    std::string text(4096, '\0');
    if (std::fseek(f, 30000, SEEK_SET) == 0) text.resize(std::fread(text.data(), 1, text.size(), f));
    std::fclose(f);
    const size_t start = text.find("\n\n"), end = start == std::string::npos ? start : text.find("\n\n", start + 600);
    if (end != std::string::npos) passage = text.substr(start + 2, std::min<size_t>(end - start - 2, 700));
  }
  // Cut at a word boundary: a prompt ending mid-word would end in a token the passage never had (the word's
  // first letters alone), and the task would measure that, not reuse.
  const size_t cut = passage.rfind(' ', passage.size() / 3);
  return passage + "\n\n" + passage.substr(0, cut == std::string::npos ? passage.size() / 3 : cut);
}

}  // namespace

Action register_bench(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    std::string synth, type = "i2_s";
    std::string n_prompt = "512", n_gen = "128", depth = "0", threads = "0", parallel = "1";
    int32_t reps = 5;
    bool json = false, profile = false, roofline = false, lookup = false, draft_fixed = false;
    int32_t draft_max = 8;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model.model, "GGUF model file (default: the trained model, or $BITNET_MODEL)");
  add_hf_option(app, o->model.hf);
  app.add_option("--synth", o->synth, "Bench a generated model of this preset instead (2b-4t)");
  app.add_option("--type", o->type, "With --synth: linear weight type")->capture_default_str();
  // Like llama-bench, the sizes, depths and thread counts take comma-separated lists: every combination is
  // a test (-p 128,512 -t 1,2 gives four rows).
  app.add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens, comma-separated list (0: no prompt test)")->capture_default_str();
  app.add_option("-n,--n-gen", o->n_gen, "Generated tokens, comma-separated list (0: no generation test)")->capture_default_str();
  app.add_option("-d,--depth", o->depth,
                 "Tokens already in the context when each test starts (like llama-bench's -d), comma-separated list: "
                 "tests attention over a long context")
      ->capture_default_str();
  app.add_option("--parallel", o->parallel,
                 "Sequences generating together, comma-separated list: P > 1 adds a tg test of P sequences decoding "
                 "in one batch per token (tok/s counts all P; its repetitions alternate with the one-sequence test's, "
                 "and the ratio is printed)")
      ->capture_default_str();
  app.add_option("-r,--repetitions", o->reps, "Repetitions")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("-t,--threads", o->threads, "Threads, comma-separated list (0: all cores)")->capture_default_str();
  app.add_option("-b,--batch-size", o->model.n_batch, "Prompt batch size")->capture_default_str();
  app.add_option("--kv-type", o->model.kv_type, "KV cache type")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  add_lm_head_option(app, o->model.lm_head);
  app.add_flag("--json", o->json, "Machine-readable output");
  app.add_flag("--profile", o->profile, "Also report where the time goes (linear layers, LM head, attention, rest)");
  app.add_flag("--roofline", o->roofline,
               "Also measure memory read bandwidth and the decode speed it allows (bytes read per generated token / "
               "bandwidth): the model's weights read the way decoding reads them (same threads, jobs and row split), "
               "after every decoding step, and a 1 GiB stream read");
  app.add_flag("--lookup", o->lookup,
               "Also a reuse task (repeat a quoted passage) for each -n, generated greedily with plain decoding and "
               "with prompt lookup: speeds, drafts accepted, tokens per pass");
  app.add_option("--draft-max", o->draft_max, "With --lookup: drafted tokens per pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_flag("--draft-fixed", o->draft_fixed, "With --lookup: verify every draft found (default: as many tokens as pay off)");
  return [o]() {
    constexpr int32_t kMaxTokens = 1 << 20;
    const std::string size_what = "a token count from 0 to " + std::to_string(kMaxTokens);
    const std::vector<int32_t> prompts = parse_int_list(o->n_prompt, "-p", 0, kMaxTokens, size_what),
                               gens = parse_int_list(o->n_gen, "-n", 0, kMaxTokens, size_what),
                               depths = parse_int_list(o->depth, "-d", 0, kMaxTokens, size_what),
                               threads = parse_int_list(o->threads, "-t", 0, 4096, "a thread count from 0 to 4096"),
                               parallels = parse_int_list(o->parallel, "--parallel", 1, 256, "a count from 1 to 256");
    const int32_t max_prompt = *std::max_element(prompts.begin(), prompts.end()),
                  max_gen = *std::max_element(gens.begin(), gens.end()),
                  max_depth = *std::max_element(depths.begin(), depths.end());
    if (max_prompt == 0 && max_gen == 0) fail("bench: -p and -n are all 0: nothing to measure");
    if (o->lookup && max_gen == 0) fail("bench: --lookup needs a generation length (-n)");
    std::string path;  // --synth's generated file, else -m / -hf / the default model
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
    } else {
      path = resolve_model(o->model.model, o->model.hf);
    }
    struct Cleanup {
      std::filesystem::path p;
      ~Cleanup() {
        if (!p.empty()) std::filesystem::remove(p);
      }
    } cleanup{tmp};
    const auto f = GgufFile::open(path);
    uint64_t bytes = 0;
    for (const auto& t : f->tensors()) bytes += t.nbytes;

    using Clock = std::chrono::steady_clock;
    std::vector<Test> tests;
    std::string model_name, arch;
    for (int32_t n_threads : threads) {
      SessionOptions so = o->model.session_options();
      so.n_threads = n_threads;
      so.n_ctx = max_depth + std::max(max_prompt, max_gen) + 1;
      so.n_seq = *std::max_element(parallels.begin(), parallels.end());
      const std::string reuse_text = o->lookup ? reuse_prompt() : "";
      if (o->lookup) so.n_ctx = std::max<int32_t>(so.n_ctx, static_cast<int32_t>(reuse_text.size()) + max_gen + 1);
      Session s(path, so);
      const ModelConfig& c = s.model().config();
      arch = c.arch_name;
      model_name = c.arch_name + " " + std::to_string(c.n_layers) + "L";
      // Bytes one generated token reads: every tensor but the embedding (one row) when the head is separate;
      // with --lm-head q8/q6/q4 the quantized head's rows and scales instead of the file's; and the K and V rows
      // of the context, on average depth + n_gen / 2 positions.
      uint64_t weights_per_token = bytes;
      const GgufTensorInfo* embd = f->tensor("token_embd.weight");
      const bool separate_head = f->tensor("output.weight") != nullptr && !c.tied_output;
      if (embd && separate_head) weights_per_token -= embd->nbytes;
      if (const QuantHead* qh = s.model().quant_head.get()) {
        const GgufTensorInfo* head = separate_head ? f->tensor("output.weight") : embd;
        if (head) weights_per_token = weights_per_token - head->nbytes + qh->w.size() + 4 * qh->row_scale.size();
      }
      const uint64_t kv_row =
          uint64_t(c.n_layers) * 2 * c.n_kv_heads * c.head_dim * (o->model.kv_type == "f32" ? 4 : 2);
      const double bw = o->roofline && max_gen > 0 ? read_bandwidth(s.n_threads()) : 0;

      std::mt19937 rng(1);
      std::uniform_int_distribution<int32_t> tok(0, s.n_vocab() - 1);
      auto random_tokens = [&](int32_t n) {
        std::vector<int32_t> v(n);
        for (auto& t : v) t = tok(rng);
        return v;
      };
      for (int32_t depth : depths) {
        // The context every test of this depth starts from (not timed); truncate(depth) restores it.
        s.truncate(0);
        if (depth > 0) s.eval(random_tokens(depth), nullptr, nullptr);
        std::vector<float> last;
        for (int32_t n_prompt : prompts) {
          if (n_prompt == 0) continue;
          Test t{s.n_threads(), n_prompt, 0, depth};
          for (int r = -1; r < o->reps; ++r) {  // r = -1: warm-up (pages the weights in), not counted
            const std::vector<int32_t> prompt = random_tokens(n_prompt);
            s.truncate(depth);
            if (o->profile && r >= 0) s.set_profile(&t.profile);
            const auto t0 = Clock::now();
            s.eval(prompt, nullptr, &last);
            const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
            s.set_profile(nullptr);
            if (r >= 0) t.series.tps.push_back(n_prompt / sec);
          }
          tests.push_back(std::move(t));
        }
        // Generation: one sequence, and P sequences decoding in one batch per token (what `bitnet serve
        // --parallel P` does). The repetitions of the tests of one length take turns (one sequence, then each P,
        // then again), so the ratios printed below compare the same minutes of a memory bus other machines
        // share rather than runs minutes apart. Batched sequences 1.. start from their own `depth` random
        // tokens (evaluated untimed once, kept by every repetition); sequence 0 is the one-sequence test's.
        std::vector<int32_t> pars{1};
        for (int32_t par : parallels)
          if (par > 1) pars.push_back(par);
        const int32_t max_par = *std::max_element(pars.begin(), pars.end());
        std::vector<BatchToken> batch;
        std::vector<float> logits;
        if (depth > 0)
          for (int32_t seq = 1; seq < max_par; ++seq) {
            const std::vector<int32_t> ctx = random_tokens(depth);
            batch.clear();
            for (int32_t p = 0; p < depth; ++p) batch.push_back({ctx[p], p, seq, false});
            s.decode(batch, nullptr);
          }
        auto step = [&](int32_t par, int32_t pos) {
          batch.clear();
          for (int32_t seq = 0; seq < par; ++seq) batch.push_back({tok(rng), pos, seq, true});
          s.decode(batch, &logits);
        };
        for (int32_t n_gen : gens) {
          if (n_gen == 0) continue;
          std::vector<Test> runs;
          for (int32_t par : pars) {
            Test t{s.n_threads(), 0, n_gen, depth, par};
            t.read_gb_s = bw;
            // Per generated token: the weights once per step, shared by the P tokens, and each its own K/V.
            t.bytes_per_token = weights_per_token / par + kv_row * (uint64_t(depth) + uint64_t(n_gen + 1) / 2);
            runs.push_back(std::move(t));
          }
          for (int r = -1; r < o->reps; ++r)  // r = -1: warm-up, not counted
            for (Test& t : runs) {
              const int32_t par = t.parallel;
              s.truncate(depth);  // sequence 0 back to its context (batched steps wrote past it)
              if (par == 1) s.eval({tok(rng)}, nullptr, &last);  // the first token's logits: generation starts after it
              else step(par, depth);
              if (o->profile && r >= 0) s.set_profile(&t.profile);
              const double sec = timed_steps(s, n_gen, o->roofline, r >= 0, t, par, [&](int32_t i) {
                if (par == 1) s.eval({tok(rng)}, nullptr, &last);
                else step(par, depth + 1 + i);
              });
              s.set_profile(nullptr);
              if (r >= 0) t.series.tps.push_back(double(n_gen) * par / sec);
            }
          for (Test& t : runs) tests.push_back(std::move(t));
        }
        // The reuse task, plainly and with prompt lookup (the text is tokenized once; its tokens are at most its
        // bytes plus BOS, which the context above allows for).
        if (o->lookup && depth == depths.front()) {
          const Tokenizer& tk = s.tokenizer();
          const std::vector<int32_t> ids = tk.encode(reuse_text, tk.add_bos_default(), false);
          for (int32_t n_gen : gens) {
            if (n_gen == 0) continue;
            std::vector<int32_t> plain_tokens;
            for (const bool lookup : {false, true}) {
              Test t{s.n_threads(), 0, n_gen, 0};
              t.task = lookup ? "reuse+lookup" : "reuse";
              LookupDrafter drafter;
              GenerateParams gp;
              gp.n_predict = n_gen;
              gp.sampling.temperature = 0;
              gp.ignore_eos = true;  // every repetition generates n_gen tokens
              if (lookup) gp.drafter = &drafter, gp.draft_max = o->draft_max, gp.adaptive_draft = !o->draft_fixed;
              for (int r = -1; r < o->reps; ++r) {
                s.truncate(0);
                const GenerateResult res = generate(s, ids, gp, [](std::string_view) { return true; });
                if (!lookup) plain_tokens = res.tokens;
                else if (res.tokens != plain_tokens)
                  fail("bench: prompt lookup generated other tokens than plain decoding (a bug: it must not)");
                if (r < 0) continue;
                t.series.tps.push_back(res.gen_ms > 0 ? res.tokens.size() * 1000.0 / res.gen_ms : 0);
                t.drafted += res.n_drafted, t.accepted += res.n_accepted, t.passes += res.n_passes;
                t.generated += static_cast<int32_t>(res.tokens.size());
              }
              tests.push_back(std::move(t));
            }
          }
          // What a verify pass costs: one sequence, the last token and k drafts in one pass, against one token.
          for (int32_t k = 0; k <= o->draft_max; k = k == 0 ? 1 : k * 2) {
            Test t{s.n_threads(), 0, 1 + k, 0};
            t.task = "verify";
            for (int r = -1; r < o->reps; ++r) {
              s.truncate(0);
              s.eval(ids, nullptr, nullptr);
              if (o->profile && r >= 0) s.set_profile(&t.profile);
              const auto t0 = Clock::now();
              for (int i = 0; i < 8; ++i) {
                s.eval(random_tokens(1 + k), &last, nullptr);
                s.truncate(static_cast<int32_t>(ids.size()));
              }
              const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
              s.set_profile(nullptr);
              if (r >= 0) t.series.tps.push_back(8 / sec);  // passes per second
            }
            tests.push_back(std::move(t));
          }
        }
      }
    }

    const char* isa = kernels::active().name;
    if (o->json) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const Test& t : tests) {
        nlohmann::ordered_json j{{"test", t.name()},           {"threads", t.threads},   {"n_prompt", t.n_prompt},
                                 {"n_gen", t.n_gen},           {"n_depth", t.depth},     {"n_parallel", t.parallel},
                                 {"tok_s", t.series.mean()},
                                 {"stddev", t.series.stddev()}, {"samples", t.series.tps}};
        if (o->profile) {
          const ForwardProfile& p = t.profile;
          j["profile"] = {{"linear_ms", p.linear_ms},       {"lm_head_ms", p.lm_head_ms},
                          {"attention_ms", p.attention_ms}, {"other_ms", p.total_ms - p.linear_ms - p.lm_head_ms - p.attention_ms},
                          {"total_ms", p.total_ms},         {"calls", p.calls}};
        }
        if (t.task == "reuse+lookup")
          j["speculative"] = {{"drafted", t.drafted}, {"accepted", t.accepted}, {"passes", t.passes},
                              {"tokens", t.generated}, {"draft_max", o->draft_max}};
        if (o->roofline && t.n_gen > 0 && t.task.empty()) {
          j["roofline"] = {{"weights_gb_s", t.weights_gb_s_median()}, {"weights_gb_s_samples", t.weights_gb_s},
                           {"weights_bytes", t.weights_bytes},
                           {"stream_gb_s", t.read_gb_s},
                           {"bytes_per_token", t.bytes_per_token},
                           {"tg_tok_s", t.roofline_tok_s()},
                           {"tg_fraction", t.fraction()}};
          if (t.probe_reads > 0)
            j["roofline"]["probe_ms_per_read"] = {{"layers", 1e3 * t.probe_layer_s / t.probe_reads},
                                                  {"lm_head", 1e3 * t.probe_head_s / t.probe_reads}};
        }
        list.push_back(std::move(j));
      }
      const nlohmann::ordered_json out{{"model", path},     {"arch", arch},           {"model_bytes", bytes},
                                       {"isa", isa},        {"kv_type", o->model.kv_type}, {"lm_head", o->model.lm_head},
                                       {"batch_size", o->model.n_batch}, {"repetitions", o->reps}, {"tests", list}};
      std::printf("%s\n", out.dump(2).c_str());
      return 0;
    }
    std::printf("| model | size | threads | isa | test | t/s |\n|---|---|---|---|---|---|\n");
    for (const Test& t : tests)
      std::printf("| %s | %.2f GB | %d | %s | %s | %.2f ± %.2f |\n", model_name.c_str(), bytes / 1e9, t.threads, isa,
                  t.name().c_str(), t.series.mean(), t.series.stddev());
    // Batched generation against one sequence of the same length, depth and threads.
    for (const Test& t : tests) {
      if (t.parallel == 1) continue;
      for (const Test& one : tests)
        if (one.parallel == 1 && one.task.empty() && one.n_gen == t.n_gen && one.n_prompt == 0 && one.depth == t.depth &&
            one.threads == t.threads && one.series.mean() > 0)
          std::printf("%s: %.2fx the tok/s of one sequence\n", t.label().c_str(), t.series.mean() / one.series.mean());
    }
    // Prompt lookup against plain decoding of the same task, and what a verify pass costs.
    for (const Test& t : tests) {
      if (t.task == "verify" && t.n_gen > 1)
        for (const Test& one : tests)
          if (one.task == "verify" && one.n_gen == 1 && one.threads == t.threads && t.series.mean() > 0)
            std::printf("a pass verifying %d drafts, %d threads: %.2fx the time of a one-token pass\n", t.n_gen - 1,
                        t.threads, one.series.mean() / t.series.mean());
      if (t.task != "reuse+lookup") continue;
      for (const Test& plain : tests)
        if (plain.task == "reuse" && plain.n_gen == t.n_gen && plain.threads == t.threads && plain.series.mean() > 0)
          std::printf("%s: %.2fx the tok/s of plain decoding (same tokens); %d of %d drafts accepted (%.0f %%), "
                      "%.2f tokens per forward pass\n", t.label().c_str(), t.series.mean() / plain.series.mean(),
                      t.accepted, t.drafted, t.drafted ? 100.0 * t.accepted / t.drafted : 0.0,
                      t.passes ? double(t.generated) / t.passes : 0.0);
    }
    for (const Test& t : tests) {
      const ForwardProfile& p = t.profile;
      if (o->profile && p.total_ms > 0) {
        const double rest = p.total_ms - p.linear_ms - p.lm_head_ms - p.attention_ms;
        std::printf("%s, time: linear %.1f%%, LM head %.1f%%, attention %.1f%%, rest %.1f%% (%.1f ms per call)\n",
                    t.label().c_str(), 100 * p.linear_ms / p.total_ms, 100 * p.lm_head_ms / p.total_ms,
                    100 * p.attention_ms / p.total_ms, 100 * rest / p.total_ms, p.total_ms / p.calls);
      }
      if (o->roofline && t.n_gen > 0 && t.roofline_tok_s() > 0)
        std::printf("%s, memory roofline: the weights read as decoding reads them at %.1f GB/s (a 1 GiB stream: %.1f), "
                    "%.3f GB per generated token -> %.1f tok/s, reached %ld %%\n",
                    t.label().c_str(), t.weights_gb_s_median(), t.read_gb_s, t.bytes_per_token / 1e9, t.roofline_tok_s(),
                    std::lround(100 * t.fraction()));
      // Where a token falls behind the roofline: its products against the probe's reads of the same matrices, the
      // head against the probe's head, and the serial work the probe never does (one-token decoding only).
      if (o->roofline && o->profile && t.n_gen > 0 && t.task.empty() && t.parallel == 1 && p.calls > 0 &&
          t.probe_reads > 0 && p.linear_ms > 0 && p.lm_head_ms > 0) {
        const double products = p.linear_ms / p.calls, head = p.lm_head_ms / p.calls,
                     rest = (p.total_ms - p.linear_ms - p.lm_head_ms) / p.calls, attention = p.attention_ms / p.calls,
                     probe_layers = 1e3 * t.probe_layer_s / t.probe_reads, probe_head = 1e3 * t.probe_head_s / t.probe_reads;
        std::printf("%s, per token against the probe: layers' products %.2f ms (the probe's reads of them %.2f: %ld %%), "
                    "LM head %.2f ms (%.2f: %ld %%), serial work %.2f ms (attention %.2f), which the probe does not do\n",
                    t.label().c_str(), products, probe_layers, std::lround(100 * probe_layers / products), head, probe_head,
                    std::lround(100 * probe_head / head), rest, attention);
      }
    }
    return 0;
  };
}

}  // namespace bitnet::cli
