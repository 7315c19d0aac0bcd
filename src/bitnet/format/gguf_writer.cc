// GGUF v3 writer. Output is atomic: a temporary file is renamed into place only after a complete write.
#include <cstring>

#include "bitnet/base/atomic_file.h"
#include "bitnet/base/checked.h"
#include "bitnet/base/error.h"
#include "bitnet/base/utf8.h"
#include "bitnet/format/gguf.h"

namespace bitnet {

namespace {

struct ByteSink {
  std::vector<uint8_t> out;
  void write(const void* p, size_t n) {
    if (n == 0) return;
    const size_t old = out.size();
    out.resize(old + n);
    std::memcpy(out.data() + old, p, n);
  }
  void write_zeros(size_t n) { out.resize(out.size() + n, 0); }
  uint64_t offset() const { return out.size(); }
};

template <typename Sink, typename T>
void put(Sink& s, T v) {
  s.write(&v, sizeof(T));
}

template <typename Sink>
void put_string(Sink& s, const std::string& str) {
  put<Sink, uint64_t>(s, str.size());
  s.write(str.data(), str.size());
}

template <typename Sink>
void put_array(Sink& s, const GgufArray& a) {
  put<Sink, uint32_t>(s, static_cast<uint32_t>(a.elem));
  put<Sink, uint64_t>(s, a.count);
  if (a.elem == GgufType::STRING) {
    for (const auto& str : a.strings) put_string(s, str);
  } else if (a.elem == GgufType::ARRAY) {
    for (const auto& sub : a.arrays) put_array(s, sub);
  } else {
    s.write(a.raw.data(), a.raw.size());
  }
}

template <typename Sink>
void put_value(Sink& s, const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: case GgufType::BOOL: put<Sink, uint8_t>(s, static_cast<uint8_t>(v.u)); break;
    case GgufType::I8: put<Sink, int8_t>(s, static_cast<int8_t>(v.i)); break;
    case GgufType::U16: put<Sink, uint16_t>(s, static_cast<uint16_t>(v.u)); break;
    case GgufType::I16: put<Sink, int16_t>(s, static_cast<int16_t>(v.i)); break;
    case GgufType::U32: put<Sink, uint32_t>(s, static_cast<uint32_t>(v.u)); break;
    case GgufType::I32: put<Sink, int32_t>(s, static_cast<int32_t>(v.i)); break;
    case GgufType::U64: put<Sink, uint64_t>(s, v.u); break;
    case GgufType::I64: put<Sink, int64_t>(s, v.i); break;
    case GgufType::F32: put<Sink, float>(s, static_cast<float>(v.f)); break;
    case GgufType::F64: put<Sink, double>(s, v.f); break;
    case GgufType::STRING: put_string(s, v.s); break;
    case GgufType::ARRAY: put_array(s, v.arr); break;
  }
}

void check_array(const GgufArray& a, const std::string& key) {
  const size_t scalar = gguf_scalar_size(a.elem);
  const uint64_t have = a.elem == GgufType::STRING ? a.strings.size()
                        : a.elem == GgufType::ARRAY ? a.arrays.size()
                                                    : a.raw.size() / (scalar ? scalar : 1);
  if (have != a.count || (scalar && a.raw.size() != a.count * scalar))
    fail("GGUF writer: array '{}' declares {} elements but holds {}", key, a.count, have);
  for (const auto& sub : a.arrays) check_array(sub, key);
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (!is_pow2(alignment)) fail("GGUF writer: alignment {} is not a power of two", alignment);
  if (alignment != kGgufDefaultAlignment) set("general.alignment", GgufValue::of_u32(alignment));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key.empty() || !utf8_valid(key)) fail("GGUF writer: invalid metadata key \"{}\"", escape_for_message(key));
  if (value.type == GgufType::ARRAY) check_array(value.arr, key);
  if (key == "general.alignment") {
    if (value.type != GgufType::U32 || !is_pow2(value.u))
      fail("GGUF writer: general.alignment must be a u32 power of two");
    alignment_ = static_cast<uint32_t>(value.u);
  }
  for (auto& kv : kvs_)
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  kvs_.push_back(GgufKV{key, std::move(value), 0});
}

void GgufWriter::remove(const std::string& key) {
  std::erase_if(kvs_, [&](const GgufKV& kv) { return kv.key == key; });
  if (key == "general.alignment") alignment_ = kGgufDefaultAlignment;
}

const GgufValue* GgufWriter::find(std::string_view key) const {
  for (const auto& kv : kvs_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

void GgufWriter::add_tensor(const std::string& name, TensorType type, std::vector<uint64_t> ne,
                            std::vector<uint8_t> data) {
  add_tensor(name, type, std::move(ne), Producer());
  Tensor& t = tensors_.back();
  if (data.size() != t.nbytes)
    fail("GGUF writer: tensor '{}' of type {} needs {} bytes, got {}", name, type_traits(type).name, t.nbytes,
         data.size());
  t.data = std::move(data);
}

void GgufWriter::add_tensor(const std::string& name, TensorType type, std::vector<uint64_t> ne, Producer producer) {
  if (name.empty() || !utf8_valid(name)) fail("GGUF writer: invalid tensor name \"{}\"", escape_for_message(name));
  for (const auto& t : tensors_)
    if (t.name == name) fail("GGUF writer: duplicate tensor name '{}'", name);
  if (ne.empty() || ne.size() > 4) fail("GGUF writer: tensor '{}' has {} dimensions (1..4 allowed)", name, ne.size());
  uint64_t n = 1;
  for (uint64_t d : ne)
    if (!checked_mul(n, d, &n)) fail("GGUF writer: tensor '{}' shape overflows", name);
  const TypeTraits& tr = type_traits(type);
  uint64_t nbytes = 0;
  if (tr.refusal || ne[0] % tr.block_size != 0 || !tensor_nbytes(type, n, &nbytes))
    fail("GGUF writer: tensor '{}' cannot be stored as {} with row length {}", name, tr.name, ne[0]);
  tensors_.push_back(Tensor{name, type, std::move(ne), nbytes, {}, std::move(producer)});
}

uint64_t GgufWriter::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& t : tensors_) total += t.nbytes;
  return total;
}

template <typename Sink>
void GgufWriter::emit(Sink& s) const {
  s.write("GGUF", 4);
  put<Sink, uint32_t>(s, 3);
  put<Sink, uint64_t>(s, tensors_.size());
  put<Sink, uint64_t>(s, kvs_.size());
  for (const auto& kv : kvs_) {
    put_string(s, kv.key);
    put<Sink, uint32_t>(s, static_cast<uint32_t>(kv.value.type));
    put_value(s, kv.value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(s, t.name);
    put<Sink, uint32_t>(s, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put<Sink, uint64_t>(s, d);
    put<Sink, uint32_t>(s, type_traits(t.type).file_id);
    put<Sink, uint64_t>(s, offset);
    offset += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  s.write_zeros((alignment_ - s.offset() % alignment_) % alignment_);
  std::vector<uint8_t> buf;
  for (const auto& t : tensors_) {
    if (t.producer) {
      buf.assign(t.nbytes, 0);  // producers may leave padding (the I2_S tail) unwritten
      t.producer(buf.data(), t.nbytes);
      s.write(buf.data(), buf.size());
    } else {
      s.write(t.data.data(), t.data.size());
    }
    s.write_zeros((alignment_ - t.nbytes % alignment_) % alignment_);
  }
}

void GgufWriter::write(const std::string& path) const {
  AtomicFile out(path);
  emit(out);
  out.commit();
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  ByteSink s;
  emit(s);
  return std::move(s.out);
}

}  // namespace bitnet
