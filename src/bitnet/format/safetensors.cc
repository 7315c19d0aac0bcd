#include "bitnet/format/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "bitnet/base/checked.h"
#include "bitnet/base/error.h"
#include "bitnet/base/fp16.h"
#include "bitnet/base/mapped_file.h"
#include "bitnet/base/utf8.h"

namespace bitnet {

namespace {

using nlohmann::json;

struct DtypeRow {
  StDtype type;
  const char* name;  // as spelled in headers
  uint32_t size;
  bool readable;
};

constexpr std::array<DtypeRow, 15> kDtypes = {{
    {StDtype::F32, "F32", 4, true},       {StDtype::F16, "F16", 2, true},     {StDtype::BF16, "BF16", 2, true},
    {StDtype::U8, "U8", 1, true},         {StDtype::I8, "I8", 1, true},       {StDtype::F64, "F64", 8, false},
    {StDtype::I16, "I16", 2, false},      {StDtype::I32, "I32", 4, false},    {StDtype::I64, "I64", 8, false},
    {StDtype::U16, "U16", 2, false},      {StDtype::U32, "U32", 4, false},    {StDtype::U64, "U64", 8, false},
    {StDtype::BOOL, "BOOL", 1, false},    {StDtype::F8_E4M3, "F8_E4M3", 1, false},
    {StDtype::F8_E5M2, "F8_E5M2", 1, false},
}};

const DtypeRow& row(StDtype t) {
  for (const auto& r : kDtypes)
    if (r.type == t) return r;
  return kDtypes[0];  // unreachable: every enumerator has a row
}

// Header sizes above this are refused (the reference implementation uses the same 100 MB limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("{}: cannot open", p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("{}: cannot read", p.string());
  return ss.str();
}

}  // namespace

const char* st_dtype_name(StDtype t) { return row(t).name; }
uint32_t st_dtype_size(StDtype t) { return row(t).size; }
bool st_dtype_readable(StDtype t) { return row(t).readable; }

std::string SafetensorsTensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

float SafetensorsTensor::at(uint64_t i) const {
  if (i >= n_elements) fail("{}: tensor '{}': element {} of {} requested", *file, name, i, n_elements);
  const uint8_t* p = data + i * st_dtype_size(dtype);
  switch (dtype) {
    case StDtype::F32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case StDtype::F16:
    case StDtype::BF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return dtype == StDtype::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
    }
    case StDtype::U8: return static_cast<float>(*p);
    case StDtype::I8: return static_cast<float>(static_cast<int8_t>(*p));
    default: fail("{}: tensor '{}' has dtype {}, which is not readable (F32, F16, BF16, U8, I8)", *file, name,
                  st_dtype_name(dtype));
  }
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = std::make_unique<MappedFile>(path);
  f->base_ = f->map_->data();
  f->size_ = f->map_->size();
  f->parse_all();
  return f;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::parse(const uint8_t* data, size_t size, std::string name) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = std::move(name);
  f->base_ = data;
  f->size_ = size;
  f->parse_all();
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::release(const uint8_t* p, uint64_t n) const {
  if (!map_ || n == 0) return;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t lo = static_cast<uint64_t>(p - base_) / page * page;
  const uint64_t hi = std::min<uint64_t>(size_, static_cast<uint64_t>(p - base_) + n);
  if (hi <= lo) return;
  // The mapping is private and never written, so dropped pages are simply read again from the file.
  ::madvise(const_cast<uint8_t*>(base_ + lo), hi - lo, MADV_DONTNEED);
}

void SafetensorsFile::parse_all() {
  if (size_ < 8) fail("{}: {} bytes is too short for a safetensors file (expected at least 8)", path_, size_);
  uint64_t n_header = 0;
  std::memcpy(&n_header, base_, 8);
  if (n_header > size_ - 8 || n_header > kMaxHeaderBytes)
    fail("{}: header length {} at offset 0 exceeds the file ({} bytes after the length) or the {}-byte limit",
         path_, n_header, size_ - 8, kMaxHeaderBytes);
  data_offset_ = 8 + n_header;
  const uint64_t data_size = size_ - data_offset_;
  const std::string_view text(reinterpret_cast<const char*>(base_ + 8), n_header);
  if (!utf8_valid(text)) fail("{}: header (offset 8, {} bytes) is not valid UTF-8", path_, n_header);

  json header;
  try {
    header = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}: header JSON at file offset {} is malformed: {}", path_, 8 + e.byte, e.what());
  } catch (const json::exception& e) {  // e.g. out_of_range for a number such as 2e1111 (found by fuzz_safetensors)
    fail("{}: header JSON at file offset 8 cannot be read: {}", path_, e.what());
  }
  if (!header.is_object()) fail("{}: header at offset 8 is a JSON {}, expected an object", path_, header.type_name());

  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ is a JSON {}, expected an object of strings", path_, v.type_name());
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string()) fail("{}: __metadata__ key '{}' is a JSON {}, expected a string", path_, k, s.type_name());
        metadata_[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("{}: tensor '{}'", path_, escape_for_message(name));
    if (!v.is_object()) fail("{}: header entry is a JSON {}, expected an object", where, v.type_name());
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!v.contains(key)) fail("{}: header entry has no \"{}\"", where, key);

    SafetensorsTensor t;
    t.name = name;
    t.file = &path_;
    const json& dt = v.at("dtype");
    if (!dt.is_string()) fail("{}: dtype is a JSON {}, expected a string", where, dt.type_name());
    const std::string dts = dt.get<std::string>();
    auto r = std::find_if(kDtypes.begin(), kDtypes.end(), [&](const DtypeRow& x) { return dts == x.name; });
    if (r == kDtypes.end()) fail("{}: unknown dtype '{}'", where, escape_for_message(dts));
    t.dtype = r->type;

    const json& shape = v.at("shape");
    if (!shape.is_array() || shape.size() > 8)
      fail("{}: shape must be an array of at most 8 non-negative integers, got {}", where, shape.dump());
    for (const json& d : shape) {
      if (!d.is_number_unsigned()) fail("{}: shape {} holds a value that is not a non-negative integer", where, shape.dump());
      t.shape.push_back(d.get<uint64_t>());
      if (!checked_mul(t.n_elements, t.shape.back(), &t.n_elements))
        fail("{}: shape {} overflows 64 bits", where, shape.dump());
    }
    if (!checked_mul(t.n_elements, r->size, &t.nbytes))
      fail("{}: shape {} of {} overflows 64 bits in bytes", where, shape.dump(), r->name);

    const json& off = v.at("data_offsets");
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail("{}: data_offsets must be [begin, end] (non-negative integers), got {}", where, off.dump());
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) fail("{}: data_offsets [{}, {}] are reversed", where, begin, end);
    if (end > data_size)
      fail("{}: data_offsets [{}, {}] run past the data section ({} bytes from file offset {})", where, begin, end,
           data_size, data_offset_);
    if (end - begin != t.nbytes)
      fail("{}: data_offsets [{}, {}] hold {} bytes, but {} {} needs {}", where, begin, end, end - begin, r->name,
           t.shape_string(), t.nbytes);
    t.offset = data_offset_ + begin;
    t.data = base_ + t.offset;
    tensors_.push_back(std::move(t));
  }

  std::sort(tensors_.begin(), tensors_.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) { return a.offset < b.offset; });
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (i > 0 && tensors_[i].nbytes > 0 && tensors_[i - 1].offset + tensors_[i - 1].nbytes > tensors_[i].offset)
      fail("{}: tensors '{}' and '{}' overlap at file offset {}", path_, tensors_[i - 1].name, tensors_[i].name,
           tensors_[i].offset);
    index_[tensors_[i].name] = i;
  }
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& file_or_dir) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint c;
  fs::path index_path, single;
  if (fs::is_directory(file_or_dir)) {
    if (fs::exists(file_or_dir / "model.safetensors.index.json")) index_path = file_or_dir / "model.safetensors.index.json";
    else if (fs::exists(file_or_dir / "model.safetensors")) single = file_or_dir / "model.safetensors";
    else fail("{}: no model.safetensors or model.safetensors.index.json", file_or_dir.string());
  } else if (file_or_dir.extension() == ".json") {
    index_path = file_or_dir;
  } else {
    single = file_or_dir;
  }

  if (!single.empty()) {
    c.source_ = single.string();
    c.files_.push_back(SafetensorsFile::open(c.source_));
    for (const auto& t : c.files_[0]->tensors()) c.by_name_[t.name] = {0, &t};
    return c;
  }

  c.source_ = index_path.string();
  json index;
  try {
    index = json::parse(read_text(index_path));
  } catch (const json::parse_error& e) {
    fail("{}: malformed JSON at byte {}: {}", c.source_, e.byte, e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
    fail("{}: expected an object with a \"weight_map\" object", c.source_);
  std::map<std::string, size_t> shard_of_file;
  for (const auto& [name, shard] : index.at("weight_map").items()) {
    if (!shard.is_string()) fail("{}: weight_map['{}'] is a JSON {}, expected a file name", c.source_, name, shard.type_name());
    const fs::path rel = shard.get<std::string>();
    if (rel.empty() || rel.is_absolute() || std::any_of(rel.begin(), rel.end(), [](const fs::path& p) { return p == ".."; }))
      fail("{}: weight_map['{}'] = '{}' is not a file name inside the checkpoint folder", c.source_, name, rel.string());
    auto [it, fresh] = shard_of_file.emplace(rel.string(), c.files_.size());
    if (fresh) c.files_.push_back(SafetensorsFile::open((index_path.parent_path() / rel).string()));
    const SafetensorsTensor* t = c.files_[it->second]->find(name);
    if (!t) fail("{}: weight_map puts tensor '{}' in {}, which does not hold it", c.source_, name, rel.string());
    c.by_name_[name] = {it->second, t};
  }
  for (const auto& f : c.files_)
    for (const auto& t : f->tensors())
      if (c.by_name_.find(t.name) == c.by_name_.end() || c.by_name_[t.name].second != &t)
        fail("{}: shard {} holds tensor '{}', which weight_map does not assign to it", c.source_, f->path(), t.name);
  return c;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.second;
}

std::vector<const SafetensorsTensor*> SafetensorsCheckpoint::tensors() const {
  std::vector<const SafetensorsTensor*> out;
  for (const auto& f : files_)
    for (const auto& t : f->tensors()) out.push_back(&t);
  return out;
}

uint64_t SafetensorsCheckpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_)
    for (const auto& t : f->tensors()) n += t.nbytes;
  return n;
}

void SafetensorsCheckpoint::release(const SafetensorsTensor& t, uint64_t offset, uint64_t n) const {
  auto it = by_name_.find(t.name);
  if (it == by_name_.end() || offset >= t.nbytes) return;
  files_[it->second.first]->release(t.data + offset, std::min(n, t.nbytes - offset));
}

}  // namespace bitnet
