#include <cstdlib>

#include "commands.h"

namespace bitnet::cli {

std::string shared_data_dir() {
  if (const char* env = std::getenv("BITNET_SHARED_DATA"); env && *env) return env;
  return BITNET_DEFAULT_SHARED_DATA;
}

}  // namespace bitnet::cli
