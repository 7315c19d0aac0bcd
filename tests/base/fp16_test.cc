#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "bitnet/base/fp16.h"

namespace bitnet {
namespace {

// The compiler's _Float16 conversion is an independent reference for IEEE round-to-nearest-even.
// clang before 15 has no _Float16 on x86 (the tsan and fuzz presets use clang 14): the two tests that
// need it are compiled only where the compiler defines __FLT16_MAX__; gcc 12 (release, asan-ubsan) does.
#ifdef __FLT16_MAX__
TEST(Fp16, EveryHalfRoundTripsAndMatchesCompiler) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    _Float16 ref;
    const uint16_t hb = static_cast<uint16_t>(h);
    std::memcpy(&ref, &hb, 2);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(static_cast<float>(ref)));
      continue;
    }
    EXPECT_EQ(f32_to_bits(f), f32_to_bits(static_cast<float>(ref))) << h;
    EXPECT_EQ(f32_to_fp16(f), h) << h;
  }
}

TEST(Fp16, RandomFloatsRoundLikeCompiler) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    const float f = bits_to_f32(bits(rng));
    if (std::isnan(f)) continue;
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t rb;
    std::memcpy(&rb, &ref, 2);
    ASSERT_EQ(f32_to_fp16(f), rb) << f;
  }
}
#endif  // __FLT16_MAX__

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808000)), 0x3F80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F818000)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808001)), 0x3F81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

}  // namespace
}  // namespace bitnet
