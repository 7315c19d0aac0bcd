// Builds GGUF bytes field by field, so tests can write files no correct writer would produce.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace bitnet::testing {

struct RawGguf {
  std::vector<uint8_t> b;
  template <typename T>
  RawGguf& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  RawGguf& u32(uint32_t v) { return put(v); }
  RawGguf& u64(uint64_t v) { return put(v); }
  RawGguf& str(const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  RawGguf& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  RawGguf& kv_string(const std::string& key, const std::string& value) { return str(key).u32(8).str(value); }
  RawGguf& kv_u32(const std::string& key, uint32_t value) { return str(key).u32(4).u32(value); }
  RawGguf& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  RawGguf& pad(uint64_t align = 32) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  RawGguf& zeros(uint64_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

}  // namespace bitnet::testing
