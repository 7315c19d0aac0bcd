// Flags shared by every command that loads a model (declared once here).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "bitnet/engine/session.h"

namespace bitnet::cli {

struct ModelFlags {
  std::string model;
  std::string hf;  // -hf REPO[:FILE]: pulled into the cache (src/bitnet/hub)
  int32_t n_ctx = 0;
  int32_t n_batch = 512;
  int32_t threads = 0;
  std::string kv_type = "f16";
  std::string act_quant = "auto";
  std::string lm_head = "f16";  // generation commands set "auto" before add()

  void add(CLI::App& app);
  std::string path() const;  // -m, else -hf (downloaded unless cached), else the default model
  SessionOptions session_options() const;
};

// Adds --lm-head (f16 | q8 | q6 | q4 | auto) bound to `lm_head`.
void add_lm_head_option(CLI::App& app, std::string& lm_head);
// Adds --hf (spelled -hf too) to a command with its own -m.
void add_hf_option(CLI::App& app, std::string& hf);
// The model file of -m / -hf: -m as given; -hf's file pulled into the cache; neither: the default model.
std::string resolve_model(const std::string& model, const std::string& hf);

// "8,16, 32" -> {8, 16, 32}; Error naming the flag and the bad element (described as `what`) when one is not
// an integer in [lo, hi]. Never empty.
std::vector<int32_t> parse_int_list(const std::string& text, const char* flag, int32_t lo, int32_t hi,
                                    const std::string& what);
// "1,2,3" -> ids; Error naming the flag and the bad element.
std::vector<int32_t> parse_token_list(const std::string& text, const char* flag);

}  // namespace bitnet::cli
