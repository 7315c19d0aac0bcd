// Writer -> reader round trips over every value type, nested arrays, alignments and tensor types.
#include <gtest/gtest.h>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"
#include "gguf_fixtures.h"
#include "test_util.h"

namespace bitnet {
namespace {

using testing::all_types_writer;

void check_all_types(const GgufFile& f, uint32_t alignment) {
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_offset() % alignment, 0u);
  EXPECT_EQ(f.find("t.u8")->u, 200u);
  EXPECT_EQ(f.find("t.i8")->i, -100);
  EXPECT_EQ(f.find("t.u16")->u, 60000u);
  EXPECT_EQ(f.find("t.i16")->i, -30000);
  EXPECT_EQ(f.find("t.u32")->u, 4000000000u);
  EXPECT_EQ(f.find("t.i32")->i, -2000000000);
  EXPECT_EQ(f.find("t.u64")->u, 18000000000000000000ull);
  EXPECT_EQ(f.find("t.i64")->i, -9000000000000000000ll);
  EXPECT_EQ(f.find("t.f32")->f, static_cast<double>(0.1f));
  EXPECT_EQ(f.find("t.f64")->f, 0.1);
  EXPECT_EQ(f.get_bool("t.bool"), true);
  EXPECT_EQ(f.get_string("t.string"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(f.get_array("t.strings", GgufType::STRING)->strings, (std::vector<std::string>{"a", "", "\xe4\xb8\xad"}));
  const GgufArray* f32s = f.get_array("t.f32s", GgufType::F32);
  EXPECT_EQ(f32s->float_at(1), -2.25);
  EXPECT_EQ(f.get_array("t.i32s", GgufType::I32)->int_at(1), -2);
  const GgufArray* nested = f.get_array("t.nested", GgufType::ARRAY);
  ASSERT_EQ(nested->arrays.size(), 2u);
  EXPECT_EQ(nested->arrays[0].int_at(1), 2);
  EXPECT_EQ(nested->arrays[1].strings[0], "x");
  EXPECT_EQ(f.get_array("t.empty", GgufType::STRING)->count, 0u);
  EXPECT_THROW(f.get_string("t.u8"), Error);
  EXPECT_THROW(f.get_array("t.f32s", GgufType::I32), Error);

  ASSERT_EQ(f.tensors().size(), 5u);
  const GgufTensorInfo* t = f.tensor("f32");
  EXPECT_EQ(t->n_dims, 2u);
  EXPECT_EQ(t->ne[0], 3u);
  EXPECT_EQ(t->ne[1], 2u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t->data[i], i);
  EXPECT_EQ(f.tensor("q8")->nbytes, 68u);
  EXPECT_EQ(f.tensor("tq2")->nbytes, 132u);
  EXPECT_EQ(f.tensor("tq1")->data[53], 1);
  EXPECT_EQ(f.tensor("gen")->data[4], 0xA4);
  for (const auto& ti : f.tensors()) EXPECT_EQ(ti.offset % alignment, 0u) << ti.name;
}

TEST(GgufRoundTrip, AllValueTypesInMemory) {
  for (uint32_t alignment : {32u, 64u, 1u, 4096u}) {
    const auto bytes = all_types_writer(alignment).to_bytes();
    auto f = GgufFile::parse(bytes.data(), bytes.size(), "mem");
    check_all_types(*f, alignment);
  }
}

TEST(GgufRoundTrip, FileIsWrittenAtomicallyAndReadBack) {
  testing::ScratchDir dir;
  const auto path = (dir / "m.gguf").string();
  all_types_writer(32).write(path);
  auto f = GgufFile::open(path);
  check_all_types(*f, 32);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
  // Rewriting the same content gives the same bytes.
  EXPECT_EQ(testing::read_bytes(path), all_types_writer(32).to_bytes());
}

TEST(GgufRoundTrip, FailedProducerLeavesNoFile) {
  testing::ScratchDir dir;
  GgufWriter w;
  w.add_tensor("boom", TensorType::F32, {4}, [](uint8_t*, uint64_t) { throw Error("producer failed"); });
  EXPECT_THROW(w.write((dir / "x.gguf").string()), Error);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("a", TensorType::TQ2_0, {100}, std::vector<uint8_t>(66)), Error);  // block size
  EXPECT_THROW(w.add_tensor("b", TensorType::F32, {4}, std::vector<uint8_t>(15)), Error);     // wrong bytes
  w.add_tensor("c", TensorType::F32, {1}, std::vector<uint8_t>(4));
  EXPECT_THROW(w.add_tensor("c", TensorType::F32, {1}, std::vector<uint8_t>(4)), Error);  // duplicate
  EXPECT_THROW(w.add_tensor("d", TensorType::F32, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4)), Error);
  EXPECT_THROW(w.set("", GgufValue::of_u32(1)), Error);
}

TEST(GgufReader, ReadsFileWrittenByLlamaCppTooling) {
  const auto path = testing::shared_data_root() / "gguf/llama-2-tiny-random.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared data missing: " << path;
  auto f = GgufFile::open(path.string());
  EXPECT_EQ(f->architecture(), "llama");
  EXPECT_EQ(f->tensors().size(), 12u);
  EXPECT_EQ(f->get_array("tokenizer.ggml.tokens", GgufType::STRING)->count, 32000u);
  EXPECT_EQ(f->tensor("token_embd.weight")->type, TensorType::F16);
}

}  // namespace
}  // namespace bitnet
