// A GGUF with every metadata value type, nested arrays and several tensor types; shared by the round-trip
// test and by the fixture writer that the independent-parser comparison (@huggingface/gguf) reads.
#pragma once

#include "bitnet/format/gguf.h"

namespace bitnet::testing {

inline GgufWriter all_types_writer(uint32_t alignment) {
  GgufWriter w(alignment);
  w.set("general.architecture", GgufValue::of_string("llama"));
  w.set("t.u8", GgufValue::of_u8(200));
  w.set("t.i8", GgufValue::of_i8(-100));
  w.set("t.u16", GgufValue::of_u16(60000));
  w.set("t.i16", GgufValue::of_i16(-30000));
  w.set("t.u32", GgufValue::of_u32(4000000000u));
  w.set("t.i32", GgufValue::of_i32(-2000000000));
  w.set("t.u64", GgufValue::of_u64(18000000000000000000ull));
  w.set("t.i64", GgufValue::of_i64(-9000000000000000000ll));
  w.set("t.f32", GgufValue::of_f32(0.1f));
  w.set("t.f64", GgufValue::of_f64(0.1));
  w.set("t.bool", GgufValue::of_bool(true));
  w.set("t.string", GgufValue::of_string("caf\xc3\xa9 \xf0\x9f\x98\x80"));
  w.set("t.strings", GgufValue::of_strings({"a", "", "\xe4\xb8\xad"}));
  w.set("t.f32s", GgufValue::of_f32s({1.5f, -2.25f}));
  w.set("t.i32s", GgufValue::of_i32s({1, -2, 3}));
  GgufArray inner1, inner2, outer;
  inner1.elem = GgufType::U16;
  inner1.count = 2;
  inner1.raw = {1, 0, 2, 0};
  inner2.elem = GgufType::STRING;
  inner2.count = 1;
  inner2.strings = {"x"};
  outer.elem = GgufType::ARRAY;
  outer.count = 2;
  outer.arrays = {inner1, inner2};
  w.set("t.nested", GgufValue::of_array(outer));
  w.set("t.empty", GgufValue::of_strings({}));
  std::vector<uint8_t> f32(4 * 3 * 2);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<uint8_t>(i);
  w.add_tensor("f32", TensorType::F32, {3, 2}, f32);
  w.add_tensor("q8", TensorType::Q8_0, {64}, std::vector<uint8_t>(68, 7));
  w.add_tensor("tq2", TensorType::TQ2_0, {256, 2}, std::vector<uint8_t>(132, 0x55));
  w.add_tensor("tq1", TensorType::TQ1_0, {256}, std::vector<uint8_t>(54, 1));
  w.add_tensor("gen", TensorType::F16, {5}, [](uint8_t* dst, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(0xA0 + i);
  });
  return w;
}

}  // namespace bitnet::testing
