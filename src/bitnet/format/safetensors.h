// Safetensors reader (Hugging Face checkpoints), memory-mapped.
//
// File layout:
//   u64 N (little-endian)  |  N bytes of UTF-8 JSON header  |  data section
//   header = { "<tensor name>": {"dtype": "BF16", "shape": [out, in], "data_offsets": [begin, end]}, ...,
//              "__metadata__": {"<key>": "<string>", ...} (optional) }
// Offsets are relative to the data section; shapes are row-major, outermost dimension first (the reverse
// of GGUF's ne). Every offset, shape and size is checked (overflow-safe) before any byte is touched; a bad
// file gives bitnet::Error naming the file, the tensor, the offset and expected vs actual.
//
// A sharded checkpoint is a folder with `model.safetensors.index.json` ({"weight_map": {tensor: shard}});
// SafetensorsCheckpoint opens its shards and checks that the map and the shards agree.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

class MappedFile;

// Element types. F32, F16, BF16, U8 and I8 are readable; the others are recognised (so that a checkpoint
// holding, e.g., an I64 buffer still opens) but refused when a caller asks for their values.
enum class StDtype { F32, F16, BF16, U8, I8, F64, I16, I32, I64, U16, U32, U64, BOOL, F8_E4M3, F8_E5M2 };
const char* st_dtype_name(StDtype t);
uint32_t st_dtype_size(StDtype t);
bool st_dtype_readable(StDtype t);  // F32, F16, BF16, U8, I8

struct SafetensorsTensor {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<uint64_t> shape;    // row-major, outermost first; empty = scalar
  uint64_t n_elements = 1;
  uint64_t offset = 0;            // absolute byte offset in the file
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping (not aligned: read with memcpy)
  const std::string* file = nullptr;  // path of the file holding it

  std::string shape_string() const;  // "[640, 2560]"
  // Element i as float (F32, F16, BF16 exactly; U8, I8 as integers). Error for other dtypes.
  float at(uint64_t i) const;
};

class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // Parse bytes that the caller keeps alive (tests, fuzzers). `name` is used in error messages.
  static std::unique_ptr<SafetensorsFile> parse(const uint8_t* data, size_t size, std::string name);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // in data order
  const SafetensorsTensor* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t data_offset() const { return data_offset_; }

  // Tells the kernel the pages of [p, p+n) are no longer needed (they are re-read from the file if
  // touched again). Keeps the resident size of a conversion at one tensor rather than the whole input.
  void release(const uint8_t* p, uint64_t n) const;

 private:
  SafetensorsFile() = default;
  void parse_all();

  std::string path_;
  std::unique_ptr<MappedFile> map_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One checkpoint: a single .safetensors file, or a folder with model.safetensors or with
// model.safetensors.index.json and its shards.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& file_or_dir);

  const SafetensorsTensor* find(std::string_view name) const;
  std::vector<const SafetensorsTensor*> tensors() const;  // every tensor, shard by shard
  size_t n_shards() const { return files_.size(); }
  uint64_t total_bytes() const;  // sum of tensor bytes
  // Drops the resident pages of bytes [offset, offset + n) of `t` (see SafetensorsFile::release).
  void release(const SafetensorsTensor& t, uint64_t offset = 0, uint64_t n = UINT64_MAX) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;  // the file or index named in messages
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const SafetensorsTensor*>, std::less<>> by_name_;
};

}  // namespace bitnet
