// Flags shared by every command that loads a model (declared once here).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "bitnet/engine/session.h"

namespace bitnet::cli {

struct ModelFlags {
  std::string model;
  int32_t n_ctx = 0;
  int32_t n_batch = 512;
  int32_t threads = 0;
  std::string kv_type = "f16";
  std::string act_quant = "auto";
  std::string lm_head = "f16";

  void add(CLI::App& app);
  std::string path() const;  // -m, else the default model
  SessionOptions session_options() const;
};

// "8,16, 32" -> {8, 16, 32}; Error naming the flag and the bad element (described as `what`) when one is not
// an integer in [lo, hi]. Never empty.
std::vector<int32_t> parse_int_list(const std::string& text, const char* flag, int32_t lo, int32_t hi,
                                    const std::string& what);
// "1,2,3" -> ids; Error naming the flag and the bad element.
std::vector<int32_t> parse_token_list(const std::string& text, const char* flag);

}  // namespace bitnet::cli
