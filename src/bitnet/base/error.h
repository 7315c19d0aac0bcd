// Error type for bad input. Bugs assert; bad input (files, flags, bodies) throws bitnet::Error with a
// sentence naming what was wrong and where. Caught only at the CLI entry and request handlers.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace bitnet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace bitnet
