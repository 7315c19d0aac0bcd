// `bitnet`: one binary that loads, converts, diagnoses, benchmarks and serves ternary LLMs.
// The command table and error handling are in cli_main.cc (a library, so the CLI fuzz target parses
// exactly these flags).
#include "commands.h"

int main(int argc, char** argv) { return bitnet::cli::bitnet_main(argc, argv); }
