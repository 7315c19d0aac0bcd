#include <gtest/gtest.h>

#include "bitnet/base/error.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/tensor_stats.h"
#include "bitnet/model/arch.h"
#include "bitnet/model/synth.h"
#include "bitnet/model/vocab_gguf.h"
#include "bitnet/engine/session.h"
#include "test_util.h"

namespace bitnet {
namespace {

struct Synth {
  std::vector<uint8_t> bytes;
  std::unique_ptr<GgufFile> file;
};

Synth make(SynthOptions o) {
  Synth s;
  s.bytes = synth_model(o).to_bytes();
  s.file = GgufFile::parse(s.bytes.data(), s.bytes.size(), "synth");
  return s;
}

std::vector<float> values(const GgufTensorInfo& t) {
  std::vector<float> v(t.n_elements());
  dequantize(t, 0, v.size(), v.data());
  return v;
}

TEST(Synth, SameSeedSameTernaryWeightsInEveryType) {
  SynthOptions o;
  o.seed = 42;
  o.weight_type = TensorType::I2_S;
  const Synth ref = make(o);
  for (TensorType t : {TensorType::TQ2_0, TensorType::TQ1_0, TensorType::F32, TensorType::F16, TensorType::BF16}) {
    o.weight_type = t;
    const Synth other = make(o);
    for (const GgufTensorInfo& a : ref.file->tensors()) {
      const GgufTensorInfo* b = other.file->tensor(a.name);
      ASSERT_NE(b, nullptr) << a.name;
      if (a.type == TensorType::I2_S) {
        EXPECT_EQ(b->type, t);
      }
      EXPECT_EQ(values(a), values(*b)) << a.name << " in " << type_traits(t).name;
    }
  }
}

TEST(Synth, DifferentSeedsDiffer) {
  SynthOptions o;
  o.seed = 1;
  const Synth a = make(o);
  o.seed = 2;
  const Synth b = make(o);
  EXPECT_NE(values(*a.file->tensor("blk.0.attn_q.weight")), values(*b.file->tensor("blk.0.attn_q.weight")));
}

TEST(Synth, RealisticStatistics) {
  SynthOptions o;
  o.n_layers = 6;
  const Synth s = make(o);
  const ModelConfig c = ModelConfig::from_gguf(*s.file);
  EXPECT_EQ(c.dim, 256u);
  EXPECT_EQ(c.n_layers, 6u);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(c.act, Activation::ReluSqr);
  for (const GgufTensorInfo& t : s.file->tensors()) {
    const TensorStats st = tensor_stats(t);
    EXPECT_EQ(st.nonfinite, 0u) << t.name;
    if (t.type == TensorType::I2_S) {
      const double zero = double(st.codes[1]) / st.count;
      EXPECT_NEAR(zero, 1.0 / 3, 0.02) << t.name;
      EXPECT_GE(st.scale_median, 1.0);
      EXPECT_LT(st.scale_median, 2.0);
    }
  }
  EXPECT_NEAR(tensor_stats(*s.file->tensor("blk.2.attn_norm.weight")).mean, 0.02, 0.003);
  EXPECT_NEAR(tensor_stats(*s.file->tensor("blk.2.ffn_norm.weight")).mean, 1.35, 0.05);
  // Sub-norms grow with depth.
  EXPECT_LT(tensor_stats(*s.file->tensor("blk.0.attn_sub_norm.weight")).mean_abs,
            tensor_stats(*s.file->tensor("blk.4.attn_sub_norm.weight")).mean_abs / 10);
  EXPECT_LT(tensor_stats(*s.file->tensor("blk.0.ffn_sub_norm.weight")).mean_abs,
            tensor_stats(*s.file->tensor("blk.5.ffn_sub_norm.weight")).mean_abs);
}

TEST(Synth, TinyVocabularyIsConsistent) {
  const Synth s = make(SynthOptions{});
  const VocabData v = vocab_from_gguf(*s.file);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_TRUE(v.pre.empty());  // like the official 2B-4T file
  EXPECT_EQ(v.merges.size(), 256u);
  EXPECT_GE(v.bos_id, 0);
  EXPECT_EQ(v.tokens[v.bos_id], "<|begin_of_text|>");
  EXPECT_EQ(s.file->tensor("token_embd.weight")->ne[1], v.tokens.size());
}

TEST(Synth, ArchitecturesAndTypes) {
  SynthOptions o;
  o.arch = "bitnet";
  o.weight_type = TensorType::TQ2_0;
  o.activation = "relu2";
  Synth b = make(o);
  EXPECT_EQ(ModelConfig::from_gguf(*b.file).act, Activation::ReluSqr);
  EXPECT_EQ(b.file->get_string("tokenizer.ggml.pre"), "llama-bpe");
  o.arch = "llama";
  o.activation.clear();
  o.output_tensor = true;
  o.weight_type = TensorType::TQ1_0;
  o.embd_type = TensorType::Q8_0;
  Synth l = make(o);
  EXPECT_NE(l.file->tensor("output.weight"), nullptr);
  EXPECT_EQ(l.file->tensor("blk.0.attn_sub_norm.weight"), nullptr);
  EXPECT_FALSE(ModelConfig::from_gguf(*l.file).tied_output);
}

TEST(Synth, RejectsImpossibleOptions) {
  SynthOptions o;
  o.weight_type = TensorType::TQ2_0;
  o.dim = 384;  // not a multiple of 256
  EXPECT_THROW(synth_model(o), Error);
  o = SynthOptions{};
  o.arch = "llama";  // I2_S only exists for bitnet-b1.58
  EXPECT_THROW(synth_model(o), Error);
  o = SynthOptions{};
  o.n_heads = 3;
  EXPECT_THROW(synth_model(o), Error);
  o = SynthOptions{};
  o.arch = "bitnet";
  o.weight_type = TensorType::TQ2_0;
  o.output_tensor = true;
  EXPECT_THROW(synth_model(o), Error);
}

TEST(Synth, Llama3Vocabulary) {
  const auto path = testing::shared_data_root() / "tokenizer/llama3/tokenizer.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared data missing: " << path;
  SynthOptions o;
  o.vocab = "llama3";
  o.tokenizer_json = path.string();
  o.n_layers = 1;
  const Synth s = make(o);
  const VocabData v = vocab_from_gguf(*s.file);
  EXPECT_EQ(v.tokens.size(), 128256u);
  EXPECT_EQ(v.merges.size(), 280147u);
  EXPECT_EQ(v.bos_id, 128000);
  EXPECT_EQ(s.file->tensor("token_embd.weight")->ne[1], 128256u);
}

}  // namespace
}  // namespace bitnet

namespace bitnet {
namespace {

// The original 2B-4T upload used architecture "bitnet-25" (keys "bitnet-25.*"); it is the same graph.
TEST(Architectures, Bitnet25IsTheSameGraphAsBitnetB158) {
  testing::ScratchDir dir;
  SynthOptions o;
  o.n_layers = 2;
  const GgufWriter w = synth_model(o);
  const auto bytes = w.to_bytes();
  const auto f = GgufFile::parse(bytes.data(), bytes.size(), "synth");
  GgufWriter renamed;
  for (const GgufKV& kv : f->kvs()) {
    std::string key = kv.key;
    if (key.rfind("bitnet-b1.58.", 0) == 0) key = "bitnet-25." + key.substr(std::string("bitnet-b1.58.").size());
    renamed.set(key, key == "general.architecture" ? GgufValue::of_string("bitnet-25") : kv.value);
  }
  for (const GgufTensorInfo& t : f->tensors())
    renamed.add_tensor(t.name, t.type, std::vector<uint64_t>(t.ne.begin(), t.ne.begin() + t.n_dims),
                       std::vector<uint8_t>(t.data, t.data + t.nbytes));
  const std::string a = (dir / "b158.gguf").string(), b = (dir / "b25.gguf").string();
  w.write(a);
  renamed.write(b);
  const auto fb = GgufFile::open(b);
  const ModelConfig c = ModelConfig::from_gguf(*fb);
  EXPECT_EQ(c.info.arch, Arch::BitnetB158);
  EXPECT_EQ(c.act, Activation::ReluSqr);
  EXPECT_EQ(c.n_layers, 2u);
  SessionOptions so;
  so.n_ctx = 64;
  Session sa(a, so), sb(b, so);
  std::vector<float> la, lb;
  sa.eval({1, 2, 3, 4}, &la, nullptr);
  sb.eval({1, 2, 3, 4}, &lb, nullptr);
  EXPECT_EQ(la, lb);
}

}  // namespace
}  // namespace bitnet
