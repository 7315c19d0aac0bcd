#include <gtest/gtest.h>

#include "bitnet/base/utf8.h"

namespace bitnet {
namespace {

TEST(Utf8, AcceptsValidRejectsInvalid) {
  EXPECT_TRUE(utf8_valid("plain ascii"));
  EXPECT_TRUE(utf8_valid("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80"));
  EXPECT_EQ(utf8_first_invalid("ab\xff"), 2u);
  EXPECT_EQ(utf8_first_invalid("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(utf8_first_invalid("\xed\xa0\x80"), 0u);      // surrogate
  EXPECT_EQ(utf8_first_invalid("\xf4\x90\x80\x80"), 0u);  // > U+10FFFF
  EXPECT_EQ(utf8_first_invalid("x\xe4\xb8"), 1u);         // truncated
}

TEST(Utf8, EncodeDecodeRoundTrip) {
  for (uint32_t cp : {0x24u, 0xA2u, 0x20ACu, 0x10348u, 0x10FFFFu}) {
    std::string s;
    utf8_append(s, cp);
    const size_t len = utf8_sequence_length(s, 0);
    ASSERT_EQ(len, s.size());
    EXPECT_EQ(utf8_decode(s, 0, len), cp);
  }
}

TEST(Utf8, EscapeForMessage) {
  EXPECT_EQ(escape_for_message("a\nb\xff"), "a\\x0ab\\xff");
  EXPECT_EQ(escape_for_message(std::string(100, 'x'), 10), std::string(10, 'x') + "...");
}

}  // namespace
}  // namespace bitnet
