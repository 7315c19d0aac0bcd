// GgufValue / GgufArray helpers shared by the reader and the writer.
#include <cstring>

#include "bitnet/base/error.h"
#include "bitnet/format/gguf.h"

namespace bitnet {

const char* gguf_type_name(GgufType t) {
  static const char* const kNames[kGgufTypeCount] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                     "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < kGgufTypeCount ? kNames[i] : "invalid";
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::STRING: case GgufType::ARRAY: return 0;
  }
  return 0;
}

namespace {
template <typename T>
T load(const std::vector<uint8_t>& raw, uint64_t i) {
  T v;
  std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
  return v;
}
}  // namespace

bool GgufArray::is_integer() const {
  switch (elem) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}
bool GgufArray::is_float() const { return elem == GgufType::F32 || elem == GgufType::F64; }

int64_t GgufArray::int_at(uint64_t i) const {
  switch (elem) {
    case GgufType::U8: case GgufType::BOOL: return load<uint8_t>(raw, i);
    case GgufType::I8: return load<int8_t>(raw, i);
    case GgufType::U16: return load<uint16_t>(raw, i);
    case GgufType::I16: return load<int16_t>(raw, i);
    case GgufType::U32: return load<uint32_t>(raw, i);
    case GgufType::I32: return load<int32_t>(raw, i);
    case GgufType::U64: return static_cast<int64_t>(load<uint64_t>(raw, i));
    case GgufType::I64: return load<int64_t>(raw, i);
    case GgufType::F32: return static_cast<int64_t>(load<float>(raw, i));
    case GgufType::F64: return static_cast<int64_t>(load<double>(raw, i));
    default: return 0;
  }
}

double GgufArray::float_at(uint64_t i) const {
  if (elem == GgufType::F32) return load<float>(raw, i);
  if (elem == GgufType::F64) return load<double>(raw, i);
  return static_cast<double>(int_at(i));
}

GgufValue GgufValue::scalar_u(GgufType t, uint64_t v) {
  GgufValue out;
  out.type = t;
  out.u = v;
  return out;
}
GgufValue GgufValue::scalar_i(GgufType t, int64_t v) {
  GgufValue out;
  out.type = t;
  out.i = v;
  return out;
}
GgufValue GgufValue::of_f32(float v) {
  GgufValue out;
  out.type = GgufType::F32;
  out.f = v;
  return out;
}
GgufValue GgufValue::of_f64(double v) {
  GgufValue out;
  out.type = GgufType::F64;
  out.f = v;
  return out;
}
GgufValue GgufValue::of_string(std::string v) {
  GgufValue out;
  out.type = GgufType::STRING;
  out.s = std::move(v);
  return out;
}
GgufValue GgufValue::of_strings(std::vector<std::string> v) {
  GgufArray a;
  a.elem = GgufType::STRING;
  a.count = v.size();
  a.strings = std::move(v);
  return of_array(std::move(a));
}
GgufValue GgufValue::of_f32s(const std::vector<float>& v) {
  GgufArray a;
  a.elem = GgufType::F32;
  a.count = v.size();
  a.raw.resize(v.size() * 4);
  if (!v.empty()) std::memcpy(a.raw.data(), v.data(), a.raw.size());
  return of_array(std::move(a));
}
GgufValue GgufValue::of_i32s(const std::vector<int32_t>& v) {
  GgufArray a;
  a.elem = GgufType::I32;
  a.count = v.size();
  a.raw.resize(v.size() * 4);
  if (!v.empty()) std::memcpy(a.raw.data(), v.data(), a.raw.size());
  return of_array(std::move(a));
}
GgufValue GgufValue::of_array(GgufArray a) {
  GgufValue out;
  out.type = GgufType::ARRAY;
  out.arr = std::move(a);
  return out;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

std::optional<int64_t> GgufValue::as_int() const {
  switch (type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: return static_cast<int64_t>(u);
    case GgufType::U64:
      if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
      return static_cast<int64_t>(u);
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64: return i;
    default: return std::nullopt;
  }
}

std::optional<double> GgufValue::as_float() const {
  if (is_float()) return f;
  if (type == GgufType::U64) return static_cast<double>(u);
  if (auto v = as_int()) return static_cast<double>(*v);
  return std::nullopt;
}

std::string GgufTensorInfo::shape_string() const {
  std::string s = "[";
  for (uint32_t d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
  return s + "]";
}

}  // namespace bitnet
