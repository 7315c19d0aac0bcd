// bitnet quantize IN.gguf OUT.gguf [--type T] [--embedding-type T] [--arch A] [--round-scales]
#include <chrono>
#include <cstdio>

#include "bitnet/base/error.h"
#include "bitnet/convert/progress.h"
#include "bitnet/convert/quantize.h"
#include "bitnet/format/gguf.h"
#include "commands.h"

namespace bitnet::cli {

Action register_quantize(CLI::App& app) {
  struct Opts {
    QuantizeOptions q;
    std::string input, out;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("input", o->input, "Input GGUF")->required();
  app.add_option("output", o->out, "Output GGUF (written atomically)")->required();
  app.add_option("--type", o->q.type, "Linear weights: i2_s | tq2_0 | tq1_0 | f16 | f32 (lossless; default: keep)")
      ->check(CLI::IsMember({"i2_s", "tq2_0", "tq1_0", "f16", "f32"}));
  app.add_option("--embedding-type", o->q.embedding_type, "token_embd (and output): f16 | f32 | q8_0 (default: keep)")
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}));
  app.add_option("--arch", o->q.arch, "Rename the architecture: bitnet-b1.58 (bitnet.cpp) <-> bitnet (llama.cpp)")
      ->check(CLI::IsMember({"bitnet-b1.58", "bitnet"}));
  app.add_flag("--round-scales", o->q.round_scales,
               "Allow rounding float32 I2_S scales to the nearest fp16 for TQ1_0/TQ2_0/F16 (relative change <= 2^-11)");
  return [o]() {
    const auto t0 = std::chrono::steady_clock::now();
    const auto in = GgufFile::open(o->input);
    Progress progress("quantize", 0, Progress::stderr_is_terminal());
    QuantizeSummary summary;
    const GgufWriter w = plan_quantize(*in, o->q, progress, &summary);
    for (const std::string& n : summary.notes) std::fprintf(stderr, "bitnet quantize: %s\n", n.c_str());
    progress.set_total(w.total_tensor_bytes());
    install_interrupt_handler();
    w.write(o->out);
    progress.finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "bitnet quantize: wrote %s (%s; %llu tensors re-encoded, %llu copied, %.1f MB) in %.1f s\n",
                 o->out.c_str(), summary.arch.c_str(), static_cast<unsigned long long>(summary.re_encoded),
                 static_cast<unsigned long long>(summary.copied), static_cast<double>(w.total_tensor_bytes()) / 1e6,
                 secs);
    return 0;
  };
}

}  // namespace bitnet::cli
