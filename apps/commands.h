// Subcommands of the `bitnet` CLI: each file registers its flags on the app and returns the action to run.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

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

// $BITNET_SHARED_DATA, else the shared data folder beside the source tree.
std::string shared_data_dir();

}  // namespace bitnet::cli
