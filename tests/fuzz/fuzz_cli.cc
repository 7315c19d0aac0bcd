// Fuzz target: command-line parsing. The input is an argument list (arguments separated by NUL bytes);
// the real `bitnet` command table (apps/cli_main.cc, every subcommand's flags and validators) parses it.
// Actions never run: they would open and write files. Help requests are rendered to a string (not
// printed). Only CLI11's ParseError and bitnet::Error may come out of parsing. The pure flag helpers
// run on the arguments too (token lists, chat template names).
#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/text/chat_template.h"
#include "commands.h"
#include "fuzz_input.h"
#include "model_flags.h"

namespace {
volatile size_t g_sink;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  fuzz::Input in(data, size);
  std::vector<std::string> args{"bitnet"};
  while (!in.empty() && args.size() < 48) args.emplace_back(in.until('\0'));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());

  cli::CommandLine cl;
  try {
    cl.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp&) {
    g_sink = cl.app.help().size();
  } catch (const CLI::CallForAllHelp&) {
    g_sink = cl.app.help("", CLI::AppFormatMode::All).size();
  } catch (const CLI::CallForVersion&) {
  } catch (const CLI::ParseError& e) {
    g_sink = std::string(e.what()).size();
  } catch (const Error&) {
  }
  for (size_t i = 1; i < args.size(); ++i) {
    try {
      g_sink = cli::parse_token_list(args[i], "--tokens").size();
    } catch (const Error&) {
    }
    try {
      (void)parse_chat_template_flag(args[i]);
    } catch (const Error&) {
    }
  }
  return 0;
}
