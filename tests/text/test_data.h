// Shared test data (/work/shared/data): $BITNET_SHARED_DATA, else the compile-time default
// ${PROJECT_SOURCE_DIR}/../shared/data. Tests that need a file skip with a message when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "bitnet/base/error.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/tokenizer.h"

namespace bitnet::testing {

inline std::filesystem::path shared_data_dir() {
  if (const char* env = std::getenv("BITNET_SHARED_DATA"); env != nullptr && *env != '\0') return env;
#ifdef BITNET_DEFAULT_SHARED_DATA
  return BITNET_DEFAULT_SHARED_DATA;
#else
  return "../shared/data";
#endif
}

// Path of a shared data file, or empty when it does not exist.
inline std::filesystem::path shared_file(const std::string& rel) {
  std::filesystem::path p = shared_data_dir() / rel;
  return std::filesystem::exists(p) ? p : std::filesystem::path();
}

inline std::string read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The LLaMA-3 tokenizer from tokenizer/llama3/tokenizer.json, built once per test binary; null if absent.
inline const Tokenizer* llama3_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = []() -> std::unique_ptr<Tokenizer> {
    const auto path = shared_file("tokenizer/llama3/tokenizer.json");
    if (path.empty()) return nullptr;
    return Tokenizer::create(load_hf_tokenizer_json(path));
  }();
  return tok.get();
}

}  // namespace bitnet::testing

// Skips the test when the LLaMA-3 tokenizer data is missing; else binds `tok`.
#define BITNET_REQUIRE_LLAMA3(tok)                                                           \
  const ::bitnet::Tokenizer* tok = ::bitnet::testing::llama3_tokenizer();                    \
  if (tok == nullptr) {                                                                      \
    GTEST_SKIP() << "shared data missing: " << ::bitnet::testing::shared_data_dir().string() \
                 << "/tokenizer/llama3/tokenizer.json (set BITNET_SHARED_DATA)";             \
  }
