// Key/value cache: for each layer, sequence slot and position, the rotated key and the value of every
// KV head (head_dim each), stored as F32 or F16. Layout [layer][seq][k|v][kv head][position][head_dim]: the
// rows one attention task reads (one KV head, positions 0..n-1) are contiguous, so they stream from memory
// at full speed (with positions outermost, a head's 256 bytes of every 1280-byte row were read 5x over).
// Memory: 2 * n_layers * n_seq * n_ctx * kv_dim * (4 | 2) bytes (2B-4T, 4096 ctx, F16: 315 MB per slot),
// anonymous pages that become resident as they are written.
#pragma once

#include <cstdint>
#include <vector>

#include "bitnet/base/fp16.h"
#include "bitnet/base/page_buffer.h"

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
  // Position 0 of a KV head's key / value rows; row p is at + p * row_bytes().
  const uint8_t* k_head(int32_t layer, int32_t seq, int32_t head) const { return data_.data() + offset(layer, seq, 0, head); }
  const uint8_t* v_head(int32_t layer, int32_t seq, int32_t head) const { return data_.data() + offset(layer, seq, 1, head); }
  int64_t row_bytes() const { return head_dim_ * static_cast<int64_t>(elem_); }

 private:
  size_t offset(int32_t layer, int32_t seq, int kv, int32_t head) const {
    return ((((static_cast<size_t>(layer) * n_seq_ + seq) * 2 + kv) * n_kv_heads_ + head) * n_ctx_) * head_dim_ * elem_;
  }
  int32_t n_ctx_, n_seq_;
  KvType type_;
  int64_t n_kv_heads_, head_dim_, kv_dim_;
  size_t elem_;
  PageBuffer data_;
  std::vector<int32_t> length_;
};

}  // namespace bitnet
