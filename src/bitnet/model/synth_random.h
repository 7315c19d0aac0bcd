// Deterministic generators for synthetic tensors. SplitMix64 seeded by (seed, tensor name).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace bitnet {

class SynthRng {
 public:
  SynthRng(uint64_t seed, std::string_view stream) : s_(seed * 0x9E3779B97F4A7C15ull) {
    for (char c : stream) s_ = (s_ ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;  // FNV-1a style mix
    next();
  }
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t s_;
};

}  // namespace bitnet
