// Lossless moves of ternary tensors between I2_S, TQ2_0, TQ1_0, F16 and F32, and the refusals where the
// target cannot hold the scales.
#include "bitnet/convert/ternary_tensor.h"

#include <random>

#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/format/gguf.h"
#include "bitnet/format/ternary.h"
#include "test_util.h"

namespace bitnet {
namespace {

TernaryTensor random_tensor(uint64_t cols, uint64_t rows, float scale, uint32_t seed) {
  TernaryTensor t;
  t.name = "blk.0.attn_q.weight";
  t.cols = cols;
  t.rows = rows;
  std::mt19937 rng(seed);
  t.codes.resize(cols * rows);
  for (int8_t& c : t.codes) c = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  t.scale = scale;
  return t;
}

// Encodes as `type` and reads it back through the GGUF view.
TernaryTensor round_trip(const TernaryTensor& t, TensorType type, bool allow_rounding, std::vector<uint8_t>* bytes) {
  uint64_t nbytes = 0;
  EXPECT_TRUE(tensor_nbytes(type, t.n(), &nbytes));
  bytes->assign(nbytes, 0);
  encode_ternary(t, type, allow_rounding, bytes->data());
  GgufTensorInfo info;
  info.name = t.name;
  info.n_dims = 2;
  info.ne = {t.cols, t.rows, 1, 1};
  info.type = type;
  info.nbytes = nbytes;
  info.data = bytes->data();
  return ternary_from_gguf(info);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TernaryTensor, EveryTypeRoundTripsCodesAndScale) {
  const TernaryTensor t = random_tensor(512, 6, 1.5078125f, 1);  // an fp16 value
  std::vector<uint8_t> i2s, bytes;
  round_trip(t, TensorType::I2_S, false, &i2s);
  for (TensorType type : {TensorType::TQ1_0, TensorType::TQ2_0, TensorType::F16, TensorType::F32, TensorType::I2_S}) {
    const TernaryTensor back = round_trip(t, type, false, &bytes);
    EXPECT_EQ(back.codes, t.codes) << type_traits(type).name;
    std::vector<uint8_t> again;
    round_trip(back, TensorType::I2_S, false, &again);
    EXPECT_EQ(again, i2s) << type_traits(type).name;  // byte-identical I2_S after the trip
  }
}

TEST(TernaryTensor, PackedLayoutsMatchTheCodecs) {
  const TernaryTensor t = random_tensor(256, 2, 1.25f, 2);
  std::vector<uint8_t> bytes;
  round_trip(t, TensorType::TQ2_0, false, &bytes);
  int8_t w[256];
  tq2_decode_block(bytes.data() + 66, w);  // second row = second block
  EXPECT_EQ(std::vector<int8_t>(w, w + 256), std::vector<int8_t>(t.codes.begin() + 256, t.codes.end()));
  EXPECT_EQ(fp16_to_f32(tq_block_scale(bytes.data(), 66)), 1.25f);
  round_trip(t, TensorType::I2_S, false, &bytes);
  EXPECT_EQ(i2s_scale(bytes.data(), 512), 1.25f);
  EXPECT_EQ(bytes.size(), 512u / 4 + 32);
}

TEST(TernaryTensor, Float32ScaleNeedsRoundingForFp16Targets) {
  const TernaryTensor t = random_tensor(256, 4, 1.2345678f, 3);
  std::vector<uint8_t> bytes;
  for (TensorType type : {TensorType::TQ2_0, TensorType::TQ1_0, TensorType::F16}) {
    const std::string e = error_of([&] { round_trip(t, type, false, &bytes); });
    EXPECT_NE(e.find("not an fp16 value"), std::string::npos) << e;
    EXPECT_NE(e.find("blk.0.attn_q.weight"), std::string::npos) << e;
    const TernaryTensor back = round_trip(t, type, true, &bytes);
    EXPECT_EQ(back.codes, t.codes);
  }
  EXPECT_EQ(round_trip(t, TensorType::F32, false, &bytes).scale, 1.2345678f);  // F32 and I2_S hold it exactly
  EXPECT_EQ(round_trip(t, TensorType::I2_S, false, &bytes).scale, 1.2345678f);
}

TEST(TernaryTensor, BlockScalesToI2s) {
  TernaryTensor t = random_tensor(256, 4, 0, 4);
  t.per_block = true;
  t.block_d = {f32_to_fp16(1.5f), f32_to_fp16(1.5f), f32_to_fp16(1.5f), f32_to_fp16(1.5f)};
  std::vector<uint8_t> bytes;
  EXPECT_EQ(round_trip(t, TensorType::I2_S, false, &bytes).scale, 1.5f);
  // An all-zero block's scale does not matter.
  std::fill(t.codes.begin() + 512, t.codes.begin() + 768, 0);
  t.block_d[2] = f32_to_fp16(0.0f);
  EXPECT_EQ(round_trip(t, TensorType::I2_S, false, &bytes).scale, 1.5f);
  t.block_d[3] = f32_to_fp16(1.25f);
  const std::string e = error_of([&] { round_trip(t, TensorType::I2_S, true, &bytes); });
  EXPECT_NE(e.find("block scales differ"), std::string::npos) << e;
  EXPECT_NE(e.find("block 3"), std::string::npos) << e;
  // Per-block scales survive TQ and float forms.
  const TernaryTensor f = round_trip(t, TensorType::F16, false, &bytes);
  ASSERT_TRUE(f.per_block);
  EXPECT_EQ(f.block_d[3], t.block_d[3]);
  EXPECT_EQ(round_trip(t, TensorType::TQ1_0, false, &bytes).block_d, t.block_d);
}

TEST(TernaryTensor, FloatTensorsMustBeTernary) {
  std::vector<float> x(256, 0.0f);
  x[0] = 1.5f;
  x[1] = -1.5f;
  x[7] = 0.75f;
  GgufTensorInfo info;
  info.name = "blk.1.ffn_up.weight";
  info.n_dims = 2;
  info.ne = {256, 1, 1, 1};
  info.type = TensorType::F32;
  info.data = reinterpret_cast<const uint8_t*>(x.data());
  const std::string e = error_of([&] { ternary_from_gguf(info); });
  EXPECT_NE(e.find("element 7"), std::string::npos) << e;
  EXPECT_NE(e.find("blk.1.ffn_up.weight"), std::string::npos) << e;
  x[7] = -1.5f;
  const TernaryTensor t = ternary_from_gguf(info);
  EXPECT_EQ(t.scale, 1.5f);
  EXPECT_EQ(t.codes[7], -1);
}

TEST(TernaryTensor, InvalidCodesAreReported) {
  std::vector<uint8_t> bytes(128 / 4 + 32, 0x55);  // all code 1 (zero)
  bytes[5] = 0xFF;                                  // code 3
  GgufTensorInfo info;
  info.name = "blk.0.attn_k.weight";
  info.n_dims = 2;
  info.ne = {128, 1, 1, 1};
  info.type = TensorType::I2_S;
  info.data = bytes.data();
  const std::string e = error_of([&] { ternary_from_gguf(info); });
  EXPECT_NE(e.find("code 3"), std::string::npos) << e;
  EXPECT_NE(e.find("blk.0.attn_k.weight"), std::string::npos) << e;
}

TEST(TernaryTensor, AbsmeanRule) {
  // s = mean|W| = 1.0; W/s rounds half to even: 0.5 -> 0, 1.5 -> 1 (clamped), -0.6 -> -1.
  const std::vector<float> w = {0.5f, 1.5f, -0.6f, -0.4f, 3.0f, -0.5f, 0.0f, 1.5f};
  TernaryTensor t;
  t.name = "x";
  t.cols = 8;
  t.rows = 1;
  ternarize_absmean(t, [&](uint64_t i) { return w[i]; });
  EXPECT_FLOAT_EQ(t.scale, 1.0f);
  EXPECT_EQ(t.codes, (std::vector<int8_t>{0, 1, -1, 0, 1, 0, 0, 1}));
  const std::vector<float> zero(8, 0.0f);
  ternarize_absmean(t, [&](uint64_t i) { return zero[i]; });
  EXPECT_FLOAT_EQ(t.scale, 1e-5f);  // clamp
  const std::vector<float> nan = {0, 0, 0, 0, 0, 0, 0, std::nanf("")};
  EXPECT_THROW(ternarize_absmean(t, [&](uint64_t i) { return nan[i]; }), Error);
}

}  // namespace
}  // namespace bitnet
