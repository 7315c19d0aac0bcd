// Test-only: reads the tokenizer.ggml.* keys of a GGUF v2/v3 file into VocabData, so the SentencePiece
// tests can run on a real LLaMA-2 vocabulary before bitnet/format's reader exists. Replace with the
// real reader when it lands. Throws std::runtime_error on anything unexpected.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "bitnet/text/vocab.h"
#include "test_data.h"

namespace bitnet::testing {

class GgufKvReader {
 public:
  explicit GgufKvReader(std::string data) : d_(std::move(data)) {}

  VocabData vocab() {
    if (take(4) != "GGUF") throw std::runtime_error("not a GGUF file");
    const uint32_t version = pod<uint32_t>();
    if (version < 2 || version > 3) throw std::runtime_error("unsupported GGUF version");
    pod<uint64_t>();  // tensor count
    const uint64_t n_kv = pod<uint64_t>();
    VocabData v;
    for (uint64_t k = 0; k < n_kv; ++k) {
      const std::string key = str();
      const uint32_t type = pod<uint32_t>();
      if (key == "tokenizer.ggml.model")
        v.model = str_of(type);
      else if (key == "tokenizer.ggml.pre")
        v.pre = str_of(type);
      else if (key == "tokenizer.ggml.tokens")
        v.tokens = array<std::string>(type);
      else if (key == "tokenizer.ggml.scores")
        v.scores = array<float>(type);
      else if (key == "tokenizer.ggml.token_type")
        v.token_types = array<int32_t>(type);
      else if (key == "tokenizer.ggml.merges")
        v.merges = array<std::string>(type);
      else if (key == "tokenizer.ggml.bos_token_id")
        v.bos_id = static_cast<int32_t>(scalar_u32(type));
      else if (key == "tokenizer.ggml.eos_token_id")
        v.eos_id = static_cast<int32_t>(scalar_u32(type));
      else if (key == "tokenizer.ggml.unknown_token_id")
        v.unk_id = static_cast<int32_t>(scalar_u32(type));
      else if (key == "tokenizer.ggml.padding_token_id")
        v.pad_id = static_cast<int32_t>(scalar_u32(type));
      else if (key == "tokenizer.ggml.add_bos_token")
        v.add_bos = scalar_bool(type);
      else if (key == "tokenizer.ggml.add_eos_token")
        v.add_eos = scalar_bool(type);
      else if (key == "tokenizer.ggml.add_space_prefix")
        v.add_space_prefix = scalar_bool(type);
      else
        skip(type);
    }
    return v;
  }

 private:
  enum : uint32_t { kU8, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64 };

  std::string_view take(size_t n) {
    if (n > d_.size() - o_) throw std::runtime_error("GGUF truncated");
    std::string_view s(d_.data() + o_, n);
    o_ += n;
    return s;
  }
  template <typename T>
  T pod() {
    T v;
    std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
    return v;
  }
  std::string str() { return std::string(take(pod<uint64_t>())); }
  std::string str_of(uint32_t type) {
    if (type != kString) throw std::runtime_error("expected a string");
    return str();
  }
  uint32_t scalar_u32(uint32_t type) {
    if (type != kU32 && type != kI32) throw std::runtime_error("expected a 32-bit integer");
    return pod<uint32_t>();
  }
  bool scalar_bool(uint32_t type) {
    if (type != kBool) throw std::runtime_error("expected a bool");
    return pod<uint8_t>() != 0;
  }
  template <typename T>
  std::vector<T> array(uint32_t type) {
    if (type != kArray) throw std::runtime_error("expected an array");
    const uint32_t elem = pod<uint32_t>();
    const uint64_t n = pod<uint64_t>();
    std::vector<T> out;
    for (uint64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, std::string>) {
        out.push_back(str_of(elem));
      } else {
        if (elem != (std::is_same_v<T, float> ? kF32 : kI32))
          throw std::runtime_error("unexpected element type");
        out.push_back(pod<T>());
      }
    }
    return out;
  }
  void skip(uint32_t type) {
    static constexpr size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == kString) {
      str();
    } else if (type == kArray) {
      const uint32_t elem = pod<uint32_t>();
      const uint64_t n = pod<uint64_t>();
      for (uint64_t i = 0; i < n; ++i) skip(elem);
    } else if (type < std::size(kSize)) {
      take(kSize[type]);
    } else {
      throw std::runtime_error("unknown GGUF value type");
    }
  }

  std::string d_;
  size_t o_ = 0;
};

inline VocabData read_gguf_vocab(const std::filesystem::path& path) {
  return GgufKvReader(read_all(path)).vocab();
}

}  // namespace bitnet::testing
