// bitnet trace -m MODEL -p PROMPT [--json]: statistics of every named intermediate per layer and
// position; stops at and names the first non-finite value.
// bitnet trace --compare A.json B.json [--tol T]: the first intermediate where two traces diverge.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "bitnet/base/error.h"
#include "commands.h"
#include "model_flags.h"

namespace bitnet::cli {

namespace {

using json = nlohmann::ordered_json;

struct Stat {
  std::string name;
  int layer, token;
  uint64_t n = 0, nonfinite = 0;
  double sum = 0, sum2 = 0, min = INFINITY, max = -INFINITY;
};

struct FirstNonFinite {
  std::string name;
  int layer, token;
};

// Aggregates rows by (name, layer, token) in evaluation order.
class Collector : public TraceSink {
 public:
  void on_tensor(std::string_view name, int layer, int token, const float* data, size_t n) override {
    const auto key = std::make_tuple(std::string(name), layer, token);
    auto it = index_.find(key);
    if (it == index_.end()) {
      it = index_.emplace(key, stats_.size()).first;
      stats_.push_back(Stat{std::string(name), layer, token});
    }
    Stat& s = stats_[it->second];
    for (size_t i = 0; i < n; ++i) {
      const double v = data[i];
      ++s.n;
      if (!std::isfinite(v)) {
        ++s.nonfinite;
        continue;
      }
      s.sum += v;
      s.sum2 += v * v;
      s.min = std::min(s.min, v);
      s.max = std::max(s.max, v);
    }
    if (s.nonfinite) throw FirstNonFinite{s.name, layer, token};
  }
  const std::vector<Stat>& stats() const { return stats_; }

 private:
  std::map<std::tuple<std::string, int, int>, size_t> index_;
  std::vector<Stat> stats_;
};

json stat_json(const Stat& s) {
  const uint64_t f = s.n - s.nonfinite;
  return {{"name", s.name}, {"layer", s.layer}, {"token", s.token}, {"n", s.n},
          {"rms", f ? std::sqrt(s.sum2 / f) : 0.0}, {"mean", f ? s.sum / f : 0.0},
          {"min", f ? s.min : 0.0}, {"max", f ? s.max : 0.0}, {"nonfinite", s.nonfinite}};
}

int compare(const std::string& a_path, const std::string& b_path, double tol) {
  auto load = [](const std::string& p) {
    std::ifstream in(p);
    if (!in) fail("{}: cannot open", p);
    try {
      return json::parse(in);
    } catch (const json::exception& e) {
      fail("{}: not a trace JSON file: {}", p, e.what());
    }
  };
  const json a = load(a_path), b = load(b_path);
  if (!a.contains("entries") || !b.contains("entries")) fail("trace files need an \"entries\" array");
  std::map<std::tuple<std::string, int, int>, const json*> bmap;
  for (const json& e : b["entries"]) bmap[{e["name"].get<std::string>(), e["layer"].get<int>(), e["token"].get<int>()}] = &e;
  size_t compared = 0;
  for (const json& e : a["entries"]) {
    const auto key = std::make_tuple(e["name"].get<std::string>(), e["layer"].get<int>(), e["token"].get<int>());
    auto it = bmap.find(key);
    if (it == bmap.end()) continue;
    ++compared;
    for (const char* f : {"rms", "mean", "min", "max"}) {
      const double x = e[f].get<double>(), y = (*it->second)[f].get<double>();
      const double scale = std::max({1.0, std::fabs(x), std::fabs(y)});
      if (std::fabs(x - y) > tol * scale || e["nonfinite"] != (*it->second)["nonfinite"]) {
        std::printf("first divergence: %s layer %d token %d: %s %.7g vs %.7g (tolerance %.3g relative)\n",
                    std::get<0>(key).c_str(), std::get<1>(key), std::get<2>(key), f, x, y, tol);
        return 1;
      }
    }
  }
  if (compared == 0) fail("the traces have no intermediate in common (names, layers and positions differ)");
  std::printf("no divergence beyond %.3g in %zu common intermediates\n", tol, compared);
  return 0;
}

}  // namespace

Action register_trace(CLI::App& app) {
  struct Opts {
    ModelFlags model;
    std::string prompt, out;
    std::vector<std::string> compare;
    double tol = 1e-3;
    bool json = false, no_bos = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model.model, "GGUF model file");
  add_hf_option(app, o->model.hf);
  app.add_option("-c,--ctx-size", o->model.n_ctx, "Context size")->capture_default_str();
  app.add_option("--kv-type", o->model.kv_type, "KV cache type: f16 | f32")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--act-quant", o->model.act_quant, "auto | per-token")->capture_default_str()->check(CLI::IsMember({"auto", "per-token"}));
  app.add_option("-p,--prompt", o->prompt, "Prompt text");
  app.add_flag("--no-bos", o->no_bos, "Do not add the BOS token");
  app.add_flag("--json", o->json, "Write the trace as JSON (for --compare)");
  app.add_option("-o,--output", o->out, "Write the JSON trace to this file instead of stdout");
  app.add_option("--compare", o->compare, "Compare two JSON traces: --compare A.json B.json")->expected(2);
  app.add_option("--tol", o->tol, "Relative tolerance for --compare")->capture_default_str();
  return [o]() {
    if (!o->compare.empty()) return compare(o->compare[0], o->compare[1], o->tol);
    if (o->prompt.empty()) fail("trace needs -p PROMPT (or --compare A B)");
    const std::string path = o->model.path();
    Session s(path, o->model.session_options());
    const Tokenizer& tok = s.tokenizer();
    const auto ids = tok.encode(o->prompt, !o->no_bos && tok.add_bos_default(), false);
    Collector col;
    s.set_trace(&col);
    std::optional<FirstNonFinite> bad;
    try {
      std::vector<float> last;
      s.eval(ids, nullptr, &last);
    } catch (const FirstNonFinite& f) {
      bad = f;
    }
    json out{{"model", path}, {"tokens", ids}};
    json entries = json::array();
    for (const Stat& st : col.stats()) entries.push_back(stat_json(st));
    out["entries"] = entries;
    out["first_nonfinite"] = bad ? json{{"name", bad->name}, {"layer", bad->layer}, {"token", bad->token}} : json(nullptr);
    if (o->json || !o->out.empty()) {
      const std::string text = out.dump(1);
      if (o->out.empty()) {
        std::printf("%s\n", text.c_str());
      } else {
        std::ofstream f(o->out);
        f << text << "\n";
        if (!f) fail("{}: cannot write", o->out);
      }
    } else {
      std::printf("%-14s %5s %5s %12s %12s %12s %12s %9s\n", "name", "layer", "token", "rms", "mean", "min", "max",
                  "nonfinite");
      for (const json& e : entries)
        std::printf("%-14s %5d %5d %12.5g %12.5g %12.5g %12.5g %9lu\n", e["name"].get<std::string>().c_str(),
                    e["layer"].get<int>(), e["token"].get<int>(), e["rms"].get<double>(), e["mean"].get<double>(),
                    e["min"].get<double>(), e["max"].get<double>(), e["nonfinite"].get<unsigned long>());
    }
    if (bad) {
      std::fprintf(stderr, "bitnet trace: first non-finite value in %s, layer %d, position %d\n", bad->name.c_str(),
                   bad->layer, bad->token);
      return 1;
    }
    return 0;
  };
}

}  // namespace bitnet::cli
