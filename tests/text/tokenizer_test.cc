// Model-independent parts: GPT-2 byte alphabet, create() validation, the HF loader, the stream decoder.
#include "bitnet/text/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <set>

#include "bitnet/base/utf8.h"
#include "bitnet/text/byte_unicode.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/pretokenizer.h"
#include "test_data.h"

namespace bitnet {
namespace {

using Ids = std::vector<int32_t>;

TEST(ByteUnicode, Alphabet) {
  std::set<uint32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = byte_to_unicode(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(cp).second);
    EXPECT_EQ(byte_from_unicode(cp), b);
  }
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(byte_to_unicode('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_to_unicode('A'), 'A');
  EXPECT_EQ(byte_to_unicode(0xAD), 0x143u);
  EXPECT_EQ(byte_from_unicode(0x2581), -1);
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string mapped;
  append_byte_level(all, mapped);
  EXPECT_TRUE(utf8_valid(mapped));
  EXPECT_EQ(decode_byte_level(mapped), all);
}

TEST(PreTokenizer, Llama3Pieces) {
  const RegexSplitter re(kLlama3PreTokenizerPattern);
  const auto split = [&](std::string_view s) {
    std::vector<std::string_view> p;
    re.split(s, p);
    return std::vector<std::string>(p.begin(), p.end());
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Hello, y'all! 12345  x\n\n"),
            (V{"Hello", ",", " y", "'all", "!", " ", "123", "45", " ", " x", "\n\n"}));
  EXPECT_EQ(split("I'VE it's"), (V{"I", "'VE", " it", "'s"}));
  // Case folding as in Oniguruma: U+017F (long s) matches `'s`.
  EXPECT_EQ(split("'\xC5\xBFx"), (V{"'\xC5\xBF", "x"}));
  // U+0085 (NEL) is White_Space for Oniguruma, so it behaves like a space.
  EXPECT_EQ(split("a\xC2\x85\xC2\x85"
                  "b"),
            (V{"a", "\xC2\x85",
               "\xC2\x85"
               "b"}));
  // Invalid bytes are pieces of their own; the valid runs around them split normally.
  EXPECT_EQ(split("ab\xFF"
                  "cd \xC3"),
            (V{"ab", "\xFF", "cd", " ", "\xC3"}));
}

VocabData tiny_bpe() {
  // Byte alphabet + "Ġa" + "Ġab"; merges "Ġ a", "Ġa b".
  VocabData v;
  v.model = "gpt2";
  for (int b = 0; b < 256; ++b) {
    std::string t;
    const char c = static_cast<char>(b);
    append_byte_level(std::string_view(&c, 1), t);
    v.tokens.push_back(t);
  }
  v.tokens.push_back(
      "\xC4\xA0"
      "a");  // 256 "Ġa"
  v.tokens.push_back(
      "\xC4\xA0"
      "ab");                      // 257 "Ġab"
  v.tokens.push_back("<|end|>");  // 258
  v.merges = {"\xC4\xA0 a",
              "\xC4\xA0"
              "a b"};
  v.token_types.assign(v.tokens.size(), 1);
  v.token_types[258] = 3;
  v.eos_id = 258;
  v.add_bos = false;
  return v;
}

TEST(BpeSmall, MergesAndSpecials) {
  const auto tok = Tokenizer::create(tiny_bpe());
  EXPECT_EQ(tok->encode(" ab a", false, false), (Ids{257, 256}));
  EXPECT_EQ(tok->encode("x<|end|> ab", false, true), (Ids{'x', 258, 257}));
  EXPECT_EQ(tok->decode(Ids{257, 256}), " ab a");
  EXPECT_FALSE(tok->add_bos_default());
  EXPECT_THROW(tok->encode("x", true, false), Error);  // no BOS token
  EXPECT_TRUE(tok->is_eog(258));
}

TEST(BpeSmall, EncodeMarkedMatchesControlTokensInMarkupOnly) {
  const auto tok = Tokenizer::create(tiny_bpe());
  using R = Tokenizer::Range;
  const std::string text = "<|end|> ab<|end|>";  // bytes 0-6 and 10-16 are the control token's text
  const std::vector<R> first = {{0, 7}}, second = {{8, 17}}, partial = {{10, 16}}, none = {}, all = {{0, text.size()}};
  const Ids plain_tail = tok->encode("<|end|>", false, false);
  Ids want = {258, 257};
  want.insert(want.end(), plain_tail.begin(), plain_tail.end());
  EXPECT_EQ(tok->encode_marked(text, first, false), want);
  EXPECT_EQ(tok->encode_marked(text, all, false), tok->encode(text, false, true));
  EXPECT_EQ(tok->encode_marked(text, none, false), tok->encode(text, false, false));
  EXPECT_EQ(tok->encode_marked(text, partial, false), tok->encode(text, false, false));  // the token must lie inside
  const Ids last = tok->encode_marked(text, second, false);
  EXPECT_EQ(last.back(), 258);
  EXPECT_EQ(std::count(last.begin(), last.end(), 258), 1);
  for (const std::vector<R>& bad : {std::vector<R>{{5, 3}}, std::vector<R>{{0, 18}}, std::vector<R>{{4, 8}, {6, 9}},
                                    std::vector<R>{{8, 9}, {0, 2}}})
    EXPECT_THROW(tok->encode_marked(text, bad, false), Error);
}

// Each broken vocabulary must be refused with an Error whose message names the problem.
void expect_create_error(const VocabData& v, const std::string& needle) {
  try {
    Tokenizer::create(v);
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerCreate, Errors) {
  VocabData v = tiny_bpe();
  v.model = "bert";
  expect_create_error(v, "'bert' is not supported");
  v = tiny_bpe();
  v.pre = "chatglm-bpe";
  expect_create_error(v, "tokenizer.ggml.pre = 'chatglm-bpe' is not supported");
  v = tiny_bpe();
  v.merges.push_back("\xC4\xA0 zz");
  expect_create_error(v, "not in the vocabulary: 'zz'");
  v = tiny_bpe();
  v.merges.push_back("a b");  // "ab" is no token
  expect_create_error(v, "produces 'ab'");
  v = tiny_bpe();
  v.merges.push_back("nospace");
  expect_create_error(v, "not of the form");
  v = tiny_bpe();
  v.merges.clear();
  expect_create_error(v, "no merges");
  v = tiny_bpe();
  v.token_types.pop_back();
  expect_create_error(v, "token_type has 258 entries but tokenizer.ggml.tokens has 259");
  v = tiny_bpe();
  v.token_types[5] = 9;
  expect_create_error(v, "token_type[5] = 9");
  v = tiny_bpe();
  v.scores.assign(3, 0.0f);
  expect_create_error(v, "scores has 3 entries");
  v = tiny_bpe();
  v.bos_id = 259;
  expect_create_error(v, "bos_token_id = 259 is out of range");
  v = tiny_bpe();
  v.eot_id = -7;
  expect_create_error(v, "eot_token_id = -7");
  v = VocabData{};
  v.model = "gpt2";
  expect_create_error(v, "empty");
  // Accepted pre values.
  for (const char* pre : {"", "llama-bpe", "llama3", "llama-v3", "smaug-bpe", "falcon3", "qwen2", "gpt-4o", "deepseek-v3", "gpt2"}) {
    v = tiny_bpe();
    v.pre = pre;
    EXPECT_NO_THROW(Tokenizer::create(v)) << pre;
  }
}

TEST(HfTokenizerJson, MergeFormsAndErrors) {
  const std::string pre =
      R"("pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": )"
      R"("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, )"
      R"("behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";
  const auto json_with = [&](const std::string& merges) {
    return R"({"added_tokens": [{"id": 4, "content": "<|x|>", "special": true}], )" + pre +
           R"(, "model": {"type": "BPE", "ignore_merges": true, "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": )" +
           merges + "}}";
  };
  for (const std::string merges : {R"(["a b"])", R"([["a", "b"]])"}) {
    const VocabData v = vocab_from_hf_tokenizer_json(json_with(merges));
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.pre, "llama-bpe");
    EXPECT_EQ(v.tokens, (std::vector<std::string>{"a", "b", "ab", "c", "<|x|>"}));
    EXPECT_EQ(v.merges, std::vector<std::string>{"a b"});
    EXPECT_EQ(v.token_types, (std::vector<int32_t>{1, 1, 1, 1, 3}));
  }
  // The same regex without ignore_merges is llama.cpp's smaug-bpe.
  std::string smaug = json_with(R"(["a b"])");
  smaug.replace(smaug.find(R"("ignore_merges": true, )"), 23, "");
  EXPECT_EQ(vocab_from_hf_tokenizer_json(smaug).pre, "smaug-bpe");
  EXPECT_THROW(vocab_from_hf_tokenizer_json("{not json"), Error);
  const std::string wild_id = R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", )"
                              R"("vocab": {"a": 0, "b": 2000000000}, "merges": []}})";
  EXPECT_THROW(vocab_from_hf_tokenizer_json(wild_id), Error);
  EXPECT_THROW(vocab_from_hf_tokenizer_json(json_with("[42]")), Error);
  EXPECT_THROW(vocab_from_hf_tokenizer_json(R"({"model": {"type": "Unigram", "vocab": []}})"), Error);
  EXPECT_THROW(load_hf_tokenizer_json("/nonexistent/tokenizer.json"), Error);
}

// ---- TokenStreamDecoder --------------------------------------------------------------------------------

TEST(StreamDecoder, RawBytes) {
  const auto tok = Tokenizer::create(tiny_bpe());
  TokenStreamDecoder d(*tok);
  // '€' = E2 82 AC split over three feeds.
  EXPECT_EQ(d.feed_bytes("a\xE2"), "a");
  EXPECT_EQ(d.pending_bytes(), 1u);
  EXPECT_EQ(d.feed_bytes("\x82"), "");
  EXPECT_EQ(d.feed_bytes("\xAC"
                         "b"),
            "\xE2\x82\xAC"
            "b");
  // A lead byte followed by a non-continuation: U+FFFD for the lead, the next byte is kept.
  EXPECT_EQ(d.feed_bytes("\xE2"
                         "x"),
            "\xEF\xBF\xBD"
            "x");
  // Maximal subpart: E2 82 then 'y' -> one U+FFFD; bytes that never start a character -> one each.
  EXPECT_EQ(d.feed_bytes("\xE2\x82"
                         "y\x80\xFF"),
            "\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBD");
  // Surrogates (ED A0..) and > U+10FFFF (F4 90..) can be seen to be invalid at their second byte.
  EXPECT_EQ(d.feed_bytes("\xED\xA0"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(d.feed_bytes("\xF4\x90"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Incomplete at the end: flush gives one U+FFFD.
  EXPECT_EQ(d.feed_bytes("\xF0\x9F\x98"), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(d.flush(), "");
}

TEST(StreamDecoder, Llama3EmojiAndCjk) {
  BITNET_REQUIRE_LLAMA3(tok);
  // Emoji and rare CJK split over several byte-level tokens; every prefix of the stream must be valid.
  const std::string text = "Hi \xF0\x9F\xA6\x99\xF0\x9F\x98\x81 \xE9\xBE\x98\xE9\xBD\x89 \xE2\x9C\x85 ok";
  const Ids ids = tok->encode(text, true, false);
  int split_tokens = 0;
  for (int32_t id : ids) split_tokens += !utf8_valid(tok->token_text(id));
  EXPECT_GT(split_tokens, 0) << "test text should contain characters split across tokens";
  TokenStreamDecoder d(*tok);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = d.feed(id);
    EXPECT_TRUE(utf8_valid(piece));
    out += piece;
  }
  out += d.flush();
  EXPECT_EQ(out, text);
  // Stopping right after the first token that ends mid-character: U+FFFD at flush, never broken bytes.
  TokenStreamDecoder d2(*tok);
  std::string partial;
  for (int32_t id : ids) {
    partial += d2.feed(id);
    if (!utf8_valid(tok->token_text(id))) break;
  }
  EXPECT_GT(d2.pending_bytes(), 0u);
  partial += d2.flush();
  EXPECT_TRUE(utf8_valid(partial));
  EXPECT_EQ(partial, "Hi \xEF\xBF\xBD");
}

}  // namespace
}  // namespace bitnet
