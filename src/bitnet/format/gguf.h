// GGUF v2/v3 reader and writer.
//
// File layout (little-endian):
//   "GGUF" u32 version  u64 n_tensors  u64 n_kv
//   n_kv x  { string key, u32 value_type, value }          string = u64 length + bytes (no NUL)
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
//   padding to general.alignment (default 32), then the data section; tensor offsets are relative to it.
// Arrays are { u32 element_type, u64 count, elements }, and may nest.
//
// The reader maps the file and validates every count, length and offset before use; a bad file gives
// bitnet::Error naming the file, the key or tensor, the byte offset, and expected vs actual.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/format/ggml_types.h"

namespace bitnet {

class MappedFile;

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
constexpr uint32_t kGgufTypeCount = 13;
const char* gguf_type_name(GgufType t);
size_t gguf_scalar_size(GgufType t);  // 0 for STRING and ARRAY

struct GgufArray {
  GgufType elem = GgufType::U8;
  uint64_t count = 0;
  std::vector<uint8_t> raw;           // scalar elements, packed little-endian (count * scalar size)
  std::vector<std::string> strings;   // STRING elements
  std::vector<GgufArray> arrays;      // ARRAY elements

  // Element i as a number (scalar element types only).
  int64_t int_at(uint64_t i) const;
  double float_at(uint64_t i) const;
  bool is_integer() const;
  bool is_float() const;
};

struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;    // U8, U16, U32, U64, BOOL
  int64_t i = 0;     // I8, I16, I32, I64
  double f = 0;      // F32, F64
  std::string s;     // STRING
  GgufArray arr;     // ARRAY

  static GgufValue of_u8(uint8_t v) { return scalar_u(GgufType::U8, v); }
  static GgufValue of_u16(uint16_t v) { return scalar_u(GgufType::U16, v); }
  static GgufValue of_u32(uint32_t v) { return scalar_u(GgufType::U32, v); }
  static GgufValue of_u64(uint64_t v) { return scalar_u(GgufType::U64, v); }
  static GgufValue of_i8(int8_t v) { return scalar_i(GgufType::I8, v); }
  static GgufValue of_i16(int16_t v) { return scalar_i(GgufType::I16, v); }
  static GgufValue of_i32(int32_t v) { return scalar_i(GgufType::I32, v); }
  static GgufValue of_i64(int64_t v) { return scalar_i(GgufType::I64, v); }
  static GgufValue of_f32(float v);
  static GgufValue of_f64(double v);
  static GgufValue of_bool(bool v) { return scalar_u(GgufType::BOOL, v ? 1 : 0); }
  static GgufValue of_string(std::string v);
  static GgufValue of_strings(std::vector<std::string> v);
  static GgufValue of_f32s(const std::vector<float>& v);
  static GgufValue of_i32s(const std::vector<int32_t>& v);
  static GgufValue of_array(GgufArray a);

  bool is_integer() const;  // U8..U64, I8..I64 (not BOOL)
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
  std::optional<int64_t> as_int() const;  // integers; U64 above INT64_MAX gives nullopt
  std::optional<double> as_float() const;  // floats and integers

 private:
  static GgufValue scalar_u(GgufType t, uint64_t v);
  static GgufValue scalar_i(GgufType t, int64_t v);
};

struct GgufKV {
  std::string key;
  GgufValue value;
  uint64_t file_offset = 0;  // where the key starts (reader only)
};

struct GgufTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  std::array<uint64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint32_t type_id = 0;                    // as written in the file
  TensorType type = TensorType::F32;       // resolved with the architecture
  uint64_t offset = 0;                     // relative to the data section
  uint64_t nbytes = 0;
  uint64_t info_offset = 0;                // where the tensor info starts in the file
  const uint8_t* data = nullptr;           // into the mapping (reader only)

  uint64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  std::string shape_string() const;  // "[2560, 640]"
};

constexpr uint32_t kGgufDefaultAlignment = 32;
constexpr uint32_t kGgufMaxArrayDepth = 8;

class GgufFile {
 public:
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parse bytes that the caller keeps alive (tests, fuzzers). `name` is used in error messages.
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size, std::string name);
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  const std::vector<GgufKV>& kvs() const { return kvs_; }
  const GgufValue* find(std::string_view key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(std::string_view name) const;
  std::string architecture() const;  // general.architecture, "" when absent

  // Typed getters. nullopt when absent; Error (naming file and key) when present with a wrong type.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;  // any integer type
  std::optional<double> get_float(std::string_view key) const; // float or integer types
  std::optional<bool> get_bool(std::string_view key) const;
  const GgufArray* get_array(std::string_view key, GgufType elem) const;

  // The process no longer needs this tensor's bytes in memory (it has its own copy): the mapped pages
  // leave the resident set (MappedFile::release). The data stays readable. No-op for parsed buffers.
  void release(const GgufTensorInfo& t) const;
  // Only bytes [offset, offset + n) of the tensor (clamped to it).
  void release(const GgufTensorInfo& t, uint64_t offset, uint64_t n) const;
  // The same for the header and metadata (everything before the tensor data), once parsed.
  void release_metadata() const;
  // Drops a parsed key and its value, for a caller that has taken what it needs (the model forgets the
  // tokenizer's arrays, ~14 MB for LLaMA-3, once its tokenizer is built). find() then answers nullptr.
  void forget(std::string_view key);

 private:
  GgufFile() = default;
  void parse_all();

  std::string path_;
  std::unique_ptr<MappedFile> map_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::vector<GgufTensorInfo> tensors_;
};

// Writes a GGUF v3 file atomically. Tensor bytes come from a buffer or from a producer called at write
// time (so a multi-GB model is generated tensor by tensor, never held whole).
class GgufWriter {
 public:
  using Producer = std::function<void(uint8_t* dst, uint64_t nbytes)>;

  explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

  void set(const std::string& key, GgufValue value);  // replaces in place, else appends
  void remove(const std::string& key);
  const GgufValue* find(std::string_view key) const;
  // Shape as ne (ne[0] contiguous). Throws Error when the shape does not fit the type or the name repeats.
  void add_tensor(const std::string& name, TensorType type, std::vector<uint64_t> ne, std::vector<uint8_t> data);
  void add_tensor(const std::string& name, TensorType type, std::vector<uint64_t> ne, Producer producer);

  void write(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;  // whole file in memory (tests)
  uint64_t total_tensor_bytes() const;

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<uint64_t> ne;
    uint64_t nbytes;
    std::vector<uint8_t> data;
    Producer producer;
  };
  template <typename Sink>
  void emit(Sink& sink) const;

  uint32_t alignment_;
  std::vector<GgufKV> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace bitnet
