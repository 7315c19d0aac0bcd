// Safetensors reader: valid files, sharded checkpoints, and hand-corrupted headers (every check names the
// file, the tensor and what was expected).
#include "bitnet/format/safetensors.h"

#include <cstring>
#include <fstream>

#include "bitnet/base/error.h"
#include "bitnet/convert/hf_config.h"
#include "test_util.h"

namespace bitnet {
namespace {

using bitnet::testing::ScratchDir;

// u64 header length + header (padded with spaces to 8 bytes) + data.
std::vector<uint8_t> file_bytes(const std::string& header, const std::vector<uint8_t>& data) {
  std::string h = header;
  while (h.size() % 8) h += ' ';
  const uint64_t n = h.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);  // (a std::string: g++ 12 misreads vector inserts)
  out += h;
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  return std::vector<uint8_t>(out.begin(), out.end());
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    SafetensorsFile::parse(bytes.data(), bytes.size(), "t.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void write_file(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

TEST(Safetensors, ReadsTensorsAndMetadata) {
  // bf16 1.0, -2.0 | f32 0.5 | u8 7 (unaligned on purpose)
  const std::vector<uint8_t> data = {0x80, 0x3F, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x3F, 7};
  const auto bytes = file_bytes(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
      R"("a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"c":{"dtype":"U8","shape":[],"data_offsets":[8,9]}})",
      data);
  auto f = SafetensorsFile::parse(bytes.data(), bytes.size(), "t.safetensors");
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[0].name, "a");  // data order
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const SafetensorsTensor* a = f->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape_string(), "[2]");
  EXPECT_EQ(a->at(0), 1.0f);
  EXPECT_EQ(a->at(1), -2.0f);
  EXPECT_EQ(f->find("b")->at(0), 0.5f);
  EXPECT_EQ(f->find("c")->n_elements, 1u);
  EXPECT_EQ(f->find("c")->at(0), 7.0f);
  EXPECT_EQ(f->find("c")->offset, f->data_offset() + 8);
  EXPECT_EQ(f->find("zz"), nullptr);
}

TEST(Safetensors, UnreadableDtypeOpensButIsRefusedOnUse) {
  const auto bytes = file_bytes(R"({"p":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", std::vector<uint8_t>(8));
  auto f = SafetensorsFile::parse(bytes.data(), bytes.size(), "t.safetensors");
  EXPECT_THROW(f->find("p")->at(0), Error);
}

TEST(Safetensors, HostileHeaders) {
  const std::vector<uint8_t> four(4);
  struct Case {
    std::string header;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "run past the data section"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "needs 8"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "reversed"},
      {R"({"x":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "unknown dtype 'F33'"},
      {R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "not a non-negative integer"},
      {R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "not a non-negative integer"},
      {R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "overflows"},
      {R"({"x":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})", "overflows"},
      {R"({"x":{"dtype":"F32","shape":[1]}})", "no \"data_offsets\""},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "[begin, end]"},
      {R"({"x":[1,2]})", "expected an object"},
      {R"([1,2])", "expected an object"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", "malformed"},
      {R"({"__metadata__":{"a":1}})", "expected a string"},
      {R"({"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"y":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
       "overlap"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of(file_bytes(c.header, four));
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.header << " -> " << e;
    EXPECT_NE(e.find("t.safetensors"), std::string::npos) << e;
  }
  EXPECT_NE(error_of(file_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", four)).find("tensor 'x'"),
            std::string::npos);
  // Length field: too short a file, a header longer than the file, non-UTF-8.
  EXPECT_NE(error_of({1, 2, 3}).find("too short"), std::string::npos);
  std::vector<uint8_t> big(16, 0);
  big[0] = 200;
  EXPECT_NE(error_of(big).find("exceeds"), std::string::npos);
  std::vector<uint8_t> bad = file_bytes("{\"\xff\":1}", {});
  EXPECT_NE(error_of(bad).find("UTF-8"), std::string::npos);
}

TEST(Safetensors, ShardedCheckpoint) {
  ScratchDir dir;
  const std::vector<uint8_t> d4(4);
  write_file(dir / "s1.safetensors", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d4));
  write_file(dir / "s2.safetensors", file_bytes(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d4));
  auto write_index = [&](const std::string& map) {
    std::ofstream(dir / "model.safetensors.index.json") << R"({"metadata":{},"weight_map":)" << map << "}";
  };
  write_index(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(dir.path());
  EXPECT_EQ(c.n_shards(), 2u);
  ASSERT_NE(c.find("b"), nullptr);
  EXPECT_EQ(*c.find("b")->file, (dir / "s2.safetensors").string());
  EXPECT_EQ(c.tensors().size(), 2u);
  EXPECT_EQ(c.total_bytes(), 8u);
  c.release(*c.find("a"));  // harmless on a mapped file
  EXPECT_EQ(c.find("a")->at(0), 0.0f);

  auto error = [&](const std::string& map) -> std::string {
    write_index(map);
    try {
      SafetensorsCheckpoint::open(dir.path());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error(R"({"a":"s2.safetensors","b":"s2.safetensors"})").find("does not hold it"), std::string::npos);
  write_file(dir / "s3.safetensors", file_bytes(R"({"c":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                                R"("d":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                                                std::vector<uint8_t>(8)));
  EXPECT_NE(error(R"({"a":"s1.safetensors","c":"s3.safetensors"})").find("holds tensor 'd'"), std::string::npos);
  EXPECT_NE(error(R"({"a":"../s1.safetensors"})").find("not a file name inside"), std::string::npos);
  EXPECT_NE(error(R"({"a":"missing.safetensors"})").find("missing.safetensors"), std::string::npos);
  EXPECT_NE(error(R"([])").find("weight_map"), std::string::npos);
  std::filesystem::remove(dir / "model.safetensors.index.json");
  EXPECT_THROW(SafetensorsCheckpoint::open(dir.path()), Error);  // neither model.safetensors nor an index
}

TEST(HfConfig, ReadsAndRefuses) {
  const std::string ok = R"({"architectures":["BitNetForCausalLM"],"hidden_size":2560,"intermediate_size":6912,
      "num_hidden_layers":30,"num_attention_heads":20,"num_key_value_heads":5,"vocab_size":128256,
      "max_position_embeddings":4096,"rope_theta":500000.0,"rms_norm_eps":1e-05,"hidden_act":"relu2",
      "tie_word_embeddings":true,"quantization_config":{"quant_method":"bitnet","linear_class":"autobitlinear",
      "quantization_mode":"offline"}})";
  const HfConfig c = parse_hf_config(ok, "config.json");
  EXPECT_EQ(c.dim, 2560u);
  EXPECT_EQ(c.n_kv_heads, 5u);
  EXPECT_EQ(c.hidden_act, "relu2");
  EXPECT_EQ(c.tie_word_embeddings, 1);
  EXPECT_EQ(c.linear_class, "autobitlinear");
  EXPECT_TRUE(c.bitnet_family);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);

  auto error = [](const std::string& text) -> std::string {
    try {
      parse_hf_config(text, "config.json");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = ok;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_NE(error(with("BitNetForCausalLM", "MistralForCausalLM")).find("not supported"), std::string::npos);
  EXPECT_NE(error(with("\"hidden_size\":2560,", "")).find("hidden_size"), std::string::npos);
  EXPECT_NE(error(with("\"num_key_value_heads\":5", "\"num_key_value_heads\":3")).find("multiple"), std::string::npos);
  EXPECT_NE(error(with("\"rope_theta\":500000.0", "\"rope_scaling\":{\"type\":\"linear\"}")).find("rope_scaling"),
            std::string::npos);
  EXPECT_NE(error(with("\"hidden_act\":\"relu2\"", "\"hidden_act\":7")).find("config.json"), std::string::npos);
  EXPECT_NE(error(with("\"vocab_size\":128256", "\"vocab_size\":-1")).find("vocab_size"), std::string::npos);
  EXPECT_NE(error("{").find("malformed"), std::string::npos);
}

}  // namespace
}  // namespace bitnet
