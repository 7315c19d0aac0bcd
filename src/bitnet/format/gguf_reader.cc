// GGUF reader: every field is bounds-checked before use; no allocation is sized by an unchecked count.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "bitnet/base/checked.h"
#include "bitnet/base/error.h"
#include "bitnet/base/mapped_file.h"
#include "bitnet/base/utf8.h"
#include "bitnet/format/gguf.h"

namespace bitnet {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32

// Minimum encoded sizes, used to reject impossible counts before allocating.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims 0, type, offset

class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& file) : p_(data), size_(size), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, std::string_view what) const {
    if (n > remaining())
      fail("{}: truncated at byte {} while reading {}: need {} bytes, {} left in the file", file_, pos_, what, n,
           remaining());
  }
  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(std::string_view what) {
    const uint64_t at = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail("{}: {} at byte {} has length {} but only {} bytes are left in the file", file_, what, at, len,
           remaining());
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  const uint8_t* take(uint64_t n, std::string_view what) {
    need(n, what);
    const uint8_t* q = p_ + pos_;
    pos_ += n;
    return q;
  }

 private:
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& file_;
};

GgufType check_type(uint32_t raw, const std::string& file, const std::string& key, uint64_t at) {
  if (raw >= kGgufTypeCount)
    fail("{}: key '{}' at byte {}: unknown value type {} (expected 0..{})", file, escape_for_message(key), at, raw,
         kGgufTypeCount - 1);
  return static_cast<GgufType>(raw);
}

GgufValue read_scalar(Cursor& c, GgufType t, const std::string& what) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::U8: v.u = c.read<uint8_t>(what); break;
    case GgufType::I8: v.i = c.read<int8_t>(what); break;
    case GgufType::U16: v.u = c.read<uint16_t>(what); break;
    case GgufType::I16: v.i = c.read<int16_t>(what); break;
    case GgufType::U32: v.u = c.read<uint32_t>(what); break;
    case GgufType::I32: v.i = c.read<int32_t>(what); break;
    case GgufType::U64: v.u = c.read<uint64_t>(what); break;
    case GgufType::I64: v.i = c.read<int64_t>(what); break;
    case GgufType::F32: v.f = c.read<float>(what); break;
    case GgufType::F64: v.f = c.read<double>(what); break;
    case GgufType::BOOL: v.u = c.read<uint8_t>(what); break;
    case GgufType::STRING: v.s = c.read_string(what); break;
    case GgufType::ARRAY: break;  // handled by the caller
  }
  return v;
}

GgufArray read_array(Cursor& c, const std::string& file, const std::string& key, uint32_t depth) {
  const uint64_t at = c.pos();
  if (depth > kGgufMaxArrayDepth)
    fail("{}: key '{}' at byte {}: arrays nested deeper than {} levels", file, escape_for_message(key), at,
         kGgufMaxArrayDepth);
  GgufArray a;
  a.elem = check_type(c.read<uint32_t>("array element type"), file, key, at);
  a.count = c.read<uint64_t>("array length");
  const size_t scalar = gguf_scalar_size(a.elem);
  const uint64_t min_elem = scalar ? scalar : a.elem == GgufType::STRING ? 8 : 12;
  uint64_t need;
  if (!checked_mul(a.count, min_elem, &need) || need > c.remaining())
    fail("{}: key '{}' at byte {}: array of {} {} elements needs at least {} bytes but only {} are left", file,
         escape_for_message(key), at, a.count, gguf_type_name(a.elem),
         checked_mul(a.count, min_elem, &need) ? std::to_string(need) : std::string("2^64+"), c.remaining());
  if (scalar) {
    const uint8_t* p = c.take(a.count * scalar, "array data");
    a.raw.assign(p, p + a.count * scalar);
    if (a.elem == GgufType::BOOL)
      for (uint64_t i = 0; i < a.count; ++i)
        if (a.raw[i] > 1)
          fail("{}: key '{}': bool array element {} has value {} (expected 0 or 1)", file, escape_for_message(key), i,
               a.raw[i]);
  } else if (a.elem == GgufType::STRING) {
    a.strings.reserve(a.count);
    for (uint64_t i = 0; i < a.count; ++i) a.strings.push_back(c.read_string("array string"));
  } else {
    a.arrays.reserve(a.count);
    for (uint64_t i = 0; i < a.count; ++i) a.arrays.push_back(read_array(c, file, key, depth + 1));
  }
  return a;
}

}  // namespace

void GgufFile::release(const GgufTensorInfo& t) const { release(t, 0, t.nbytes); }

void GgufFile::release(const GgufTensorInfo& t, uint64_t offset, uint64_t n) const {
  if (map_ && offset < t.nbytes) map_->release(t.data + offset, std::min(n, t.nbytes - offset));
}

void GgufFile::release_metadata() const {
  if (map_ && data_offset_ > 0 && data_offset_ <= size_) map_->release(base_, data_offset_);
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_ = std::make_unique<MappedFile>(path);
  f->base_ = f->map_->data();
  f->size_ = f->map_->size();
  f->parse_all();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(name);
  f->base_ = data;
  f->size_ = size;
  f->parse_all();
  return f;
}

GgufFile::~GgufFile() = default;

void GgufFile::parse_all() {
  const std::string& file = path_;
  Cursor c(base_, size_, file);
  if (size_ < 4) fail("{}: not a GGUF file: {} bytes is shorter than the 4-byte magic", file, size_);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    char shown[4];
    std::memcpy(shown, &magic, 4);
    fail("{}: not a GGUF file: magic at byte 0 is \"{}\", expected \"GGUF\"", file,
         escape_for_message(std::string_view(shown, 4)));
  }
  version_ = c.read<uint32_t>("version");
  if (version_ == 1)
    fail("{}: GGUF version 1 is not supported (it predates 64-bit counts); re-save the file with a current tool",
         file);
  if (version_ != 2 && version_ != 3) {
    if (__builtin_bswap32(version_) == 2 || __builtin_bswap32(version_) == 3)
      fail("{}: this is a big-endian GGUF file (version field at byte 4 reads {}); only little-endian is supported",
           file, version_);
    fail("{}: unsupported GGUF version {} at byte 4 (expected 2 or 3)", file, version_);
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  uint64_t need;
  if (!checked_mul(n_kv, kMinKvBytes, &need) || need > c.remaining())
    fail("{}: metadata count {} at byte 16 is impossible: {} entries need at least {} bytes, {} are left", file,
         n_kv, n_kv, kMinKvBytes, c.remaining());
  if (!checked_mul(n_tensors, kMinTensorInfoBytes, &need) || need > c.remaining())
    fail("{}: tensor count {} at byte 8 is impossible: that many tensor infos need at least {} bytes each, {} are "
         "left",
         file, n_tensors, kMinTensorInfoBytes, c.remaining());

  // Metadata.
  kvs_.reserve(n_kv);
  std::unordered_set<std::string> seen;
  for (uint64_t k = 0; k < n_kv; ++k) {
    GgufKV kv;
    kv.file_offset = c.pos();
    kv.key = c.read_string("metadata key");
    if (kv.key.empty()) fail("{}: metadata entry {} at byte {} has an empty key", file, k, kv.file_offset);
    if (size_t bad = utf8_first_invalid(kv.key); bad != std::string::npos)
      fail("{}: metadata key at byte {} is not valid UTF-8 (bad byte at key offset {}): \"{}\"", file,
           kv.file_offset, bad, escape_for_message(kv.key));
    if (!seen.insert(kv.key).second)
      fail("{}: duplicate metadata key '{}' at byte {}", file, escape_for_message(kv.key), kv.file_offset);
    const uint64_t type_at = c.pos();
    const GgufType t = check_type(c.read<uint32_t>("value type"), file, kv.key, type_at);
    if (t == GgufType::ARRAY) {
      kv.value.type = GgufType::ARRAY;
      kv.value.arr = read_array(c, file, kv.key, 1);
    } else {
      kv.value = read_scalar(c, t, "value of '" + escape_for_message(kv.key) + "'");
      if (t == GgufType::BOOL && kv.value.u > 1)
        fail("{}: key '{}' at byte {}: bool value {} (expected 0 or 1)", file, escape_for_message(kv.key), type_at,
             kv.value.u);
    }
    kvs_.push_back(std::move(kv));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::U32)
      fail("{}: key 'general.alignment' has type {}, expected u32", file, gguf_type_name(a->type));
    if (!is_pow2(a->u))
      fail("{}: general.alignment is {}, expected a non-zero power of two", file, a->u);
    alignment_ = a->u;
  }
  const std::string arch = architecture();

  // Tensor infos.
  tensors_.reserve(n_tensors);
  std::unordered_set<std::string> names;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo ti;
    ti.info_offset = c.pos();
    ti.name = c.read_string("tensor name");
    const std::string shown = escape_for_message(ti.name);
    if (ti.name.empty()) fail("{}: tensor {} at byte {} has an empty name", file, k, ti.info_offset);
    if (utf8_first_invalid(ti.name) != std::string::npos)
      fail("{}: tensor name at byte {} is not valid UTF-8: \"{}\"", file, ti.info_offset, shown);
    if (!names.insert(ti.name).second) fail("{}: duplicate tensor name '{}' at byte {}", file, shown, ti.info_offset);
    ti.n_dims = c.read<uint32_t>("tensor n_dims");
    if (ti.n_dims > 4)
      fail("{}: tensor '{}' at byte {}: {} dimensions, at most 4 are supported", file, shown, ti.info_offset,
           ti.n_dims);
    uint64_t n = 1;
    for (uint32_t d = 0; d < ti.n_dims; ++d) {
      ti.ne[d] = c.read<uint64_t>("tensor dimension");
      if (ti.ne[d] > static_cast<uint64_t>(INT64_MAX) || !checked_mul(n, ti.ne[d], &n) ||
          n > static_cast<uint64_t>(INT64_MAX))
        fail("{}: tensor '{}' at byte {}: shape {} has too many elements", file, shown, ti.info_offset,
             ti.shape_string());
    }
    const uint64_t type_at = c.pos();
    ti.type_id = c.read<uint32_t>("tensor type");
    ti.offset = c.read<uint64_t>("tensor offset");
    const auto resolved = resolve_type(ti.type_id, arch);
    if (!resolved) {
      if (ti.type_id == 38)
        fail("{}: tensor '{}' (byte {}) has type id {}, which only bitnet.cpp's BitNet architectures use "
             "(TL1), but general.architecture is '{}'",
             file, shown, type_at, ti.type_id, escape_for_message(arch));
      fail("{}: tensor '{}' (byte {}) has unknown type id {}", file, shown, type_at, ti.type_id);
    }
    ti.type = *resolved;
    const TypeTraits& tr = type_traits(ti.type);
    if (tr.refusal) fail("{}: tensor '{}' has type {}, which is not supported: {}", file, shown, tr.name, tr.refusal);
    if (ti.ne[0] % tr.block_size != 0)
      fail("{}: tensor '{}' of type {}: row length {} is not a multiple of the block size {}", file, shown, tr.name,
           ti.ne[0], tr.block_size);
    if (!tensor_nbytes(ti.type, n, &ti.nbytes))
      fail("{}: tensor '{}' of type {} and shape {}: size overflows", file, shown, tr.name, ti.shape_string());
    if (ti.offset % alignment_ != 0)
      fail("{}: tensor '{}' data offset {} is not a multiple of the alignment {}", file, shown, ti.offset,
           alignment_);
    tensors_.push_back(std::move(ti));
  }

  // Data section.
  const uint64_t info_end = c.pos();
  if (!checked_align_up(info_end, alignment_, &data_offset_))
    fail("{}: data section offset overflows (alignment {})", file, alignment_);
  if (tensors_.empty()) return;  // vocab-only files may end right after the metadata
  if (data_offset_ > size_)
    fail("{}: data section should start at byte {} (after padding to {}), but the file has only {} bytes", file,
         data_offset_, alignment_, size_);
  const uint64_t data_size = size_ - data_offset_;
  for (GgufTensorInfo& ti : tensors_) {
    uint64_t end;
    if (!checked_add(ti.offset, ti.nbytes, &end) || end > data_size)
      fail("{}: tensor '{}' ({} {}, {} bytes at data offset {}) extends past the end of the file: the data section "
           "has {} bytes",
           file, escape_for_message(ti.name), type_traits(ti.type).name, ti.shape_string(), ti.nbytes, ti.offset,
           data_size);
    ti.data = base_ + data_offset_ + ti.offset;
  }
  // Overlapping tensors mean a corrupt table (every writer lays them out back to back).
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const auto& ti : tensors_) by_offset.push_back(&ti);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensorInfo* a = by_offset[k - 1];
    const GgufTensorInfo* b = by_offset[k];
    if (a->nbytes > 0 && b->nbytes > 0 && a->offset + a->nbytes > b->offset)
      fail("{}: tensors '{}' (data bytes {}..{}) and '{}' (from byte {}) overlap", file,
           escape_for_message(a->name), a->offset, a->offset + a->nbytes, escape_for_message(b->name), b->offset);
  }
}

void GgufFile::forget(std::string_view key) {
  std::erase_if(kvs_, [&](const GgufKV& kv) { return kv.key == key; });
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& kv : kvs_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

const GgufTensorInfo* GgufFile::tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::string GgufFile::architecture() const {
  const GgufValue* v = find("general.architecture");
  return v && v->type == GgufType::STRING ? v->s : std::string();
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING)
    fail("{}: key '{}' has type {}, expected string", path_, key, gguf_type_name(v->type));
  return v->s;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  auto i = v->as_int();
  if (!i) fail("{}: key '{}' has type {}, expected an integer", path_, key, gguf_type_name(v->type));
  return i;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  auto f = v->as_float();
  if (!f) fail("{}: key '{}' has type {}, expected a number", path_, key, gguf_type_name(v->type));
  return f;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::BOOL) fail("{}: key '{}' has type {}, expected bool", path_, key, gguf_type_name(v->type));
  return v->u != 0;
}

const GgufArray* GgufFile::get_array(std::string_view key, GgufType elem) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufType::ARRAY)
    fail("{}: key '{}' has type {}, expected an array of {}", path_, key, gguf_type_name(v->type),
         gguf_type_name(elem));
  if (v->arr.elem != elem)
    fail("{}: key '{}' is an array of {}, expected an array of {}", path_, key, gguf_type_name(v->arr.elem),
         gguf_type_name(elem));
  return &v->arr;
}

}  // namespace bitnet
