// The `bitnet` command line: the subcommand table, parsing, and the one place where errors from bad
// input become a one-line message and a non-zero exit code.
#include <algorithm>
#include <string>
#include <vector>
#include <cstdio>
#include <exception>
#include <new>

#include "bitnet/base/error.h"
#include "commands.h"

namespace bitnet::cli {

CommandLine::CommandLine() : app("bitnet: inference engine for ternary (1.58-bit) language models", "bitnet") {
  app.set_version_flag("--version", BITNET_VERSION);
  app.require_subcommand(1);
  auto add = [&](const char* name, const char* help, bitnet::cli::Action (*reg)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, help);
    entries.push_back({sub, reg(*sub)});
  };
  add("inspect", "Show a GGUF file's header, hyperparameters, tokenizer and tensors", bitnet::cli::register_inspect);
  add("validate", "Check model files for missing tensors, bad shapes, implausible values", bitnet::cli::register_validate);
  add("run", "Generate a continuation of a prompt", bitnet::cli::register_run);
  add("chat", "Interactive conversation using the model's chat template", bitnet::cli::register_chat);
  add("perplexity", "Perplexity of a text file (llama.cpp's method)", bitnet::cli::register_perplexity);
  add("trace", "Statistics of every named intermediate; compare two traces", bitnet::cli::register_trace);
  add("bench", "Prompt and generation throughput (like llama-bench)", bitnet::cli::register_bench);
  add("serve", "OpenAI-compatible HTTP server with continuous batching", bitnet::cli::register_serve);
  add("pull", "Download a model from a Hugging Face-style hub into the cache (HF_ENDPOINT, HF_TOKEN)",
      bitnet::cli::register_pull);
  add("ls", "List the model cache", bitnet::cli::register_ls);
  add("rm", "Remove models from the cache", bitnet::cli::register_rm);
  add("matmul", "Apply one linear layer of a model to float32 rows (diagnostics)", bitnet::cli::register_matmul);
  add("tokenize", "Print the token ids of a text", bitnet::cli::register_tokenize);
  add("eval", "Write the logits of every position of a token list (for comparison with other engines)",
      bitnet::cli::register_eval);
  add("convert", "Convert a Hugging Face BitNet checkpoint (safetensors) to GGUF", bitnet::cli::register_convert);
  add("quantize", "Move ternary weights between I2_S, TQ2_0, TQ1_0, F16, F32 without loss", bitnet::cli::register_quantize);
  add("synth", "Write a synthetic BitNet-shaped GGUF model for tests and benchmarks", bitnet::cli::register_synth);
}

int CommandLine::run_parsed() {
  try {
    for (const Entry& e : entries)
      if (e.sub->parsed()) return e.action();
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "bitnet: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "bitnet: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    // A library exception that a command did not turn into bitnet::Error (a bug, e.g. a JSON type error
    // in a file): still one line and exit 1, never std::terminate.
    std::fprintf(stderr, "bitnet: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

int bitnet_main(int argc, char** argv) {
  CommandLine cli;
  // llama.cpp's spellings `-hf REPO` and `-md FILE` are `--hf`, `--md` here (CLI11 takes single-dash names
  // of one letter only).
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args)
    if (a == "-hf" || a == "-md") a = "-" + a;
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed
  try {
    cli.app.parse(args);
  } catch (const CLI::ParseError& e) {
    return cli.app.exit(e);
  }
  return cli.run_parsed();
}

}  // namespace bitnet::cli
