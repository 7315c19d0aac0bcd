// Key/value cache: for each layer, sequence slot and position, the rotated key and the value of every
// KV head ([kv_dim] = n_kv_heads * head_dim each), stored as F32 or F16.
// Memory: 2 * n_layers * n_seq * n_ctx * kv_dim * (4 | 2) bytes (2B-4T, 4096 ctx, F16: 315 MB per slot).
#pragma once

#include <cstdint>
#include <vector>

#include "bitnet/base/fp16.h"

namespace bitnet {

struct ModelConfig;

enum class KvType { F32, F16 };

class KvCache {
 public:
  KvCache(const ModelConfig& c, int32_t n_ctx, KvType type, int32_t n_seq = 1);

  int32_t n_ctx() const { return n_ctx_; }
  int32_t n_seq() const { return n_seq_; }
  KvType type() const { return type_; }
  int64_t kv_dim() const { return kv_dim_; }
  // Number of positions filled for a sequence (positions 0..length-1 are valid).
  int32_t length(int32_t seq) const { return length_[seq]; }
  void set_length(int32_t seq, int32_t n) { length_[seq] = n; }
  void clear(int32_t seq) { length_[seq] = 0; }

  void store(int32_t layer, int32_t seq, int32_t pos, const float* k, const float* v);
  // Reads element i of the key / value row (layer, seq, pos) as float.
  const uint8_t* k_row(int32_t layer, int32_t seq, int32_t pos) const { return data_.data() + offset(layer, seq, pos, 0); }
  const uint8_t* v_row(int32_t layer, int32_t seq, int32_t pos) const { return data_.data() + offset(layer, seq, pos, 1); }

 private:
  size_t offset(int32_t layer, int32_t seq, int32_t pos, int kv) const {
    return ((((static_cast<size_t>(layer) * n_seq_ + seq) * 2 + kv) * n_ctx_ + pos) * kv_dim_) * elem_;
  }
  int32_t n_ctx_, n_seq_;
  KvType type_;
  int64_t kv_dim_;
  size_t elem_;
  std::vector<uint8_t> data_;
  std::vector<int32_t> length_;
};

}  // namespace bitnet
