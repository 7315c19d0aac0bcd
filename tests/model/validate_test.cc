// bitnet validate on synthetic models: the real checkpoint's statistics are clean; the failure modes
// of the engine this project replaces (a gain scaled by 56, a misread scale) are flagged by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "bitnet/format/gguf.h"
#include "bitnet/model/synth.h"
#include "bitnet/model/validate.h"

namespace bitnet {
namespace {

struct Model {
  std::vector<uint8_t> bytes;
  uint8_t* data_of(const std::string& name) {
    auto f = GgufFile::parse(bytes.data(), bytes.size(), "m");
    return bytes.data() + (f->tensor(name)->data - bytes.data());
  }
  ValidationReport validate() {
    auto f = GgufFile::parse(bytes.data(), bytes.size(), "m");
    return validate_model(*f);
  }
};

Model make(SynthOptions o = {}) { return {synth_model(o).to_bytes()}; }

const Finding* find(const ValidationReport& r, Severity s, const std::string& subject) {
  for (const Finding& f : r.findings)
    if (f.severity == s && f.subject == subject) return &f;
  return nullptr;
}

std::string dump(const ValidationReport& r) {
  std::string s;
  for (const Finding& f : r.findings) s += std::string(severity_name(f.severity)) + " " + f.subject + ": " + f.message + "\n";
  return s;
}

void scale_floats(uint8_t* p, size_t n, float k) {
  for (size_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    v *= k;
    std::memcpy(p + 4 * i, &v, 4);
  }
}

TEST(Validate, RealStatisticsAreClean) {
  for (uint32_t layers : {2u, 8u, 30u}) {
    SynthOptions o;
    o.n_layers = layers;
    Model m = make(o);
    const ValidationReport r = m.validate();
    EXPECT_FALSE(r.has(Severity::Error)) << dump(r);
    // The only warning is the missing pre-tokenizer key, as in the official file.
    for (const Finding& f : r.findings) {
      if (f.severity == Severity::Warning) {
        EXPECT_EQ(f.subject, "tokenizer.ggml.pre") << dump(r);
      }
    }
  }
}

TEST(Validate, OtherArchitecturesAndTypesAreClean) {
  for (auto [arch, type] : {std::pair{"bitnet", TensorType::TQ2_0}, {"bitnet", TensorType::F32},
                            {"llama", TensorType::TQ1_0}, {"bitnet-b1.58", TensorType::TQ2_0}}) {
    SynthOptions o;
    o.arch = arch;
    o.weight_type = type;
    o.write_pre = true;
    Model m = make(o);
    const ValidationReport r = m.validate();
    EXPECT_FALSE(r.has(Severity::Error)) << arch << dump(r);
    EXPECT_FALSE(r.has(Severity::Warning)) << arch << dump(r);
  }
}

// The 2B-4T width (any depth): the real checkpoint's bands apply.
SynthOptions reference_width(uint32_t layers) {
  SynthOptions o;
  o.dim = 2560;
  o.hidden_dim = 6912;
  o.n_heads = 20;
  o.n_kv_heads = 5;
  o.n_layers = layers;
  return o;
}

TEST(Validate, RealStatisticsAreCleanAtTheReferenceWidth) {
  Model m = make(reference_width(2));
  const ValidationReport r = m.validate();
  EXPECT_FALSE(r.has(Severity::Error)) << dump(r);
  for (const Finding& f : r.findings) {
    if (f.severity == Severity::Warning) {
      EXPECT_EQ(f.subject, "tokenizer.ggml.pre") << dump(r);
    }
  }
}

TEST(Validate, AttnNormScaledBy56IsFlagged) {
  SynthOptions o = reference_width(4);
  Model m = make(o);
  scale_floats(m.data_of("blk.2.attn_norm.weight"), o.dim, 56.0f);
  const ValidationReport r = m.validate();
  const Finding* f = find(r, Severity::Error, "blk.2.attn_norm.weight");
  ASSERT_NE(f, nullptr) << dump(r);
  EXPECT_EQ(f->check, "norm-range");
  EXPECT_NE(f->message.find("mean |gamma| 1."), std::string::npos) << f->message;
  EXPECT_EQ(find(r, Severity::Error, "blk.1.attn_norm.weight"), nullptr);
}

// Another shape: absolute bands do not apply (a small trained model's gains are its own), but one layer's
// gain 56x off the others is still reported.
TEST(Validate, AttnNormScaledBy56IsAWarningAtOtherShapes) {
  SynthOptions o;
  o.n_layers = 4;
  Model m = make(o);
  scale_floats(m.data_of("blk.2.attn_norm.weight"), o.dim, 56.0f);
  const ValidationReport r = m.validate();
  EXPECT_FALSE(r.has(Severity::Error)) << dump(r);
  const Finding* f = find(r, Severity::Warning, "blk.2.attn_norm.weight");
  ASSERT_NE(f, nullptr) << dump(r);
  EXPECT_EQ(f->check, "norm-range");
  EXPECT_EQ(find(r, Severity::Warning, "blk.1.attn_norm.weight"), nullptr);
}

// Another shape whose gains and scales are nothing like 2B-4T's (all scaled alike, as a differently trained
// model's are): clean.
TEST(Validate, OtherShapesAreJudgedByConsistencyNotByTheReferenceBands) {
  SynthOptions o;
  o.n_layers = 4;
  Model m = make(o);
  for (int l = 0; l < 4; ++l)
    for (const char* kind : {"attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm"}) {
      const uint32_t n = std::string(kind) == "ffn_sub_norm" ? o.hidden_dim : o.dim;
      scale_floats(m.data_of("blk." + std::to_string(l) + "." + kind + ".weight"), n, 37.0f);
    }
  const ValidationReport r = m.validate();
  EXPECT_FALSE(r.has(Severity::Error)) << dump(r);
  for (const Finding& f : r.findings) {
    if (f.severity == Severity::Warning) {
      EXPECT_EQ(f.subject, "tokenizer.ggml.pre") << dump(r);
    }
  }
}

// At the 2B-4T width by the reference band, elsewhere by the distance from the file's other scales.
TEST(Validate, MisreadI2sScaleIsFlagged) {
  for (const SynthOptions& o : {reference_width(2), SynthOptions{}}) {
    Model m = make(o);
    const uint64_t n = uint64_t{o.dim} * o.dim;  // blk.1.attn_q: [dim, dim]
    const float bad = 1.688e-4f;
    std::memcpy(m.data_of("blk.1.attn_q.weight") + n / 4, &bad, 4);
    const ValidationReport r = m.validate();
    const Finding* f = find(r, Severity::Error, "blk.1.attn_q.weight");
    ASSERT_NE(f, nullptr) << dump(r);
    EXPECT_EQ(f->check, "ternary-scale");
    EXPECT_NE(f->message.find("0.0001688"), std::string::npos) << f->message;
  }
}

TEST(Validate, InvalidCodesNonFiniteAndNegativeScale) {
  Model m = make();
  m.data_of("blk.0.ffn_up.weight")[5] = 0xFF;  // four code-3 values
  float nan = NAN;
  std::memcpy(m.data_of("blk.0.ffn_norm.weight") + 8, &nan, 4);
  const float neg = -1.3f;
  std::memcpy(m.data_of("blk.1.attn_k.weight") + 256 * 64 / 4, &neg, 4);
  const ValidationReport r = m.validate();
  const Finding* codes = find(r, Severity::Error, "blk.0.ffn_up.weight");
  ASSERT_NE(codes, nullptr) << dump(r);
  EXPECT_NE(codes->message.find("4 invalid ternary codes"), std::string::npos) << codes->message;
  const Finding* nf = find(r, Severity::Error, "blk.0.ffn_norm.weight");
  ASSERT_NE(nf, nullptr) << dump(r);
  EXPECT_NE(nf->message.find("1 of 256 values are NaN"), std::string::npos);
  ASSERT_NE(find(r, Severity::Error, "blk.1.attn_k.weight"), nullptr) << dump(r);
}

TEST(Validate, MissingAndMisshapenTensors) {
  SynthOptions o;
  o.arch = "llama";
  o.weight_type = TensorType::TQ2_0;
  GgufWriter w = synth_model(o);
  // Rebuild without one tensor: write a file where blk.0.ffn_down has the wrong shape and attn_v is absent.
  const auto good = w.to_bytes();
  auto f = GgufFile::parse(good.data(), good.size(), "m");
  GgufWriter bad;
  for (const GgufKV& kv : f->kvs()) bad.set(kv.key, kv.value);
  for (const GgufTensorInfo& t : f->tensors()) {
    if (t.name == "blk.0.attn_v.weight") continue;
    std::vector<uint64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
    if (t.name == "blk.0.ffn_down.weight") std::swap(ne[0], ne[1]);
    bad.add_tensor(t.name, t.type, ne, std::vector<uint8_t>(t.data, t.data + t.nbytes));
  }
  Model m{bad.to_bytes()};
  const ValidationReport r = m.validate();
  const Finding* missing = find(r, Severity::Error, "blk.0.attn_v.weight");
  ASSERT_NE(missing, nullptr) << dump(r);
  EXPECT_EQ(missing->check, "tensor-missing");
  const Finding* shape = find(r, Severity::Error, "blk.0.ffn_down.weight");
  ASSERT_NE(shape, nullptr) << dump(r);
  EXPECT_NE(shape->message.find("[256, 768] does not match [768, 256]"), std::string::npos) << shape->message;
}

TEST(Validate, UnsupportedArchitectureIsAnError) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_string("mamba"));
  Model m{w.to_bytes()};
  const ValidationReport r = m.validate();
  ASSERT_TRUE(r.has(Severity::Error));
  EXPECT_NE(r.findings[0].message.find("'mamba' is not supported"), std::string::npos);
}

}  // namespace
}  // namespace bitnet
