// Flat open-addressing hash tables for the tokenizer's two hot lookups; the LLaMA-3 vocabulary needs
// ~1.1M lookups to build (std::unordered_map spent most of Tokenizer::create chasing nodes).
// Linear probing, capacity a power of two >= 1.5x the entries, built once, read-only afterwards.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

// Token text -> id, over texts owned by the caller (they must outlive the index and not move).
// Memory: 8 bytes x capacity (LLaMA-3: 256Ki slots, 2 MiB).
class TextIndex {
 public:
  // Indexes texts[i] -> i; of duplicate texts the last id wins (as llama.cpp's token_to_id).
  void build(const std::vector<std::string>& texts);
  int32_t find(std::string_view s) const;  // -1 when absent

 private:
  struct Slot {
    uint32_t hash;  // high 32 bits of the text hash (the low bits pick the slot): skips most compares
    int32_t id;     // -1 = empty
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  const std::vector<std::string>* texts_ = nullptr;
};

// (left id, right id) -> (rank, result id) for BPE merges. Memory: 16 bytes x capacity (LLaMA-3: 512Ki slots,
// 8 MiB).
class PairIndex {
 public:
  struct Value {
    int32_t rank;    // lower merges first
    int32_t result;  // id of the merged token
  };
  explicit PairIndex(size_t expected = 0);
  // Inserts unless the pair is present already (a repeated merge keeps its first rank).
  void insert(int32_t left, int32_t right, Value v);
  const Value* find(int32_t left, int32_t right) const;  // null when absent
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;  // kEmpty or left << 32 | right (ids are non-negative int32)
    Value value;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  size_t slot_of(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow();

  std::vector<Slot> slots_;
  unsigned shift_ = 64;  // 64 - log2(capacity): Fibonacci hashing takes the top bits
  size_t size_ = 0;
};

}  // namespace bitnet
