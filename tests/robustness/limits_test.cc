// Limits that protect the machine (issue 6, item 4): recursion depth, sizes read from files, text and
// prompt lengths, and files larger than memory. Each limit gets a sentence, never a crash, a stack
// overflow or an allocation the size of a hostile field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <filesystem>
#include <fstream>
#include <string>

#include "bitnet/base/error.h"
#include "bitnet/engine/session.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/synth.h"
#include "bitnet/text/hf_tokenizer_json.h"
#include "bitnet/text/tokenizer.h"
#include "format/gguf_raw.h"
#include "test_util.h"

namespace bitnet {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Resident set size in bytes (Linux /proc/self/statm, second field in pages).
uint64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string tiny_model(const bitnet::testing::ScratchDir& dir) {
  SynthOptions o;
  o.dim = 128, o.hidden_dim = 256, o.n_layers = 1, o.n_heads = 2, o.n_kv_heads = 1, o.n_ctx = 64;
  const std::string path = (dir / "tiny.gguf").string();
  synth_model(o).write(path);
  return path;
}

// A tokenizer.json whose pre_tokenizer nests `depth` Sequences (real files: one).
std::string nested_pretokenizers(int depth) {
  std::string s = R"({"model":{"type":"BPE","vocab":{},"merges":[]},"pre_tokenizer":)";
  for (int i = 0; i < depth; ++i) s += R"({"type":"Sequence","pretokenizers":[)";
  for (int i = 0; i < depth; ++i) s += "]}";
  return s + "}";
}

TEST(Limits, TokenizerJsonNestingIsBoundedNotAStackOverflow) {
  // 200k levels overflowed the stack before the depth limit (found by fuzz_hf_tokenizer_json).
  EXPECT_THAT(error_of([] { vocab_from_hf_tokenizer_json(nested_pretokenizers(200000)); }),
              HasSubstr("nested more than 16 levels deep"));
  EXPECT_THAT(error_of([] { vocab_from_hf_tokenizer_json(nested_pretokenizers(18)); }), HasSubstr("nested more than"));
}

TEST(Limits, TokenizerJsonIdsMustBeIntegers) {
  // A float id used to be converted with undefined behaviour (1e300 does not fit int64).
  const std::string byte_level = R"("pre_tokenizer":{"type":"ByteLevel"})";
  EXPECT_THAT(error_of([&] {
                vocab_from_hf_tokenizer_json(R"({"model":{"type":"BPE","vocab":{"a":1e300},"merges":[]},)" + byte_level + "}");
              }),
              HasSubstr("expected an integer"));
  EXPECT_THAT(error_of([&] {
                vocab_from_hf_tokenizer_json(R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[]},)"
                                             R"("added_tokens":[{"id":2.5,"content":"x"}],)" + byte_level + "}");
              }),
              HasSubstr("expected an integer"));
  // A huge integer id is refused rather than allocated for.
  EXPECT_THAT(error_of([&] {
                vocab_from_hf_tokenizer_json(R"({"model":{"type":"BPE","vocab":{"a":4000000000},"merges":[]},)" +
                                             byte_level + "}");
              }),
              HasSubstr("outside [0,"));
}

TEST(Limits, TextTooLongToTokenizeAtOnce) {
  // 600 MiB of untouched address space: the length check comes before any byte is read.
  const size_t n = size_t{600} << 20;
  void* p = mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  const auto tok = Tokenizer::create(tiny_bpe_vocab());
  EXPECT_THAT(error_of([&] { tok->encode(std::string_view(static_cast<const char*>(p), n), false, false); }),
              HasSubstr("too long to tokenize at once (limit 512 MiB)"));
  munmap(p, n);
}

TEST(Limits, LongWordTokenizesInLinearishTime) {
  // One 2 MB "word" is a single pre-tokenizer piece: BPE merges it with a heap, O(n log n), not O(n^2).
  const auto tok = Tokenizer::create(tiny_bpe_vocab());
  std::string word;
  for (int i = 0; word.size() < (2u << 20); ++i) word += "thequickbrownfox"[i % 16];
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok->encode(word, false, false);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tok->decode(ids), word);
  EXPECT_LT(s, 60.0) << "2 MB without spaces took " << s << " s";
}

TEST(Limits, PromptLongerThanTheContextIsAnError) {
  bitnet::testing::ScratchDir dir;
  SessionOptions o;
  o.n_ctx = 8;
  o.n_threads = 1;
  Session s(tiny_model(dir), o);
  EXPECT_THAT(error_of([&] { s.eval(std::vector<int32_t>(9, 1), nullptr, nullptr); }),
              HasSubstr("exceed the context size of 8 (-c)"));
  s.eval({1, 2, 3, 4, 5}, nullptr, nullptr);
  EXPECT_THAT(error_of([&] { s.eval({1, 2, 3, 4}, nullptr, nullptr); }),
              HasSubstr("4 tokens after 5 already in context exceed the context size of 8"));
  EXPECT_THAT(error_of([&] { s.eval({s.n_vocab()}, nullptr, nullptr); }), HasSubstr("outside the vocabulary"));
  EXPECT_THAT(error_of([&] { s.eval({-1}, nullptr, nullptr); }), HasSubstr("outside the vocabulary"));
}

TEST(Limits, ContextSizeIsBounded) {
  bitnet::testing::ScratchDir dir;
  const std::string path = tiny_model(dir);
  SessionOptions o;
  o.n_ctx = (1 << 20) + 1;
  EXPECT_THAT(error_of([&] { Session s(path, o); }), HasSubstr("is too large"));
}

// Hyperparameters size every buffer of the engine: each is range-checked (and type-checked) when read.
TEST(Limits, HyperparametersAreCheckedBeforeUse) {
  SynthOptions o;
  o.dim = 128, o.hidden_dim = 256, o.n_layers = 1, o.n_heads = 2, o.n_kv_heads = 1, o.n_ctx = 64;
  const std::string p = "bitnet-b1.58.";
  auto config_error = [&](const std::string& key, std::optional<GgufValue> v) {
    GgufWriter w = synth_model(o);
    if (v) {
      w.set(key, *v);
    } else {
      w.remove(key);
    }
    const std::vector<uint8_t> bytes = w.to_bytes();
    return error_of([&] { ModelConfig::from_gguf(*GgufFile::parse(bytes.data(), bytes.size(), "h.gguf")); });
  };
  EXPECT_THAT(config_error(p + "block_count", std::nullopt), HasSubstr("required key 'bitnet-b1.58.block_count' is missing"));
  EXPECT_THAT(config_error(p + "block_count", GgufValue::of_u32(0)), HasSubstr("is 0, expected 1..4096"));
  EXPECT_THAT(config_error(p + "block_count", GgufValue::of_u64(1ull << 40)), HasSubstr("expected 1..4096"));
  EXPECT_THAT(config_error(p + "block_count", GgufValue::of_u64(~0ull)), HasSubstr("expected an integer"));
  EXPECT_THAT(config_error(p + "embedding_length", GgufValue::of_string("128")),
              HasSubstr("has type string, expected an integer"));
  EXPECT_THAT(config_error(p + "embedding_length", GgufValue::of_u32(1u << 21)), HasSubstr("expected 1..1048576"));
  EXPECT_THAT(config_error(p + "attention.head_count", GgufValue::of_u32(3)), HasSubstr("not divisible"));
  EXPECT_THAT(config_error(p + "attention.head_count_kv", GgufValue::of_u32(4)), HasSubstr("expected 1..2"));
  EXPECT_THAT(config_error(p + "attention.layer_norm_rms_epsilon", GgufValue::of_f32(2.0f)),
              HasSubstr("expected 0 < eps < 1"));
  EXPECT_THAT(config_error(p + "rope.freq_base", GgufValue::of_f64(std::nan(""))), HasSubstr("expected > 1"));
  EXPECT_THAT(config_error(p + "vocab_size", GgufValue::of_u32(1u << 25)), HasSubstr("vocab_size is 33554432"));
  EXPECT_THAT(config_error(p + "context_length", GgufValue::of_i32(-1)), HasSubstr("expected 1..16777216"));
}

TEST(Limits, FileLargerThanMemoryIsMappedNotRead) {
  // A 64 GiB F32 tensor in a sparse file: opening reads the header only, whatever the file's size.
  bitnet::testing::ScratchDir dir;
  const std::string path = (dir / "huge.gguf").string();
  const uint64_t n = uint64_t{1} << 34;  // elements: 64 GiB of F32
  bitnet::testing::RawGguf g;
  g.header(1, 1).kv_string("general.architecture", "llama").tensor("huge", {n}, 0, 0).pad();
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(g.b.data()), static_cast<std::streamsize>(g.b.size()));
  }
  std::error_code ec;
  std::filesystem::resize_file(path, g.b.size() + 4 * n, ec);
  if (ec) GTEST_SKIP() << "this filesystem cannot hold a 64 GiB sparse file: " << ec.message();
  const uint64_t before = rss_bytes();
  const auto t0 = std::chrono::steady_clock::now();
  const auto f = GgufFile::open(path);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(f->tensors()[0].nbytes, 4 * n);
  EXPECT_LT(rss_bytes() - std::min(before, rss_bytes()), uint64_t{64} << 20) << "opening read the tensor data";
  EXPECT_LT(s, 5.0);
}

}  // namespace
}  // namespace bitnet
