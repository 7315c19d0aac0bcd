// bitnet convert HF_DIR -o OUT.gguf [--type T] [--arch A] [--embedding-type T] [--output-type T] [--weight-scale D]
// [--name N]
#include <chrono>
#include <cstdio>

#include "bitnet/base/error.h"
#include "bitnet/convert/convert.h"
#include "bitnet/convert/progress.h"
#include "bitnet/format/safetensors.h"
#include "commands.h"

namespace bitnet::cli {

Action register_convert(CLI::App& app) {
  struct Opts {
    ConvertOptions c;
    std::string input, out;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("input", o->input, "Hugging Face checkpoint folder: config.json, tokenizer.json, "
                                     "tokenizer_config.json, model.safetensors or model.safetensors.index.json")
      ->required();
  app.add_option("-o,--output", o->out, "Output GGUF path (written atomically)")->required();
  app.add_option("--type", o->c.type, "Linear weights: i2_s | tq2_0 | tq1_0 | f16 | f32 (default: i2_s for "
                                      "bitnet-b1.58, tq2_0 otherwise)")
      ->check(CLI::IsMember({"i2_s", "tq2_0", "tq1_0", "f16", "f32"}));
  app.add_option("--arch", o->c.arch, "bitnet-b1.58 (bitnet.cpp) | bitnet (llama.cpp) | llama (default: from "
                                      "config.json: bitnet-b1.58 for relu2 BitNet models)")
      ->check(CLI::IsMember({"bitnet-b1.58", "bitnet", "llama"}));
  app.add_option("--embedding-type", o->c.embedding_type, "token_embd (and an untied output): f16 | f32 | q8_0")
      ->capture_default_str()
      ->check(CLI::IsMember({"f16", "f32", "q8_0"}));
  app.add_option("--output-type", o->c.output_type,
                 "Untied LM head (lm_head.weight): f16 | f32 | q8_0 | q6_k (default: --embedding-type)")
      ->check(CLI::IsMember({"f16", "f32", "q8_0", "q6_k"}));
  app.add_option("--weight-scale", o->c.weight_scale, "Packed checkpoints: auto (from quantization_config."
                                                      "linear_class) | multiply | divide")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "multiply", "divide"}));
  app.add_option("--name", o->c.name, "general.name (default: the folder's name)");
  return [o]() {
    const auto t0 = std::chrono::steady_clock::now();
    o->c.input = o->input;
    const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(o->input);
    Progress progress("convert", 0, Progress::stderr_is_terminal());
    ConvertSummary summary;
    const GgufWriter w = plan_convert(o->c, ckpt, progress, &summary);
    for (const std::string& n : summary.notes) std::fprintf(stderr, "bitnet convert: %s\n", n.c_str());
    progress.set_total(w.total_tensor_bytes());
    install_interrupt_handler();
    w.write(o->out);
    progress.finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "bitnet convert: wrote %s (%s, %s weights, %s embedding, %.1f MB of tensors) in %.1f s\n",
                 o->out.c_str(), summary.arch.c_str(), type_traits(summary.type).name,
                 type_traits(summary.embedding_type).name, static_cast<double>(w.total_tensor_bytes()) / 1e6, secs);
    return 0;
  };
}

}  // namespace bitnet::cli
