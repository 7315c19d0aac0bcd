// `synth --grow`: the trained model written in a larger shape computes what the trained model computes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bitnet/base/error.h"
#include "bitnet/convert/grow.h"
#include "bitnet/engine/session.h"
#include "bitnet/format/gguf.h"
#include "bitnet/model/arch.h"
#include "test_util.h"

namespace bitnet {
namespace {

struct Logits {
  std::vector<float> v;
  size_t vocab = 0;
};

// The text both models read: the start of a held-out novel (any English text does).
std::vector<int32_t> text_tokens(const Session& s) {
  std::string text =
      "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own amusement, never took up "
      "any book but the Baronetage; there he found occupation for an idle hour, and consolation in a distressed "
      "one; there his faculties were roused into admiration and respect, by contemplating the limited remnant of "
      "the earliest patents; there any unwelcome sensations, arising from domestic affairs changed naturally into "
      "pity and contempt as he turned over the almost endless creations of the last century.";
  return s.tokenizer().encode(text, true, false);
}

Logits eval(const std::string& path) {
  SessionOptions so;
  so.n_threads = 1;
  Session s(path, so);
  Logits l;
  l.vocab = static_cast<size_t>(s.n_vocab());
  s.eval(text_tokens(s), &l.v, nullptr);
  return l;
}

class Grow : public ::testing::Test {
 protected:
  static std::string grown(const GrowShape& to) {
    const auto src = GgufFile::open(BITNET_TRAINED_MODEL);
    std::string name = "grown";  // (not "g" + std::to_string(n) + ...: GCC 12 warns about -Wrestrict in it)
    name += std::to_string(n_++);
    name += ".gguf";
    const std::string out = (dir_ / name).string();
    grow_model(*src, to, 7, "grown").write(out);
    return out;
  }
  static const Logits& source() {
    static const Logits l = eval(BITNET_TRAINED_MODEL);
    return l;
  }
  inline static testing::ScratchDir dir_;
  inline static int n_ = 0;
};

// The trained model: d 256, ff 768, 5 layers, 4 query heads over 2 KV heads of 64.
constexpr GrowShape kSource{256, 768, 5, 4, 2};

TEST_F(Grow, SameShapeAndAddedLayersAreBitIdentical) {
  // Layers whose attn_output and ffn_down are zero add exactly 0.0 to the stream.
  for (const GrowShape& to : {kSource, GrowShape{256, 768, 9, 4, 2}}) {
    const std::string path = grown(to);
    EXPECT_EQ(eval(path).v, source().v) << to.n_layers << " layers";
  }
}

// Wider shapes compute the same function up to float rounding, which this model amplifies: its own logits
// with an F32 KV cache instead of F16 differ from the F16 ones by 0.30 at most and 0.018 on average. A wrong
// placement of a single head, channel or RoPE pair moves logits by whole units and the argmax most of the time.
void expect_same_function(const Logits& a, const Logits& b, const std::string& what) {
  ASSERT_EQ(a.v.size(), b.v.size()) << what;
  double sum = 0, worst = 0;
  size_t agree = 0, n = a.v.size() / a.vocab;
  for (size_t p = 0; p < n; ++p) {
    size_t ia = 0, ib = 0;
    for (size_t t = 0; t < a.vocab; ++t) {
      const size_t i = p * a.vocab + t;
      const double d = std::fabs(static_cast<double>(a.v[i]) - b.v[i]);
      sum += d, worst = std::max(worst, d);
      if (a.v[i] > a.v[p * a.vocab + ia]) ia = t;
      if (b.v[i] > b.v[p * a.vocab + ib]) ib = t;
    }
    agree += ia == ib;
  }
  const double mean = sum / static_cast<double>(a.v.size());
  EXPECT_LT(mean, 0.05) << what;
  EXPECT_LT(worst, 1.0) << what;
  EXPECT_GE(static_cast<double>(agree) / n, 0.95) << what << ": " << agree << " of " << n << " argmax equal";
}

TEST_F(Grow, WiderShapesComputeTheSameFunction) {
  struct Case {
    GrowShape to;
    const char* what;
  } cases[] = {
      {{512, 768, 5, 8, 4}, "residual stream x2 (padding), 8 heads of 64 over 4 KV heads"},
      {{256, 1536, 5, 4, 2}, "FFN x2"},
      {{512, 768, 5, 8, 2}, "GQA group 4: every source head twice, one copy feeding attn_output"},
      {{512, 768, 5, 4, 2}, "head size 128: RoPE pairs moved, theta squared, q scale x sqrt(2)"},
      {{768, 1536, 8, 6, 3}, "everything at once, head size 128, 3 KV heads"},
  };
  for (const Case& c : cases) expect_same_function(source(), eval(grown(c.to)), c.what);
}

TEST_F(Grow, WritesTheTargetShape) {
  const std::string path = grown({512, 1536, 7, 4, 2});
  const auto f = GgufFile::open(path);
  const ModelConfig c = ModelConfig::from_gguf(*f);
  EXPECT_EQ(c.dim, 512u);
  EXPECT_EQ(c.hidden_dim, 1536u);
  EXPECT_EQ(c.n_layers, 7u);
  EXPECT_EQ(c.n_heads, 4u);
  EXPECT_EQ(c.n_kv_heads, 2u);
  EXPECT_EQ(c.head_dim, 128u);
  EXPECT_EQ(c.rope_dim, 128u);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e8f);  // 10000^(128 / 64)
  EXPECT_EQ(f->tensor("blk.6.ffn_down.weight")->type, TensorType::I2_S);
  EXPECT_EQ(f->get_string("general.name"), "grown");
  // The vocabulary and chat template travel with the weights.
  const auto src = GgufFile::open(BITNET_TRAINED_MODEL);
  EXPECT_EQ(f->get_string("tokenizer.chat_template"), src->get_string("tokenizer.chat_template"));
  EXPECT_EQ(c.vocab_size, ModelConfig::from_gguf(*src).vocab_size);
}

TEST_F(Grow, RefusesShapesThatCannotHoldTheSource) {
  const auto src = GgufFile::open(BITNET_TRAINED_MODEL);
  auto message = [&](const GrowShape& to) -> std::string {
    try {
      grow_model(*src, to, 1, "x");
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message({128, 768, 5, 2, 1}).find("embedding length (128) is smaller"), std::string::npos);
  EXPECT_NE(message({256, 512, 5, 4, 2}).find("feed-forward length (512) is smaller"), std::string::npos);
  EXPECT_NE(message({256, 768, 4, 4, 2}).find("layer count (4) is smaller"), std::string::npos);
  EXPECT_NE(message({256, 768, 5, 8, 2}).find("head size (32) is smaller"), std::string::npos);
  EXPECT_NE(message({256, 768, 5, 4, 1}).find("KV head count (1) is smaller"), std::string::npos);
  EXPECT_NE(message({768, 768, 5, 6, 2}).find("GQA group (3 query heads per KV head) is not a multiple"),
            std::string::npos);
  EXPECT_NE(message({256, 768, 5, 3, 2}).find("do not divide"), std::string::npos);
}

}  // namespace
}  // namespace bitnet
