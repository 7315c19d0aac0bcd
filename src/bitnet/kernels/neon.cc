// ARM NEON + dot-product kernels (compiled with -march=armv8.2-a+dotprod; used only where the CPU reports
// the dot-product extension). Bit-exact with scalar.cc: ternary and int8 products are exact integers
// (sdot), and the canonical 64-lane float dot lives in sixteen 4-lane registers (lane l in register l / 4,
// element l % 4). Ternary weights stay in the file's I2_S layout.
#include <arm_neon.h>

#include <algorithm>

#include "bitnet/kernels/kernels.h"

// Everything here is compiled for this instruction set, so it must not define (or instantiate) any
// function another file could share: helpers stay in an anonymous namespace and use intrinsics or
// builtins, not inline library functions.

namespace bitnet::kernels {

namespace {

// ---- Ternary (I2_S: 128-element blocks of 32 bytes, group g of a block in bits 6 - 2g) ----

// sum_k code[k] * q[k] over one row (K a multiple of 128), codes 0..3 as signed bytes. Each of a block's 8
// sdot has an accumulator of its own: with two, each chain took 4 sdot per block one after another (latency
// 2-4 cycles each) where cores issue 2-4 sdot per cycle. (Not timed: there is no aarch64 machine here;
// the sums are the same integers, checked under qemu by kernels.cross_aarch64.)
inline int32_t ternary_row_dot(const uint8_t* row, int64_t K, const int8_t* q) {
  const uint8x16_t mask = vdupq_n_u8(3);
  int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t b = 0; b < K / 128; ++b) {
    const uint8x16_t lo = vld1q_u8(row + 32 * b), hi = vld1q_u8(row + 32 * b + 16);
    const int8_t* x = q + 128 * b;
    // Group g: elements 32g .. 32g + 31 (bytes 0-15 of the block, then 16-31).
    a0 = vdotq_s32(a0, vreinterpretq_s8_u8(vshrq_n_u8(lo, 6)), vld1q_s8(x));
    a1 = vdotq_s32(a1, vreinterpretq_s8_u8(vshrq_n_u8(hi, 6)), vld1q_s8(x + 16));
    a2 = vdotq_s32(a2, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(lo, 4), mask)), vld1q_s8(x + 32));
    a3 = vdotq_s32(a3, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(hi, 4), mask)), vld1q_s8(x + 48));
    a4 = vdotq_s32(a4, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(lo, 2), mask)), vld1q_s8(x + 64));
    a5 = vdotq_s32(a5, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(hi, 2), mask)), vld1q_s8(x + 80));
    a6 = vdotq_s32(a6, vreinterpretq_s8_u8(vandq_u8(lo, mask)), vld1q_s8(x + 96));
    a7 = vdotq_s32(a7, vreinterpretq_s8_u8(vandq_u8(hi, mask)), vld1q_s8(x + 112));
  }
  const int32x4_t sum = vaddq_s32(vaddq_s32(vaddq_s32(a0, a1), vaddq_s32(a2, a3)),
                                  vaddq_s32(vaddq_s32(a4, a5), vaddq_s32(a6, a7)));
  return vaddvq_s32(sum);
}

void ternary_gemm(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const int32_t* act_sums,
                  const float* act_scales, int64_t T, float scale, float* y, int64_t ldy) {
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* row = codes + m * (K / 4);
    for (int64_t t = 0; t < T; ++t) {
      const int32_t dot = ternary_row_dot(row, K, q + t * K);
      y[t * ldy + m] = static_cast<float>(dot - act_sums[t]) / act_scales[t] * scale;
    }
  }
}

void int8_gemm(const int8_t* w, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales, int64_t T,
               const float* row_scales, float* y, int64_t ldy) {
  for (int64_t m = m0; m < m1; ++m) {
    const int8_t* wr = w + m * K;
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      // Four accumulators, as ternary_row_dot (one chain of sdot per 16 bytes was latency-bound).
      int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
      int64_t k = 0;
      for (; k + 64 <= K; k += 64) {
        a0 = vdotq_s32(a0, vld1q_s8(wr + k), vld1q_s8(qt + k));
        a1 = vdotq_s32(a1, vld1q_s8(wr + k + 16), vld1q_s8(qt + k + 16));
        a2 = vdotq_s32(a2, vld1q_s8(wr + k + 32), vld1q_s8(qt + k + 32));
        a3 = vdotq_s32(a3, vld1q_s8(wr + k + 48), vld1q_s8(qt + k + 48));
      }
      for (; k + 16 <= K; k += 16) a0 = vdotq_s32(a0, vld1q_s8(wr + k), vld1q_s8(qt + k));
      int32_t dot = vaddvq_s32(vaddq_s32(vaddq_s32(a0, a1), vaddq_s32(a2, a3)));
      for (; k < K; ++k) dot += wr[k] * qt[k];
      y[t * ldy + m] = static_cast<float>(dot) / act_scales[t] * row_scales[m];
    }
  }
}

// ---- 4- and 6-bit LM head rows (layout in kernels.h) ----
//
// A group's values are made signed (u - offset) 16 at a time and multiplied by sdot, whose four lanes over
// elements 16r .. 16r + 15 are blocks 4r .. 4r + 3: acc[r] holds blocks 4r..4r+3 of a super-block, scaled once
// at its end. Exact integers, as the scalar table.
template <int Bits>
inline int64_t qhead_row_dot(const uint8_t* p, int64_t groups, const int8_t* q) {
  const uint8x16_t lo4 = vdupq_n_u8(15), two = vdupq_n_u8(3), off = vdupq_n_u8(Bits == 6 ? 32 : 8);
  int64x2_t total = vdupq_n_s64(0);
  for (int64_t g0 = 0; g0 < groups; g0 += 8) {
    const uint8x16_t sb = vld1q_u8(p);
    p += 16;
    const uint16x8_t s_lo = vmovl_u8(vget_low_u8(sb)), s_hi = vmovl_u8(vget_high_u8(sb));
    const int32x4_t sc[4] = {vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(s_lo))), vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(s_lo))),
                             vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(s_hi))), vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(s_hi)))};
    int32x4_t blk[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    const int64_t g1 = groups - g0 < 8 ? groups : g0 + 8;
    for (int64_t i = g0; i < g1; ++i, p += Bits == 6 ? 48 : 32) {
      const uint8x16_t r0 = vld1q_u8(p), r1 = vld1q_u8(p + 16);
      uint8x16_t u[4] = {vandq_u8(r0, lo4), vandq_u8(r1, lo4), vshrq_n_u8(r0, 4), vshrq_n_u8(r1, 4)};
      if constexpr (Bits == 6) {
        const uint8x16_t h = vld1q_u8(p + 32);
        u[0] = vorrq_u8(u[0], vshlq_n_u8(vandq_u8(h, two), 4));
        u[1] = vorrq_u8(u[1], vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), two), 4));
        u[2] = vorrq_u8(u[2], vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), two), 4));
        u[3] = vorrq_u8(u[3], vshlq_n_u8(vshrq_n_u8(h, 6), 4));
      }
      const int8_t* x = q + i * 64;
      for (int r = 0; r < 4; ++r) blk[r] = vdotq_s32(blk[r], vreinterpretq_s8_u8(vsubq_u8(u[r], off)), vld1q_s8(x + 16 * r));
    }
    for (int r = 0; r < 4; ++r) total = vaddq_s64(total, vpaddlq_s32(vmulq_s32(blk[r], sc[r])));
  }
  return vaddvq_s64(total);
}

void qhead_gemm(int bits, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                const float* act_scales, int64_t T, const float* row_scales, float* y, int64_t ldy) {
  for (int64_t m = m0; m < m1; ++m)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t dot = bits == 6 ? qhead_row_dot<6>(w + m * row_bytes, K / 64, q + t * K)
                                    : qhead_row_dot<4>(w + m * row_bytes, K / 64, q + t * K);
      y[t * ldy + m] = static_cast<float>(dot) / act_scales[t] * row_scales[m];
    }
}

// ---- Float ----

// 32 double lanes in sixteen registers (lane l in register l / 2); see the scalar table.
double sum_squares(const float* x, int64_t n) {
  float64x2_t acc[16];
  for (auto& a : acc) a = vdupq_n_f64(0);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int r = 0; r < 8; ++r) {
      const float32x4_t v = vld1q_f32(x + i + 4 * r);
      const float64x2_t lo = vcvt_f64_f32(vget_low_f32(v)), hi = vcvt_high_f64_f32(v);
      acc[2 * r] = vfmaq_f64(acc[2 * r], lo, lo);  // exact product: the fma rounds like the scalar add
      acc[2 * r + 1] = vfmaq_f64(acc[2 * r + 1], hi, hi);
    }
  double lanes[kSquareLanes];
  for (int r = 0; r < 16; ++r) vst1q_f64(lanes + 2 * r, acc[r]);
  return finish_sum_squares(lanes, x, i, n);
}

// quantize_row_i8 in 4 lanes: maxNum skips NaN like std::max does, vrndnq rounds half to even, and
// minNum(NaN, 127) = 127 as fmin.
float quantize_i8(const float* x, int64_t K, int8_t* q, int32_t* sum) {
  float32x4_t mx = vdupq_n_f32(0);
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) mx = vmaxnmq_f32(mx, vabsq_f32(vld1q_f32(x + k)));
  const float s = quantize_scale(vmaxnmvq_f32(mx), x, k, K);
  const float32x4_t vs = vdupq_n_f32(s), hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-128.0f);
  int32x4_t total = vdupq_n_s32(0);
  for (k = 0; k + 4 <= K; k += 4) {
    const float32x4_t v = vmaxnmq_f32(vminnmq_f32(vrndnq_f32(vmulq_f32(vld1q_f32(x + k), vs)), hi), lo);
    const int32x4_t iv = vcvtq_s32_f32(v);
    total = vaddq_s32(total, iv);
    int32_t tmp[4];
    vst1q_s32(tmp, iv);
    for (int l = 0; l < 4; ++l) q[k + l] = static_cast<int8_t>(tmp[l]);
  }
  const int32_t t = vaddvq_s32(total) + quantize_tail(x, k, K, s, q);
  if (sum) *sum = t;
  return s;
}

// The canonical 64-lane dot: 16 registers x 4 lanes, then the scalar halving tree.
template <typename Load>
inline float dot_impl(Load load4, const float* b, int64_t n) {
  float32x4_t acc[16];
  for (auto& r : acc) r = vdupq_n_f32(0);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int r = 0; r < 16; ++r) acc[r] = vfmaq_f32(acc[r], load4(i + 4 * r), vld1q_f32(b + i + 4 * r));
  for (; i + 4 <= n; i += 4) {
    const int r = static_cast<int>((i % 64) / 4);
    acc[r] = vfmaq_f32(acc[r], load4(i), vld1q_f32(b + i));
  }
  float lanes[kDotLanes];
  for (int r = 0; r < 16; ++r) vst1q_f32(lanes + 4 * r, acc[r]);
  for (; i < n; ++i) lanes[i % kDotLanes] = __builtin_fmaf(vgetq_lane_f32(load4(i), 0), b[i], lanes[i % kDotLanes]);
  for (int step = kDotLanes / 2; step >= 1; step /= 2)
    for (int l = 0; l < step; ++l) lanes[l] += lanes[l + step];
  return lanes[0];
}

float dot_f32(const float* a, const float* b, int64_t n) {
  return dot_impl([a](int64_t i) { return vld1q_f32(a + i); }, b, n);
}

inline float32x4_t load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

float dot_f16(const uint16_t* a, const float* b, int64_t n) {
  return dot_impl([a](int64_t i) { return load_f16(a + i); }, b, n);
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const float32x4_t va = vdupq_n_f32(a);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, vld1q_f32(x + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

void axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  const float32x4_t va = vdupq_n_f32(a);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, load_f16(x + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, vgetq_lane_f32(load_f16(x + i), 0), y[i]);
}

uint64_t read_sum(const uint8_t* p, size_t n) {
  uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a = vaddq_u64(a, vreinterpretq_u64_u8(vld1q_u8(p + i)));
    b = vaddq_u64(b, vreinterpretq_u64_u8(vld1q_u8(p + i + 16)));
    c = vaddq_u64(c, vreinterpretq_u64_u8(vld1q_u8(p + i + 32)));
    d = vaddq_u64(d, vreinterpretq_u64_u8(vld1q_u8(p + i + 48)));
  }
  const uint64_t s = vaddvq_u64(vaddq_u64(vaddq_u64(a, b), vaddq_u64(c, d)));
  return s + scalar_table().read_sum(p + i, n - i);  // the words after the last full step
}

// exp_canonical (kernels.h) on 4 lanes: the same operations in the same order (vfmaq_f32(a, b, c) = a + b*c,
// fused, as std::fma(b, c, a)).
inline float32x4_t exp4(float32x4_t x) {
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(ExpConst::kLog2e)));  // ties to even
  float32x4_t r = vfmaq_f32(x, n, vdupq_n_f32(ExpConst::kNegLn2Hi));
  r = vfmaq_f32(r, n, vdupq_n_f32(ExpConst::kNegLn2Lo));
  float32x4_t p = vfmaq_f32(vdupq_n_f32(ExpConst::kP1), vdupq_n_f32(ExpConst::kP0), r);
  p = vfmaq_f32(vdupq_n_f32(ExpConst::kP2), p, r);
  p = vfmaq_f32(vdupq_n_f32(ExpConst::kP3), p, r);
  p = vfmaq_f32(vdupq_n_f32(ExpConst::kP4), p, r);
  p = vfmaq_f32(vdupq_n_f32(ExpConst::kP5), p, r);
  const float32x4_t y = vaddq_f32(vfmaq_f32(r, p, vmulq_f32(r, r)), vdupq_n_f32(1.0f));
  // Outside [-87.34, 88.72] (and for NaN) n may not fit the exponent field: the lanes are replaced below.
  const int32x4_t k = vcvtq_s32_f32(n);  // exact: n is an integer
  const int32x4_t k1 = vshrq_n_s32(vaddq_s32(k, vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(k), 31))), 1);
  const int32x4_t k2 = vsubq_s32(k, k1);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k1, vdupq_n_s32(127)), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k2, vdupq_n_s32(127)), 23));
  float32x4_t e = vmulq_f32(vmulq_f32(y, s1), s2);
  e = vbslq_f32(vcltq_f32(x, vdupq_n_f32(ExpConst::kUnderflow)), vdupq_n_f32(0.0f), e);
  e = vbslq_f32(vcgeq_f32(x, vdupq_n_f32(ExpConst::kOverflow)), vdupq_n_f32(__builtin_inff()), e);
  return vbslq_f32(vceqq_f32(x, x), e, x);  // NaN lanes: x
}

void exp_shift(const float* x, float shift, float* y, int64_t n) {
  const float32x4_t s = vdupq_n_f32(shift);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, exp4(vsubq_f32(vld1q_f32(x + i), s)));
  if (i < n) {  // the tail in a padded vector (lanes are independent): the scalar exp is far slower per element
    float t[4] = {};
    std::copy(x + i, x + n, t);
    vst1q_f32(t, exp4(vsubq_f32(vld1q_f32(t), s)));
    std::copy(t, t + (n - i), y + i);
  }
}

void silu_mul(const float* g, float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t gv = vld1q_f32(g + i);
    const float32x4_t e = exp4(vnegq_f32(gv));
    vst1q_f32(u + i, vmulq_f32(vdivq_f32(gv, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(u + i)));
  }
  silu_mul_scalar(g + i, u + i, n - i);
}

void scale_mul(const float* x, float a, const float* g, float* out, int64_t n) {
  const float32x4_t va = vdupq_n_f32(a);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vmulq_f32(vmulq_f32(vld1q_f32(x + i), va), vld1q_f32(g + i)));
  scale_mul_scalar(x + i, a, g + i, out + i, n - i);
}

void relu_sqr_mul(const float* g, float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t gv = vld1q_f32(g + i);
    const float32x4_t r = vbslq_f32(vcgtq_f32(gv, vdupq_n_f32(0.0f)), gv, vdupq_n_f32(0.0f));  // NaN -> +0
    vst1q_f32(u + i, vmulq_f32(vmulq_f32(r, r), vld1q_f32(u + i)));
  }
  relu_sqr_mul_scalar(g + i, u + i, n - i);
}

}  // namespace

const KernelTable* neon_table() {
  static const KernelTable t{"neon",   TernaryLayout::I2S, QheadLayout::Rows, ternary_gemm, int8_gemm, qhead_gemm, sum_squares, quantize_i8,
                             dot_f32,  dot_f16,            FromDots<neon_table>::gemm_f16,
                             axpy_f32, axpy_f16,           read_sum,     FromDots<neon_table>::attn_scores,
                             FromDots<neon_table>::attn_mix, exp_shift,    silu_mul,
                             to_f16_scalar, scale_mul,   relu_sqr_mul};
  return &t;
}

}  // namespace bitnet::kernels
