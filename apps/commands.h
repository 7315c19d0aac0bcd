// Subcommands of the `bitnet` CLI: each file registers its flags on the app and returns the action to run.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace bitnet::cli {

using Action = std::function<int()>;  // exit code

Action register_inspect(CLI::App& app);
Action register_validate(CLI::App& app);
Action register_synth(CLI::App& app);
Action register_convert(CLI::App& app);
Action register_quantize(CLI::App& app);
Action register_eval(CLI::App& app);
Action register_tokenize(CLI::App& app);
Action register_run(CLI::App& app);
Action register_chat(CLI::App& app);
Action register_perplexity(CLI::App& app);
Action register_trace(CLI::App& app);
Action register_matmul(CLI::App& app);
Action register_bench(CLI::App& app);
Action register_serve(CLI::App& app);
Action register_pull(CLI::App& app);
Action register_ls(CLI::App& app);
Action register_rm(CLI::App& app);

// Every subcommand registered on one app, with the action each returns (cli_main.cc). Parsing is
// separate from running so that tests/fuzz/fuzz_cli.cc can parse fuzzed arguments without acting on them.
struct CommandLine {
  CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;
  // Runs the action of the parsed subcommand; bad input (bitnet::Error, any std::exception, out of
  // memory) becomes "bitnet: error: ..." on stderr and exit code 1.
  int run_parsed();

  struct Entry {
    CLI::App* sub;
    Action action;
  };
  CLI::App app;
  std::vector<Entry> entries;
};

// main(): parse (CLI11 prints usage errors and help), then run.
int bitnet_main(int argc, char** argv);

// $BITNET_SHARED_DATA, else the shared data folder beside the source tree.
std::string shared_data_dir();

// The model a command uses when -m is absent: the project's trained model (models/, docs/trained-model.md).
// $BITNET_MODEL when set; else <executable's folder>/../share/bitnet/models/ (after `cmake --install`), else
// the source tree's models/ (a build tree). Error listing the places looked at when none has it.
std::string default_model_path();
// `path` when given, else default_model_path().
std::string model_or_default(const std::string& path);

}  // namespace bitnet::cli
