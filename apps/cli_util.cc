#include <cstdlib>
#include <filesystem>
#include <vector>

#include "bitnet/base/error.h"
#include "commands.h"

namespace bitnet::cli {

std::string default_model_path() {
  if (const char* env = std::getenv("BITNET_MODEL"); env && *env) return env;
  std::vector<std::filesystem::path> places;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) places.push_back(exe.parent_path().parent_path() / "share" / "bitnet" / "models" / BITNET_DEFAULT_MODEL_NAME);
  places.push_back(std::filesystem::path(BITNET_SOURCE_MODEL_DIR) / BITNET_DEFAULT_MODEL_NAME);
  std::string looked;
  for (const auto& p : places) {
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
    looked += (looked.empty() ? "" : ", ") + p.string();
  }
  fail("no model given (-m) and the default model {} is in none of: {}; pass -m MODEL or set BITNET_MODEL",
       BITNET_DEFAULT_MODEL_NAME, looked);
}

std::string model_or_default(const std::string& path) { return path.empty() ? default_model_path() : path; }

std::string shared_data_dir() {
  if (const char* env = std::getenv("BITNET_SHARED_DATA"); env && *env) return env;
  return BITNET_DEFAULT_SHARED_DATA;
}

}  // namespace bitnet::cli
