// Randomly corrupted model files through the library, in process: thousands of trials with a fixed seed.
// Each trial writes a damaged copy of a valid synthetic model and runs what the commands run: open +
// validate (bitnet inspect / validate), Session (Model::load, tokenizer, KV cache) + a 2-token forward
// pass with logits (bitnet eval), and tokenize + evaluate a short prompt. Every trial must either
// succeed or throw bitnet::Error with a one-line message; any other exception fails the test, and
// under asan-ubsan any memory error or undefined behaviour aborts it. cli_corrupt_test.py runs a few
// hundred trials through the real binary as well.
//
// BITNET_ROBUST_TRIALS overrides the number of trials (default 6000: about 12 s under asan-ubsan).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <exception>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bitnet/base/error.h"
#include "bitnet/engine/session.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/model.h"
#include "bitnet/model/synth.h"
#include "bitnet/model/validate.h"
#include "test_util.h"

namespace bitnet {
namespace {

struct Base {
  std::string name;
  std::vector<uint8_t> bytes;
  uint64_t header_end;  // start of the tensor data: corruption before it hits metadata and tensor infos
};

Base make_base(const std::string& name, SynthOptions o) {
  o.n_ctx = 64;
  o.seed = 7;
  o.write_pre = true;  // no "file has no tokenizer.ggml.pre" note per trial
  Base b{name, synth_model(o).to_bytes(), 0};
  b.header_end = GgufFile::parse(b.bytes.data(), b.bytes.size(), name)->data_offset();
  return b;
}

std::vector<Base> bases() {
  std::vector<Base> out;
  SynthOptions a;  // bitnet-b1.58, I2_S, Q8_0 embedding
  a.dim = 128, a.hidden_dim = 256, a.n_layers = 1, a.n_heads = 2, a.n_kv_heads = 1;
  a.embd_type = TensorType::Q8_0;
  out.push_back(make_base("b158_i2s", a));
  SynthOptions b;  // llama, TQ2_0 (repacked at load), untied output
  b.arch = "llama", b.dim = 256, b.hidden_dim = 256, b.n_layers = 1, b.n_heads = 4, b.n_kv_heads = 2;
  b.weight_type = TensorType::TQ2_0, b.embd_type = TensorType::Q8_0, b.output_tensor = true;
  out.push_back(make_base("llama_tq2", b));
  SynthOptions c;  // bitnet (llama.cpp), F16 weights, activation key
  c.arch = "bitnet", c.dim = 32, c.hidden_dim = 64, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1;
  c.weight_type = TensorType::F16, c.activation = "relu2", c.write_pre = true;
  out.push_back(make_base("bitnet_f16", c));
  return out;
}

// One damaged copy. Most trials hit the header (where every field is a count, an offset or a type);
// the rest hit anywhere, truncate, or plant an extreme 32/64-bit value.
std::vector<uint8_t> corrupt(const Base& b, std::mt19937_64& rng, std::string& how) {
  std::vector<uint8_t> f = b.bytes;
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  const uint64_t kind = pick(20);
  if (kind < 10) {  // 1-8 random bytes in the header
    const uint64_t n = 1 + pick(8);
    for (uint64_t k = 0; k < n; ++k) f[pick(b.header_end)] = static_cast<uint8_t>(pick(256));
    how = "header bytes";
  } else if (kind < 14) {  // anywhere
    const uint64_t n = 1 + pick(8);
    for (uint64_t k = 0; k < n; ++k) f[pick(f.size())] = static_cast<uint8_t>(pick(256));
    how = "bytes anywhere";
  } else if (kind < 16) {  // truncation
    f.resize(pick(f.size()));
    how = "truncated";
  } else {  // an extreme value over 4 or 8 header bytes
    static const uint64_t kValues[] = {0, 1, 0x7f, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 0x100000000ull,
                                       0x7fffffffffffffffull, 0xffffffffffffffffull, 0x8000000000000000ull, 4097};
    const uint64_t v = kValues[pick(std::size(kValues))];
    const uint64_t width = pick(2) ? 8 : 4;
    const uint64_t at = pick(b.header_end - width);
    for (uint64_t k = 0; k < width; ++k) f[at + k] = static_cast<uint8_t>(v >> (8 * k));
    how = "extreme value";
  }
  return f;
}

// What the commands do with a file, in process. Returns the stage that rejected it, or "ok".
std::string run_trial(const std::string& path) {
  std::unique_ptr<GgufFile> f;
  try {
    f = GgufFile::open(path);  // bitnet inspect
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "multi-line error: " << e.what();
    return "open";
  }
  try {
    (void)validate_model(*f);  // bitnet validate
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "multi-line error: " << e.what();
    return "validate";
  }
  try {  // bitnet eval --tokens 1,2
    SessionOptions o;
    o.n_ctx = 16;
    o.n_threads = 1;
    Session s(path, o);
    std::vector<float> logits;
    s.eval({1 % s.n_vocab(), 2 % s.n_vocab()}, &logits, nullptr);
    if (s.has_tokenizer()) {  // bitnet run -p: tokenize, then evaluate the prompt
      const Tokenizer& tok = s.tokenizer();
      std::vector<int32_t> ids = tok.encode("Hi <|eot_id|> caf\xc3\xa9", tok.add_bos_default(), true);
      if (ids.size() > 8) ids.resize(8);
      (void)tok.decode(ids);
      if (!ids.empty()) s.eval(ids, nullptr, &logits);
    }
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "multi-line error: " << e.what();
    return "load/run";
  }
  return "ok";
}

TEST(Robustness, CorruptedModelsNeverCrash) {
  int trials = 6000;
  if (const char* env = std::getenv("BITNET_ROBUST_TRIALS")) trials = std::atoi(env);
  const std::vector<Base> all = bases();
  bitnet::testing::ScratchDir dir;
  const std::string path = (dir / "m.gguf").string();
  std::mt19937_64 rng(20240601);
  std::map<std::string, int> outcomes;
  for (int t = 0; t < trials; ++t) {
    const Base& b = all[static_cast<size_t>(t) % all.size()];
    std::string how;
    const std::vector<uint8_t> bytes = corrupt(b, rng, how);
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    try {
      ++outcomes[run_trial(path)];
    } catch (const std::exception& e) {
      ADD_FAILURE() << "trial " << t << " (" << b.name << ", " << how << "): exception other than bitnet::Error: "
                    << e.what();
    }
    if (::testing::Test::HasFailure()) {
      const std::string keep = (std::filesystem::temp_directory_path() / "bitnet-robust-failure.gguf").string();
      std::filesystem::copy_file(path, keep, std::filesystem::copy_options::overwrite_existing);
      FAIL() << "trial " << t << " (" << b.name << ", " << how << ") failed; the input is kept at " << keep;
    }
  }
  std::string summary;
  for (const auto& [stage, n] : outcomes) summary += stage + "=" + std::to_string(n) + " ";
  std::printf("%d trials: %s\n", trials, summary.c_str());
  // The mix must exercise every stage: some damage is harmless (weights), some is caught at each step.
  EXPECT_GT(outcomes["ok"], trials / 20);
  EXPECT_GT(outcomes["open"], trials / 20);
}

// Scales are read at load time, not only by validate: a NaN scale is an error there too.
TEST(Robustness, NonFiniteScalesAreLoadErrors) {
  bitnet::testing::ScratchDir dir;
  const std::string path = (dir / "s.gguf").string();
  auto load_error = [&](const std::vector<uint8_t>& bytes) -> std::string {
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    try {
      Model::load(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "(loaded)";
  };
  for (const Base& b : bases()) {
    if (b.name == "bitnet_f16") continue;
    std::vector<uint8_t> bytes = b.bytes;
    const auto f = GgufFile::parse(bytes.data(), bytes.size(), b.name);
    const GgufTensorInfo* t = f->tensor("blk.0.ffn_up.weight");
    ASSERT_NE(t, nullptr);
    const uint64_t at = f->data_offset() + t->offset;
    if (t->type == TensorType::I2_S) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(bytes.data() + at + t->n_elements() / 4, &nan, 4);  // the per-tensor scale after the codes
      EXPECT_NE(load_error(bytes).find("has a non-finite I2_S scale"), std::string::npos) << b.name;
    } else {
      const uint16_t nan16 = 0x7E00;
      std::memcpy(bytes.data() + at + 64, &nan16, 2);  // d of the first TQ2_0 block (64 code bytes, then d)
      EXPECT_NE(load_error(bytes).find("non-finite block scale"), std::string::npos) << b.name;
    }
  }
}

}  // namespace
}  // namespace bitnet
