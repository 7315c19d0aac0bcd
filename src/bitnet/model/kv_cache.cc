#include "bitnet/model/kv_cache.h"

#include <cstring>

#include "bitnet/base/checked.h"
#include "bitnet/base/error.h"
#include "bitnet/kernels/kernels.h"
#include "bitnet/model/arch.h"

namespace bitnet {

KvCache::KvCache(const ModelConfig& c, int32_t n_ctx, KvType type, int32_t n_seq)
    : n_ctx_(n_ctx), n_seq_(n_seq), type_(type), n_kv_heads_(c.n_kv_heads), head_dim_(c.head_dim),
      kv_dim_(int64_t(c.n_kv_heads) * c.head_dim), elem_(type == KvType::F32 ? 4 : 2), length_(n_seq, 0) {
  if (n_ctx < 1) fail("context size {} must be at least 1", n_ctx);
  if (n_seq < 1) fail("number of sequences {} must be at least 1", n_seq);
  uint64_t bytes = 2;
  for (uint64_t f : {uint64_t(c.n_layers), uint64_t(n_seq), uint64_t(n_ctx), uint64_t(kv_dim_), uint64_t(elem_)})
    if (!checked_mul(bytes, f, &bytes)) fail("KV cache size overflows");
  try {
    data_ = PageBuffer(bytes);
  } catch (const Error&) {
    fail("cannot allocate a {:.1f} MB KV cache for a context of {} tokens; use a smaller -c", bytes / 1e6, n_ctx);
  }
}

void KvCache::store(int32_t layer, int32_t seq, int32_t pos, const float* k, const float* v) {
  const size_t row = static_cast<size_t>(row_bytes());
  for (int32_t h = 0; h < n_kv_heads_; ++h) {
    uint8_t* kd = data_.data() + offset(layer, seq, 0, h) + pos * row;
    uint8_t* vd = data_.data() + offset(layer, seq, 1, h) + pos * row;
    const float* kh = k + h * head_dim_;
    const float* vh = v + h * head_dim_;
    if (type_ == KvType::F32) {
      std::memcpy(kd, kh, row);
      std::memcpy(vd, vh, row);
      continue;
    }
    kernels::active().to_f16(kh, reinterpret_cast<uint16_t*>(kd), head_dim_);  // rows are 2-byte aligned
    kernels::active().to_f16(vh, reinterpret_cast<uint16_t*>(vd), head_dim_);
  }
}

}  // namespace bitnet
