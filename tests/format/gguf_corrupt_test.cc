// Hand-corrupted GGUF files: each gets its specific error, none crashes (run under asan-ubsan in CI).
#include <gtest/gtest.h>

#include <random>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "gguf_raw.h"

namespace bitnet {
namespace {

using testing::RawGguf;

// A small valid file: arch llama, two F32 tensors of 4 and 8 elements.
RawGguf valid_file() {
  RawGguf r;
  r.header(2, 2).kv_string("general.architecture", "llama").kv_u32("llama.block_count", 1);
  r.tensor("a", {4}, 0, 0).tensor("b", {8}, 0, 32);
  r.pad().zeros(32 + 32);
  return r;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::parse(bytes.data(), bytes.size(), "test.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_GGUF_ERROR(bytes, substring)                      \
  do {                                                           \
    const std::string err = parse_error(bytes);                  \
    EXPECT_NE(err.find(substring), std::string::npos) << err;    \
    EXPECT_NE(err.find("test.gguf"), std::string::npos) << err;  \
  } while (0)

TEST(GgufCorrupt, ValidBaseParses) {
  const auto r = valid_file();
  auto f = GgufFile::parse(r.b.data(), r.b.size(), "test.gguf");
  EXPECT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->architecture(), "llama");
}

TEST(GgufCorrupt, TruncatedAnywhere) {
  const auto full = valid_file().b;
  for (size_t len = 0; len < full.size(); ++len) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + len);
    const std::string err = parse_error(cut);
    EXPECT_FALSE(err.empty()) << "prefix of " << len << " bytes parsed";
    const bool specific = err.find("truncated") != std::string::npos || err.find("past the end") != std::string::npos ||
                          err.find("shorter than") != std::string::npos || err.find("impossible") != std::string::npos ||
                          err.find("only") != std::string::npos;
    EXPECT_TRUE(specific) << len << ": " << err;
  }
}

TEST(GgufCorrupt, BadMagic) {
  auto b = valid_file().b;
  b[0] = 'X';
  EXPECT_GGUF_ERROR(b, "magic at byte 0 is \"XGUF\", expected \"GGUF\"");
}

TEST(GgufCorrupt, UnsupportedVersions) {
  RawGguf v1;
  v1.header(0, 0, 1);
  EXPECT_GGUF_ERROR(v1.b, "version 1 is not supported");
  RawGguf v4;
  v4.header(0, 0, 4);
  EXPECT_GGUF_ERROR(v4.b, "unsupported GGUF version 4");
  RawGguf be;
  be.header(0, 0, 0x03000000);
  EXPECT_GGUF_ERROR(be.b, "big-endian");
}

TEST(GgufCorrupt, HugeCounts) {
  RawGguf t;
  t.header(UINT64_MAX / 2, 0);
  EXPECT_GGUF_ERROR(t.b, "tensor count");
  RawGguf k;
  k.header(0, 1ull << 40);
  EXPECT_GGUF_ERROR(k.b, "metadata count");
}

TEST(GgufCorrupt, HugeStringLength) {
  RawGguf r;
  r.header(0, 1).u64(UINT64_MAX).u32(8).zeros(16);
  EXPECT_GGUF_ERROR(r.b, "has length 18446744073709551615");
  RawGguf v;
  v.header(0, 1).str("general.name").u32(8).u64(1ull << 50).zeros(16);
  EXPECT_GGUF_ERROR(v.b, "value of 'general.name'");
}

TEST(GgufCorrupt, HugeArrayCount) {
  RawGguf r;
  r.header(0, 1).str("tokenizer.ggml.scores").u32(9).u32(6).u64(1ull << 61);
  EXPECT_GGUF_ERROR(r.b, "array of 2305843009213693952 f32 elements");
  RawGguf s;
  s.header(0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(UINT64_MAX);
  EXPECT_GGUF_ERROR(s.b, "key 'tokenizer.ggml.tokens'");
}

TEST(GgufCorrupt, DeeplyNestedArrays) {
  RawGguf r;
  r.header(0, 1).str("nested").u32(9);
  for (int i = 0; i < 100; ++i) r.u32(9).u64(1);
  r.u32(4).u64(0);
  EXPECT_GGUF_ERROR(r.b, "nested deeper than");
}

TEST(GgufCorrupt, UnknownValueType) {
  RawGguf r;
  r.header(0, 1).str("general.name").u32(13).u32(0);
  EXPECT_GGUF_ERROR(r.b, "unknown value type 13");
  RawGguf a;
  a.header(0, 1).str("arr").u32(9).u32(77).u64(0);
  EXPECT_GGUF_ERROR(a.b, "unknown value type 77");
}

TEST(GgufCorrupt, InvalidBool) {
  RawGguf r;
  r.header(0, 1).str("flag").u32(7).put<uint8_t>(2);
  EXPECT_GGUF_ERROR(r.b, "bool value 2");
}

TEST(GgufCorrupt, InvalidUtf8Key) {
  RawGguf r;
  r.header(0, 1).str("general.\xff\xfe").u32(4).u32(1);
  EXPECT_GGUF_ERROR(r.b, "not valid UTF-8");
  RawGguf t;
  t.header(1, 0).tensor("bad\xc0\xaf", {4}, 0, 0).pad().zeros(32);
  EXPECT_GGUF_ERROR(t.b, "tensor name at byte 24 is not valid UTF-8");
}

TEST(GgufCorrupt, EmptyKey) {
  RawGguf r;
  r.header(0, 1).str("").u32(4).u32(1);
  EXPECT_GGUF_ERROR(r.b, "empty key");
}

TEST(GgufCorrupt, DuplicateKey) {
  RawGguf r;
  r.header(0, 2).kv_u32("x", 1).kv_u32("x", 2);
  EXPECT_GGUF_ERROR(r.b, "duplicate metadata key 'x'");
}

TEST(GgufCorrupt, DuplicateTensorName) {
  RawGguf r;
  r.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad().zeros(64);
  EXPECT_GGUF_ERROR(r.b, "duplicate tensor name 'w'");
}

TEST(GgufCorrupt, BadAlignment) {
  RawGguf r;
  r.header(0, 1).kv_u32("general.alignment", 24);
  EXPECT_GGUF_ERROR(r.b, "general.alignment is 24");
  RawGguf z;
  z.header(0, 1).kv_u32("general.alignment", 0);
  EXPECT_GGUF_ERROR(z.b, "general.alignment is 0");
  RawGguf t;
  t.header(0, 1).kv_string("general.alignment", "32");
  EXPECT_GGUF_ERROR(t.b, "has type string, expected u32");
}

TEST(GgufCorrupt, TooManyDims) {
  RawGguf r;
  r.header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad().zeros(32);
  EXPECT_GGUF_ERROR(r.b, "5 dimensions, at most 4");
}

TEST(GgufCorrupt, ShapeOverflow) {
  RawGguf r;
  r.header(1, 0).tensor("w", {1ull << 32, 1ull << 32}, 0, 0).pad().zeros(32);
  EXPECT_GGUF_ERROR(r.b, "too many elements");
  RawGguf s;  // fits in elements, overflows in bytes
  s.header(1, 0).tensor("w", {1ull << 31, 1ull << 31}, 0, 0).pad().zeros(32);
  EXPECT_GGUF_ERROR(s.b, "shape [2147483648, 2147483648]: size overflows");
}

TEST(GgufCorrupt, UnknownTensorType) {
  RawGguf r;
  r.header(1, 0).tensor("w", {4}, 99, 0).pad().zeros(32);
  EXPECT_GGUF_ERROR(r.b, "unknown type id 99");
}

TEST(GgufCorrupt, I2sIdInEveryArchitectureTl1OnlyInBitnetOnes) {
  // bitnet.cpp writes I2_S (36) for arch llama too (Falcon3-1.58bit); TL1 (38) only for its BitNet archs.
  RawGguf llama;
  llama.header(1, 1).kv_string("general.architecture", "llama").tensor("w", {128}, 36, 0).pad().zeros(64);
  EXPECT_EQ(GgufFile::parse(llama.b.data(), llama.b.size(), "test.gguf")->tensors()[0].type, TensorType::I2_S);
  RawGguf r;
  r.header(1, 1).kv_string("general.architecture", "llama").tensor("w", {128}, 38, 0).pad().zeros(64);
  EXPECT_GGUF_ERROR(r.b, "only bitnet.cpp's BitNet architectures use");
  RawGguf ok;
  ok.header(1, 1).kv_string("general.architecture", "bitnet-b1.58").tensor("w", {128}, 36, 0).pad().zeros(64);
  auto f = GgufFile::parse(ok.b.data(), ok.b.size(), "test.gguf");
  EXPECT_EQ(f->tensors()[0].type, TensorType::I2_S);
  EXPECT_EQ(f->tensors()[0].nbytes, 128u / 4 + 32);
}

TEST(GgufCorrupt, TlTypesRefusedWithAdvice) {
  for (uint32_t id : {38u, 39u}) {
    RawGguf r;
    r.header(1, 1).kv_string("general.architecture", "bitnet-b1.58").tensor("w", {256}, id, 0).pad().zeros(128);
    EXPECT_GGUF_ERROR(r.b, "re-create the file as I2_S");
  }
}

TEST(GgufCorrupt, BlockSizeMismatch) {
  RawGguf r;
  r.header(1, 0).tensor("w", {100}, 35, 0).pad().zeros(128);  // TQ2_0 needs multiples of 256
  EXPECT_GGUF_ERROR(r.b, "row length 100 is not a multiple of the block size 256");
}

TEST(GgufCorrupt, MisalignedOffset) {
  RawGguf r;
  r.header(1, 0).tensor("w", {4}, 0, 4).pad().zeros(64);
  EXPECT_GGUF_ERROR(r.b, "data offset 4 is not a multiple of the alignment 32");
}

TEST(GgufCorrupt, OffsetPastEnd) {
  RawGguf r;
  r.header(1, 0).tensor("w", {4}, 0, 1ull << 40).pad().zeros(32);
  EXPECT_GGUF_ERROR(r.b, "extends past the end of the file");
  RawGguf wrap;
  wrap.header(1, 0).tensor("w", {8}, 0, UINT64_MAX - 31).pad().zeros(32);
  EXPECT_GGUF_ERROR(wrap.b, "extends past the end of the file");
}

TEST(GgufCorrupt, SizeMismatch) {
  RawGguf r;  // F32 [16] needs 64 bytes; the data section has 32
  r.header(1, 0).tensor("w", {16}, 0, 0).pad().zeros(32);
  EXPECT_GGUF_ERROR(r.b, "(F32 [16], 64 bytes at data offset 0) extends past the end of the file: the data section has 32 bytes");
}

TEST(GgufCorrupt, OverlappingTensors) {
  RawGguf r;
  r.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(96);
  EXPECT_GGUF_ERROR(r.b, "overlap");
}

TEST(GgufCorrupt, DataSectionMissing) {
  RawGguf r;
  r.header(1, 0).tensor("w", {4}, 0, 0);  // no padding, no data
  EXPECT_GGUF_ERROR(r.b, "data section should start at byte 64");
}

// Random byte flips of a valid file: every trial either parses or fails with Error; nothing else.
TEST(GgufCorrupt, RandomByteFlipsNeverCrash) {
  const auto base = valid_file().b;
  std::mt19937 rng(1234);
  int parsed = 0, failed = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    auto b = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    try {
      GgufFile::parse(b.data(), b.size(), "fuzz.gguf");
      ++parsed;
    } catch (const Error&) {
      ++failed;
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace bitnet
