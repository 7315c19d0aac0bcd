// SentencePiece on a small hand-built vocabulary; every expectation below is traced by hand.
#include <gtest/gtest.h>

#include <random>

#include "bitnet/text/tokenizer.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/vocab_gguf.h"
#include "test_data.h"

namespace bitnet {
namespace {

// ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then the normal pieces of kPieces from 259.
struct Piece {
  const char* text;
  float score;
};
constexpr Piece kPieces[] = {
    {"\xE2\x96\x81", -5},  // 259 '▁'
    {"h", -6},
    {"e", -6},
    {"l", -6},
    {"o", -6},
    {"w", -6},
    {"r", -6},
    {"d", -6},  // 260..266
    {"i", -6},
    {"a", -6},                         // 267, 268
    {"ll", -1},                        // 269
    {"\xE2\x96\x81h", -2},             // 270 '▁h'
    {"\xE2\x96\x81he", -1.5},          // 271 '▁he'
    {"\xE2\x96\x81hell", -3.5},        // 272 '▁hell'
    {"or", -2.5},                      // 273
    {"\xE2\x96\x81w", -3},             // 274 '▁w'
    {"\xE2\x96\x81wor", -3.2},         // 275 '▁wor'
    {"ld", -4},                        // 276
    {"\xE2\x96\x81world", -10},        // 277 '▁world'
    {"aa", -1},                        // 278
    {"\xE2\x96\x81\xE2\x96\x81", -1},  // 279 '▁▁'
};
constexpr int32_t kByte0 = 3;

VocabData small_vocab(bool with_bytes = true) {
  VocabData v;
  v.model = "llama";
  const auto add = [&](std::string text, float score, TokenType t) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.token_types.push_back(static_cast<int32_t>(t));
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    if (with_bytes) {
      add(buf, 0, TokenType::kByte);
    } else {
      add(std::string("[unused") + buf + "]", 0, TokenType::kUnused);
    }
  }
  for (const Piece& p : kPieces) add(p.text, p.score, TokenType::kNormal);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

using Ids = std::vector<int32_t>;

TEST(Spm, GreedyMergesByScore) {
  const auto tok = Tokenizer::create(small_vocab());
  EXPECT_EQ(tok->pre_tokenizer_name(), "sentencepiece");
  // "▁hello▁world": ll(-1), ▁h(-2), ▁he(-1.5, new), or(-2.5), ▁w(-3), ▁wor(-3.2, new), ▁hell(-3.5, new),
  // ld(-4), ▁world(-10, new) -> ▁hell o ▁world. "▁hello" is no token, so 'o' stays alone.
  EXPECT_EQ(tok->encode("hello world", false, false), (Ids{272, 263, 277}));
  EXPECT_EQ(tok->encode("hello world", true, false), (Ids{1, 272, 263, 277}));
  EXPECT_EQ(tok->decode(tok->encode("hello world", true, false)), "hello world");
}

TEST(Spm, LeftmostOnEqualScores) {
  const auto tok = Tokenizer::create(small_vocab());
  // "▁aaa": ▁a is no token; aa at 1 and at 2 tie -> the left one merges first.
  EXPECT_EQ(tok->encode("aaa", false, false), (Ids{259, 278, 268}));
  // "▁▁▁a" -> ▁▁ ▁ a (two spaces in front of the prefix space).
  EXPECT_EQ(tok->encode("  a", false, false), (Ids{279, 259, 268}));
}

TEST(Spm, ByteFallback) {
  const auto tok = Tokenizer::create(small_vocab());
  // '€' = E2 82 AC is not in the vocabulary.
  EXPECT_EQ(tok->encode("\xE2\x82\xAC", false, false),
            (Ids{259, kByte0 + 0xE2, kByte0 + 0x82, kByte0 + 0xAC}));
  EXPECT_EQ(tok->decode(tok->encode("h\xE2\x82\xAC", false, false)), "h\xE2\x82\xAC");
  // Invalid UTF-8 is one symbol per bad byte, each to its byte token.
  EXPECT_EQ(tok->encode("\xFF"
                        "a",
                        false, false),
            (Ids{259, kByte0 + 0xFF, 268}));
  EXPECT_EQ(tok->token_text(kByte0 + 0x41), "A");
  EXPECT_EQ(tok->token_text(277), " world");
}

TEST(Spm, UnknownWithoutByteTokens) {
  const auto tok = Tokenizer::create(small_vocab(/*with_bytes=*/false));
  EXPECT_EQ(tok->encode("h\xE2\x82\xAC", false, false), (Ids{270, 0}));  // ▁h, one <unk> for '€'
  VocabData v = small_vocab(false);
  v.unk_id = -1;
  v.token_types[0] = static_cast<int32_t>(TokenType::kNormal);
  EXPECT_THROW(Tokenizer::create(v), Error);
}

TEST(Spm, SpecialTokensAndSpacePrefix) {
  const auto tok = Tokenizer::create(small_vocab());
  // A fragment after a special token gets the '▁' prefix again (llama.cpp).
  EXPECT_EQ(tok->encode("hi</s>hi", false, true), (Ids{270, 267, 2, 270, 267}));
  // Without parse_special "</s>" is text: only normal pieces merge, so it falls back to bytes.
  const Ids plain = tok->encode("</s>", false, false);
  EXPECT_EQ(plain.front(), 259);
  EXPECT_EQ(plain.size(), 5u);
  EXPECT_EQ(tok->decode(plain), "</s>");
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_FALSE(tok->is_eog(1));
  EXPECT_EQ(tok->token_text(2), "");
  EXPECT_EQ(tok->token_text(2, true), "</s>");
  EXPECT_TRUE(tok->encode("", false, true).empty());
  EXPECT_EQ(tok->encode("", true, true), Ids{1});
}

TEST(Spm, NoSpacePrefix) {
  VocabData v = small_vocab();
  v.add_space_prefix = false;
  const auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("hi", false, false), (Ids{260, 267}));
  EXPECT_EQ(tok->encode(" hi", false, false), (Ids{270, 267}));
  EXPECT_EQ(tok->decode(Ids{270, 267}), " hi");
}

// The real LLaMA-2 vocabulary (32000 pieces) from the tiny random test model. Expected ids are the
// SentencePiece/llama.cpp tokenizations of these strings (llama.cpp's LLaMA-SPM tokenizer test cases).
TEST(SpmLlama2, RealVocabulary) {
  const auto path = testing::shared_file("gguf/llama-2-tiny-random.gguf");
  if (path.empty()) GTEST_SKIP() << "shared data missing: gguf/llama-2-tiny-random.gguf";
  const auto tok = Tokenizer::create(vocab_from_gguf(*GgufFile::open(path.string())));
  EXPECT_EQ(tok->n_vocab(), 32000);
  EXPECT_EQ(tok->model(), "llama");
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_TRUE(tok->is_eog(2));
  const std::pair<std::string, Ids> cases[] = {
      {"", {}},
      {" ", {259}},
      {"\n", {29871, 13}},
      {"Hello world", {15043, 3186}},
      {" Hello world", {29871, 15043, 3186}},
      {"Hello, world!", {15043, 29892, 3186, 29991}},
      {"   Hello", {1678, 15043}},
      {" this is \xF0\x9F\xA6\x99.cpp", {29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223}},
  };
  for (const auto& [text, want] : cases) {
    EXPECT_EQ(tok->encode(text, false, false), want) << "'" << text << "'";
    EXPECT_EQ(tok->decode(tok->encode(text, true, false)), text);
  }
  EXPECT_EQ(tok->encode("<s>Hi", false, true).front(), 1);
  EXPECT_EQ(tok->token_text(15043), " Hello");
  EXPECT_EQ(tok->token_text(13), "\n");
}

// Random text without '▁' (which SentencePiece cannot tell from a space) survives encode + decode.
TEST(Spm, RandomRoundTrip) {
  const auto tok = Tokenizer::create(small_vocab());
  const std::string atoms[] = {"h",    "e",    "l",
                               "o",    "w",    "a",
                               " ",    "  ",   "\n",
                               "</s>", "<s",   "\xE2\x82\xAC",
                               "\xFF", "\xC3", std::string(1, '\0'),
                               "x"};
  std::mt19937 rng(99);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s;
    for (int k = static_cast<int>(rng() % 16); k > 0; --k) s += atoms[rng() % std::size(atoms)];
    ASSERT_EQ(tok->decode(tok->encode(s, rng() % 2 == 0, false)), s) << s;
  }
}

}  // namespace
}  // namespace bitnet
