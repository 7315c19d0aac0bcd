// bitnet synth -o OUT.gguf [--preset 2b-4t] [--arch A] [--type T] [--embd-type T] [dimensions] [--seed N]
// bitnet synth -o OUT.gguf --grow MODEL.gguf [--preset 2b-4t | dimensions] [--seed N]
#include <chrono>
#include <cstdio>

#include "bitnet/base/error.h"
#include "bitnet/convert/grow.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/synth.h"
#include "commands.h"

namespace bitnet::cli {

Action register_synth(CLI::App& app) {
  struct Opts {
    SynthOptions s;
    std::string out, preset, type = "i2_s", embd_type = "f16", grow;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-o,--output", o->out, "Output GGUF path (written atomically)")->required();
  app.add_option("--preset", o->preset, "Full-size shape: 2b-4t (d 2560, 30 layers, LLaMA-3 vocabulary)");
  app.add_option("--arch", o->s.arch, "bitnet-b1.58 | bitnet | llama")->capture_default_str();
  app.add_option("--type", o->type, "Linear weights: i2_s | tq2_0 | tq1_0 | f16 | bf16 | f32")->capture_default_str();
  app.add_option("--embd-type", o->embd_type, "Embedding: f16 | f32 | q8_0 | q6_k")->capture_default_str();
  app.add_option("--dim", o->s.dim, "Embedding length")->capture_default_str();
  app.add_option("--hidden-dim", o->s.hidden_dim, "Feed-forward length")->capture_default_str();
  app.add_option("--layers", o->s.n_layers, "Number of layers")->capture_default_str();
  app.add_option("--heads", o->s.n_heads, "Attention heads")->capture_default_str();
  app.add_option("--kv-heads", o->s.n_kv_heads, "Key/value heads (GQA)")->capture_default_str();
  app.add_option("--ctx", o->s.n_ctx, "Training context length written to the file")->capture_default_str();
  app.add_option("--rope-theta", o->s.rope_theta, "RoPE frequency base")->capture_default_str();
  app.add_option("--vocab", o->s.vocab, "tiny (byte-level BPE learned from a built-in text) | llama3")
      ->capture_default_str();
  app.add_option("--tokenizer", o->s.tokenizer_json,
                 "tokenizer.json for --vocab llama3 (default: $BITNET_SHARED_DATA/tokenizer/llama3/tokenizer.json)");
  app.add_flag("--pre", o->s.write_pre, "Write tokenizer.ggml.pre (the official 2B-4T file has none)");
  app.add_flag("--output-tensor", o->s.output_tensor, "Write an untied output.weight");
  app.add_option("--act", o->s.activation, "bitnet arch: write <arch>.hidden_activation (relu2, silu, ...)");
  app.add_option("--seed", o->s.seed, "Seed: the same seed gives the same ternary weights in every type")
      ->capture_default_str();
  app.add_option("--name", o->s.name, "general.name")->capture_default_str();
  CLI::Option* grow = app.add_option(
      "--grow", o->grow,
      "A trained bitnet-b1.58 GGUF to write in the larger shape (--preset or the dimensions) so that it computes "
      "the same logits at that shape's cost: full-size benchmarks with a model that writes text");
  for (const char* other : {"--arch", "--type", "--embd-type", "--ctx", "--rope-theta", "--vocab", "--tokenizer", "--pre",
                            "--output-tensor", "--act"})
    grow->excludes(app.get_option(other));
  return [o, grow, &app]() {
    if (grow->count() > 0) {
      // The target shape: the preset's, else each dimension given, else the source's.
      const auto src = GgufFile::open(o->grow);
      const ModelConfig c = ModelConfig::from_gguf(*src);
      GrowShape to{c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads};
      if (!o->preset.empty()) {
        SynthOptions p;
        apply_preset(p, o->preset);
        to = {p.dim, p.hidden_dim, p.n_layers, p.n_heads, p.n_kv_heads};
      }
      auto given = [&](const char* flag, uint32_t value, uint32_t& field) {
        if (app.get_option(flag)->count() > 0) field = value;
      };
      given("--dim", o->s.dim, to.dim);
      given("--hidden-dim", o->s.hidden_dim, to.hidden_dim);
      given("--layers", o->s.n_layers, to.n_layers);
      given("--heads", o->s.n_heads, to.n_heads);
      given("--kv-heads", o->s.n_kv_heads, to.n_kv_heads);
      const std::string name = app.get_option("--name")->count() > 0 ? o->s.name : c.arch_name + "-grown";
      const auto t0 = std::chrono::steady_clock::now();
      const GgufWriter w = grow_model(*src, to, o->s.seed, name);
      w.write(o->out);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "bitnet synth: grew %s (d %u, ff %u, %u layers, %u/%u heads) into %s (d %u, ff %u, %u layers, "
                   "%u/%u heads, %.1f MB of tensors) in %.1f s\n", o->grow.c_str(), c.dim, c.hidden_dim, c.n_layers,
                   c.n_heads, c.n_kv_heads, o->out.c_str(), to.dim, to.hidden_dim, to.n_layers, to.n_heads,
                   to.n_kv_heads, w.total_tensor_bytes() / 1e6, secs);
      return 0;
    }
    SynthOptions s = o->s;
    if (!o->preset.empty()) {
      const SynthOptions keep = s;
      apply_preset(s, o->preset);
      s.arch = keep.arch;
      s.seed = keep.seed;
      s.tokenizer_json = keep.tokenizer_json;
      s.write_pre = keep.write_pre;
    }
    auto type = type_from_name(o->type);
    if (!type) fail("--type: unknown type '{}'", o->type);
    auto embd = type_from_name(o->embd_type);
    if (!embd) fail("--embd-type: unknown type '{}'", o->embd_type);
    s.weight_type = *type;
    s.embd_type = *embd;
    if (s.vocab == "llama3" && s.tokenizer_json.empty())
      s.tokenizer_json = shared_data_dir() + "/tokenizer/llama3/tokenizer.json";
    const auto t0 = std::chrono::steady_clock::now();
    const GgufWriter w = synth_model(s);
    w.write(o->out);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "bitnet synth: wrote %s (%s, %s weights, %.1f MB of tensors) in %.1f s\n", o->out.c_str(),
                 s.arch.c_str(), type_traits(s.weight_type).name, w.total_tensor_bytes() / 1e6, secs);
    return 0;
  };
}

}  // namespace bitnet::cli
