#include "bitnet/format/tensor_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "bitnet/base/fp16.h"
#include "bitnet/format/dequant.h"
#include "bitnet/format/gguf.h"

namespace bitnet {

namespace {

// Accumulates the values {-d, 0, +d} of one scale group from its code histogram (ternary types are
// summarised from codes, without dequantizing).
struct Moments {
  double sum = 0, sum2 = 0, sum_abs = 0, lo = 0, hi = 0;
  uint64_t zeros = 0, nonfinite = 0;
  bool any = false;
  void add_group(const CodeHistogram& h, double d) {
    const uint64_t n = h[0] + h[1] + h[2] + h[3];
    if (!std::isfinite(d)) {
      nonfinite += n;
      return;
    }
    const double m = static_cast<double>(h[0]), p = static_cast<double>(h[2]), bad = static_cast<double>(h[3]);
    sum += d * (p - m + 2 * bad);  // invalid 2-bit code 3 decodes as +2
    sum2 += d * d * (p + m + 4 * bad);
    sum_abs += std::fabs(d) * (p + m + 2 * bad);
    zeros += d == 0 ? n : h[1];
    auto see = [&](double v) {
      lo = any ? std::min(lo, v) : v;
      hi = any ? std::max(hi, v) : v;
      any = true;
    };
    if (h[0]) see(-d);
    if (h[1]) see(0);
    if (h[2]) see(d);
    if (h[3]) see(2 * d);
  }
};

void ternary_stats(const GgufTensorInfo& t, TensorStats& s) {
  s.ternary = true;
  const uint64_t n = t.n_elements();
  Moments mo;
  std::vector<double> scales;
  if (t.type == TensorType::I2_S) {
    i2s_histogram(t.data, n, s.codes);
    scales.push_back(i2s_scale(t.data, n));
    mo.add_group(s.codes, scales[0]);
  } else {
    const uint64_t bytes = type_traits(t.type).block_bytes;
    scales.reserve(n / kQK);
    for (uint64_t b = 0; b < n / kQK; ++b) {
      const uint8_t* blk = t.data + b * bytes;
      CodeHistogram h{};
      (t.type == TensorType::TQ2_0 ? tq2_histogram_block : tq1_histogram_block)(blk, h);
      const double d = fp16_to_f32(tq_block_scale(blk, bytes));
      for (int k = 0; k < 4; ++k) s.codes[k] += h[k];
      if (t.type == TensorType::TQ1_0) h[3] = 0;  // TQ1_0 "invalid" counts non-canonical bytes, not values
      scales.push_back(d);
      mo.add_group(h, d);
    }
  }
  s.nonfinite = mo.nonfinite;
  s.zeros = mo.zeros;
  const uint64_t finite = n - s.nonfinite;
  if (finite > 0) {
    s.mean = mo.sum / finite;
    s.rms = std::sqrt(mo.sum2 / finite);
    s.mean_abs = mo.sum_abs / finite;
    s.std = std::sqrt(std::max(0.0, mo.sum2 / finite - s.mean * s.mean));
    s.min = mo.lo;
    s.max = mo.hi;
  }
  s.n_scales = scales.size();
  std::vector<double> ok;
  for (double v : scales) (std::isfinite(v) ? ok.push_back(v) : void(++s.scale_nonfinite));
  if (!ok.empty()) {
    std::sort(ok.begin(), ok.end());
    s.scale_min = ok.front();
    s.scale_max = ok.back();
    s.scale_median = ok[ok.size() / 2];
  }
}

}  // namespace

TensorStats tensor_stats(const GgufTensorInfo& t) {
  TensorStats s;
  const uint64_t n = t.n_elements();
  s.count = n;
  if (type_traits(t.type).ternary) {
    ternary_stats(t, s);
    return s;
  }
  double sum = 0, sum2 = 0, sum_abs = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  std::vector<float> buf(std::min<uint64_t>(n, kDequantChunk));
  const uint64_t block = type_traits(t.type).block_size;
  for (uint64_t start = 0; start < n; start += buf.size()) {
    uint64_t count = std::min<uint64_t>(buf.size(), n - start);
    count -= count % block;
    if (count == 0) break;
    dequantize(t, start, count, buf.data());
    for (uint64_t i = 0; i < count; ++i) {
      const double v = buf[i];
      if (!std::isfinite(v)) {
        ++s.nonfinite;
        continue;
      }
      if (v == 0) ++s.zeros;
      sum += v;
      sum2 += v * v;
      sum_abs += std::fabs(v);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  const uint64_t finite = n - s.nonfinite;
  if (finite > 0) {
    s.mean = sum / finite;
    s.rms = std::sqrt(sum2 / finite);
    s.mean_abs = sum_abs / finite;
    s.std = std::sqrt(std::max(0.0, sum2 / finite - s.mean * s.mean));
    s.min = lo;
    s.max = hi;
  }
  return s;
}

}  // namespace bitnet
