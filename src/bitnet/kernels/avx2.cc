// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; run only where CPUID reports them).
// Bit-exact with scalar.cc: integer ternary products, and the canonical 64-lane float dot kept in eight
// 8-lane registers (lane l lives in register l / 8, element l % 8).
#include <immintrin.h>

#include <algorithm>

#include <cmath>

#include "bitnet/kernels/kernels.h"

// Everything here is compiled for this instruction set, so it must not define (or instantiate) any
// function another file could share: helpers stay in an anonymous namespace and use intrinsics or
// builtins, not inline library functions (a linker could otherwise pick this copy for every caller).

namespace bitnet::kernels {

namespace {

// A weight stream read once (kernels.h, kStreamPrefetch; measurements in avx512.cc).
inline void prefetch_stream(const void* p) {
  _mm_prefetch(static_cast<const char*>(p) + kStreamPrefetch, _MM_HINT_NTA);
}

// Halving tree over 64 lanes held as acc[0..7], identical to reduce_lanes().
inline float tree8(__m256 acc[8]) {
  for (int r = 0; r < 4; ++r) acc[r] = _mm256_add_ps(acc[r], acc[r + 4]);  // step 32
  for (int r = 0; r < 2; ++r) acc[r] = _mm256_add_ps(acc[r], acc[r + 2]);  // step 16
  __m256 v = _mm256_add_ps(acc[0], acc[1]);                                // step 8
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // step 4
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));                                          // step 2
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));                                      // step 1
  return _mm_cvtss_f32(x);
}

// Finishes a dot whose elements [done, n) did not fill whole 8-lane vectors.
template <typename Load>
float finish(__m256 acc[8], int64_t done, int64_t n, Load value_at, const float* b) {
  if (done == n) return tree8(acc);
  alignas(32) float lanes[kDotLanes];
  for (int r = 0; r < 8; ++r) _mm256_store_ps(lanes + 8 * r, acc[r]);
  for (int64_t i = done; i < n; ++i) lanes[i % kDotLanes] = __builtin_fmaf(value_at(i), b[i], lanes[i % kDotLanes]);
  return reduce_lanes(lanes);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 acc[8];
  for (auto& r : acc) r = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int r = 0; r < 8; ++r)
      acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * r), _mm256_loadu_ps(b + i + 8 * r), acc[r]);
  int64_t done = i;  // whole 8-element groups of the last, partial block (constant register indices keep
                     // acc in registers)
  for (int r = 0; r < 8; ++r)
    if (i + 8 * r + 8 <= n) {
      acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * r), _mm256_loadu_ps(b + i + 8 * r), acc[r]);
      done = i + 8 * r + 8;
    }
  i = done;
  return finish(acc, i, n, [a](int64_t k) { return a[k]; }, b);
}

inline __m256 load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

float dot_f16(const uint16_t* a, const float* b, int64_t n) {
  __m256 acc[8];
  for (auto& r : acc) r = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {  // (a row of the F16 LM head: the next rows are prefetched at its end)
    prefetch_stream(a + i);
    prefetch_stream(a + i + 32);
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_fmadd_ps(load_f16(a + i + 8 * r), _mm256_loadu_ps(b + i + 8 * r), acc[r]);
  }
  int64_t done = i;
  for (int r = 0; r < 8; ++r)
    if (i + 8 * r + 8 <= n) {
      acc[r] = _mm256_fmadd_ps(load_f16(a + i + 8 * r), _mm256_loadu_ps(b + i + 8 * r), acc[r]);
      done = i + 8 * r + 8;
    }
  i = done;
  return finish(acc, i, n, [a](int64_t k) { return _cvtsh_ss(a[k]); }, b);
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

void axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, _cvtsh_ss(x[i]), y[i]);
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4E));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xB1));
  return _mm_cvtsi128_si32(x);
}

// ---- Ternary GEMM on the Panel8 layout (kernels.h) ----
//
// One 32-byte step of a panel holds 8 rows x 16 elements; (step >> 2j) & 3 is the tile of elements
// 16s + 4j .. 16s + 4j + 3 of the 8 rows, 4 bytes per row. vpmaddubsw with a broadcast of the token's 4
// activations gives each row two int16 partial sums; those are added in int16 for 8 steps (32 products of
// |code * q| <= 3 * 128 per pair: |sum| <= 24576) and then widened into int32 with vpmaddwd.

inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

constexpr int64_t kFlushSteps = 8;

// NT tokens (2..4; one token: gemv_panel, below) against one panel of K/16 steps: acc[t] = 8 int32 row sums.
template <int NT>
inline void panel_dot(const uint8_t* w, int64_t steps, const int8_t* const* q, __m256i acc[NT]) {
  const __m256i mask = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_si256();
  for (int64_t s0 = 0; s0 < steps; s0 += kFlushSteps) {
    __m256i part[NT];
    for (int t = 0; t < NT; ++t) part[t] = _mm256_setzero_si256();
    const int64_t s1 = s0 + kFlushSteps < steps ? s0 + kFlushSteps : steps;
    for (int64_t s = s0; s < s1; ++s) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * s));
      for (int j = 0; j < 4; ++j) {
        const __m256i c = _mm256_and_si256(j ? _mm256_srli_epi16(packed, 2 * j) : packed, mask);
        for (int t = 0; t < NT; ++t)
          part[t] = _mm256_add_epi16(part[t], _mm256_maddubs_epi16(c, broadcast4(q[t] + 16 * s + 4 * j)));
      }
    }
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(part[t], ones));
  }
}

// One token against one panel, for decoding. As panel_dot<1>, with two changes that keep the same integer
// sums: each tile has its own int16 partial sum (in panel_dot<1> the step's four vpaddw formed one chain,
// a cycle each), and tiles 0 and 1 are masked in place (tile 1 then holds 4 * code: its pairs stay within
// 2 * 12 * 128, 8 steps 24576), tiles 2 and 3 likewise from one shift by 4, so a step takes one shift
// instead of three. Flushed every kFlushSteps: tiles 0 and 2 added in int16 (|sum| <= 12288), tiles 1 and 3
// (4 x their dots) widened each and divided back exactly. `ternary_gemm` at T = 1 in cache, one core of the
// AVX-512 host (Zen 5; 256 rows x 2560 or 6912, best of 30 runs): 22.1-22.4 -> 26.2-26.9 GB/s of weights.
inline __m256i gemv_panel(const uint8_t* w, int64_t steps, const int8_t* q) {
  const __m256i m0 = _mm256_set1_epi8(0x03), m1 = _mm256_set1_epi8(0x0C), ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  for (int64_t s0 = 0; s0 < steps; s0 += kFlushSteps) {
    __m256i p0 = _mm256_setzero_si256(), p1 = p0, p2 = p0, p3 = p0;
    const int64_t s1 = s0 + kFlushSteps < steps ? s0 + kFlushSteps : steps;
    auto step = [&](int64_t s) {
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * s)),
                    hi = _mm256_srli_epi16(lo, 4);
      const int8_t* x = q + 16 * s;
      p0 = _mm256_add_epi16(p0, _mm256_maddubs_epi16(_mm256_and_si256(lo, m0), broadcast4(x)));
      p1 = _mm256_add_epi16(p1, _mm256_maddubs_epi16(_mm256_and_si256(lo, m1), broadcast4(x + 4)));
      p2 = _mm256_add_epi16(p2, _mm256_maddubs_epi16(_mm256_and_si256(hi, m0), broadcast4(x + 8)));
      p3 = _mm256_add_epi16(p3, _mm256_maddubs_epi16(_mm256_and_si256(hi, m1), broadcast4(x + 12)));
    };
    int64_t s = s0;
    for (; s + 2 <= s1; s += 2) {
      prefetch_stream(w + 32 * s);  // decoding's stream, once per 64 bytes (s0 is even)
      step(s);
      step(s + 1);
    }
    if (s < s1) step(s);
    const __m256i by1 = _mm256_madd_epi16(_mm256_add_epi16(p0, p2), ones),
                  by4 = _mm256_add_epi32(_mm256_madd_epi16(p1, ones), _mm256_madd_epi16(p3, ones));
    acc = _mm256_add_epi32(acc, _mm256_add_epi32(by1, _mm256_srai_epi32(by4, 2)));
  }
  return acc;
}

void ternary_gemm(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const int32_t* act_sums,
                  const float* act_scales, int64_t T, float scale, float* y, int64_t ldy) {
  constexpr int64_t R = 8;
  const int64_t steps = K / 16;
  for (int64_t p = m0 / R; p * R < m1; ++p) {
    const int64_t base = p * R;
    const int64_t lo = base > m0 ? base : m0, hi = base + R < m1 ? base + R : m1;
    const uint8_t* w = codes + p * R * (K / 4);
    for (int64_t t = 0; t < T; t += 4) {
      const int nt = static_cast<int>(T - t < 4 ? T - t : 4);
      const int8_t* qs[4];
      for (int j = 0; j < nt; ++j) qs[j] = q + (t + j) * K;
      __m256i acc[4];
      switch (nt) {
        case 4: panel_dot<4>(w, steps, qs, acc); break;
        case 3: panel_dot<3>(w, steps, qs, acc); break;
        case 2: panel_dot<2>(w, steps, qs, acc); break;
        default: acc[0] = gemv_panel(w, steps, qs[0]); break;
      }
      for (int j = 0; j < nt; ++j) {
        alignas(32) int32_t dots[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(dots), acc[j]);
        for (int64_t m = lo; m < hi; ++m)
          y[(t + j) * ldy + m] = static_cast<float>(dots[m - base] - act_sums[t + j]) / act_scales[t + j] * scale;
      }
    }
  }
}

// int8 x int8 with maddubs: |w| (u8, <= 128) times q with w's sign (s8); pairs stay within int16. Not
// prefetched: with prefetch_stream per 64 bytes decoding with the q8 head was 0.5-4 % slower (BITNET_ISA=avx2 on
// the Zen 5 host, per-token A/B, 4 runs), without it the other streams' prefetches gained 4-6 %.
void int8_gemm(const int8_t* w, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales, int64_t T,
               const float* row_scales, float* y, int64_t ldy) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t m = m0; m < m1; ++m)
    for (int64_t t = 0; t < T; ++t) {
      __m256i acc = _mm256_setzero_si256();
      int64_t k = 0;
      for (; k + 32 <= K; k += 32) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + m * K + k));
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + t * K + k));
        const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(qv, wv));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
      }
      int32_t dot = hsum_epi32(acc);
      for (; k < K; ++k) dot += w[m * K + k] * q[t * K + k];
      y[t * ldy + m] = static_cast<float>(dot) / act_scales[t] * row_scales[m];
    }
}

// 4- and 6-bit LM head rows (layout in kernels.h; the AVX-512 table's scheme on two 8-lane halves): a group's
// 32 bytes give elements 0-31 (low nibbles, lanes 0-7) and 32-63 (high nibbles, lanes 8-15); vpmaddubsw + vpmaddwd
// sum four products per lane (u <= 63 times |q| <= 128, pairs within int16). Exact integers, as the scalar table.
constexpr int kQheadTokens = 2;
constexpr int kQheadSupers = kQheadMaxK / 512;

template <int Bits, int NT>
inline void qhead_rows(const uint8_t* w, size_t row_bytes, int64_t groups, int64_t m0, int64_t m1,
                       const int8_t* const* qs, const int32_t (*offs)[kQheadSupers][16], const float* act_scales,
                       const float* row_scales, float* const* ys) {
  constexpr int64_t kGroupBytes = Bits == 6 ? 48 : 32;
  const __m256i lo4 = _mm256_set1_epi8(0x0F), ones16 = _mm256_set1_epi16(1);
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* p = w + m * row_bytes;
    __m256i acc[NT][2];
    for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_si256();
    for (int64_t g0 = 0, s = 0; g0 < groups; g0 += 8, ++s) {
      const __m128i sb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const __m256i sc0 = _mm256_cvtepu8_epi32(sb), sc1 = _mm256_cvtepu8_epi32(_mm_srli_si128(sb, 8));
      p += 16;
      const int64_t g1 = groups - g0 < 8 ? groups : g0 + 8;
      __m256i blk[NT][2];
      for (int j = 0; j < NT; ++j) blk[j][0] = blk[j][1] = _mm256_setzero_si256();
      for (int64_t i = g0; i < g1; ++i, p += kGroupBytes) {
        prefetch_stream(p);
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        __m256i v0 = _mm256_and_si256(raw, lo4), v1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
        if constexpr (Bits == 6) {
          const __m256i h = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)));
          const __m256i m30 = _mm256_set1_epi8(0x30);
          v0 = _mm256_or_si256(v0, _mm256_and_si256(_mm256_sllv_epi64(h, _mm256_set_epi64x(2, 2, 4, 4)), m30));
          v1 = _mm256_or_si256(v1, _mm256_and_si256(_mm256_srlv_epi64(h, _mm256_set_epi64x(2, 2, 0, 0)), m30));
        }
        for (int j = 0; j < NT; ++j) {
          const __m256i* qv = reinterpret_cast<const __m256i*>(qs[j] + i * 64);
          blk[j][0] = _mm256_add_epi32(blk[j][0], _mm256_madd_epi16(_mm256_maddubs_epi16(v0, _mm256_loadu_si256(qv)), ones16));
          blk[j][1] = _mm256_add_epi32(blk[j][1], _mm256_madd_epi16(_mm256_maddubs_epi16(v1, _mm256_loadu_si256(qv + 1)), ones16));
        }
      }
      for (int j = 0; j < NT; ++j) {
        const __m256i* o = reinterpret_cast<const __m256i*>(offs[j][s]);
        acc[j][0] = _mm256_add_epi32(acc[j][0], _mm256_mullo_epi32(_mm256_sub_epi32(blk[j][0], _mm256_load_si256(o)), sc0));
        acc[j][1] = _mm256_add_epi32(acc[j][1], _mm256_mullo_epi32(_mm256_sub_epi32(blk[j][1], _mm256_load_si256(o + 1)), sc1));
      }
    }
    for (int j = 0; j < NT; ++j) {
      alignas(32) int32_t lanes[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[j][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), acc[j][1]);
      int64_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += lanes[l];
      ys[j][m] = static_cast<float>(dot) / act_scales[j] * row_scales[m];
    }
  }
}

// One token's offsets: 2^(Bits-1) x each block's activation sum (scalar: a small part of the work).
template <int Bits>
inline void qhead_offsets(const int8_t* q, int64_t groups, int32_t (*out)[16]) {
  for (int64_t g0 = 0, s = 0; g0 < groups; g0 += 8, ++s)
    for (int l = 0; l < 16; ++l) {
      int32_t sum = 0;
      for (int64_t i = g0; i < groups && i < g0 + 8; ++i)
        for (int e = 0; e < 4; ++e) sum += q[i * 64 + 4 * l + e];
      out[s][l] = sum * (1 << (Bits - 1));
    }
}

#include "bitnet/kernels/qhead_driver.inc"

// 32 double lanes in eight registers (lanes 4r .. 4r + 3 in register r); see the scalar table.
double sum_squares(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  int64_t i = 0;
  auto sq = [&](__m256d& acc, int64_t at) {
    const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + at));
    acc = _mm256_fmadd_pd(v, v, acc);
  };
  for (; i + 32 <= n; i += 32) {
    sq(a0, i), sq(a1, i + 4), sq(a2, i + 8), sq(a3, i + 12);
    sq(a4, i + 16), sq(a5, i + 20), sq(a6, i + 24), sq(a7, i + 28);
  }
  alignas(32) double lanes[kSquareLanes];
  _mm256_store_pd(lanes, a0);
  _mm256_store_pd(lanes + 4, a1);
  _mm256_store_pd(lanes + 8, a2);
  _mm256_store_pd(lanes + 12, a3);
  _mm256_store_pd(lanes + 16, a4);
  _mm256_store_pd(lanes + 20, a5);
  _mm256_store_pd(lanes + 24, a6);
  _mm256_store_pd(lanes + 28, a7);
  return finish_sum_squares(lanes, x, i, n);
}

uint64_t read_sum(const uint8_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {  // prefetched as the kernels prefetch (the roofline reads as decoding reads)
    prefetch_stream(p + i);
    prefetch_stream(p + i + 64);
    a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t l[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l), _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  const uint64_t s = l[0] + l[1] + l[2] + l[3];
  return s + scalar_table().read_sum(p + i, n - i);  // the words after the last full step
}

// ---- Attention (kernels.h): each K/V row read once for all the queries of its KV head ----
//
// Scores: the head sizes of with_fixed_head_size (kernels.h) have their own code, others go through dot
// (FromDots). Mix: any head size that is a multiple of 16, others through axpy.

// Steps 32, 16 and 8 of the canonical tree for the dots of one row with NQ queries (q + g*HD), HD a
// multiple of 8 from 64: lane l of register r (elements 8r + l, 64 + 8r + l, ...) accumulated by fma from 0, the registers
// paired as the tree pairs them, ((r0 + r4) + (r2 + r6)) + ((r1 + r5) + (r3 + r7)). Registers are summed
// as soon as both exist, so each query holds at most four; the row is loaded (and converted) once for all.
template <bool F16, int HD, int NQ>
inline void dots_lanes8(const uint8_t* row, const float* q, __m256 v[NQ]) {
  static_assert(HD % 8 == 0 && HD >= 64);
  const auto load = [row](int i) {
    return F16 ? load_f16(reinterpret_cast<const uint16_t*>(row) + i) : _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  };
  const auto lanes = [&](int r, __m256 c[NQ]) {  // register r of every query
    const __m256 x = load(8 * r);
    for (int g = 0; g < NQ; ++g) c[g] = _mm256_fmadd_ps(x, _mm256_loadu_ps(q + g * HD + 8 * r), _mm256_setzero_ps());
    for (int m = 64; m + 8 * r < HD; m += 64) {  // the lanes' further elements, 64 apart
      const __m256 y = load(m + 8 * r);
      for (int g = 0; g < NQ; ++g) c[g] = _mm256_fmadd_ps(y, _mm256_loadu_ps(q + g * HD + m + 8 * r), c[g]);
    }
  };
  __m256 a[NQ], b[NQ], t[NQ];
  lanes(0, a); lanes(4, t);
  for (int g = 0; g < NQ; ++g) a[g] = _mm256_add_ps(a[g], t[g]);  // r0 + r4
  lanes(2, b); lanes(6, t);
  for (int g = 0; g < NQ; ++g) a[g] = _mm256_add_ps(a[g], _mm256_add_ps(b[g], t[g]));  // + (r2 + r6)
  lanes(1, b); lanes(5, t);
  for (int g = 0; g < NQ; ++g) b[g] = _mm256_add_ps(b[g], t[g]);  // r1 + r5
  lanes(3, v); lanes(7, t);
  for (int g = 0; g < NQ; ++g) v[g] = _mm256_add_ps(a[g], _mm256_add_ps(b[g], _mm256_add_ps(v[g], t[g])));
}

// Steps 4, 2, 1 of the tree for one vector of 8 lanes (as tree8).
inline float tree_last(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

// Steps 4, 2, 1 for eight vectors at once (v[r]: row r's 8 lanes), by shuffles that keep the tree's
// pairing (lane l with l + 4, then l + 2, then l + 1). Returns the 8 sums in row order.
inline __m256 tree_last8(const __m256 v[8]) {
  __m256 t[4], u[2];
  for (int i = 0; i < 4; ++i)  // step 4: [row 2i's 4 sums | row 2i+1's]
    t[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x31));
  for (int i = 0; i < 2; ++i)  // step 2: halves [row 4i: 2 | row 4i+2: 2], [row 4i+1: 2 | row 4i+3: 2]
    u[i] = _mm256_add_ps(_mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44), _mm256_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
  // step 1: low half rows 0, 2, 4, 6; high half rows 1, 3, 5, 7
  const __m256 d = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], 0x88), _mm256_shuffle_ps(u[0], u[1], 0xDD));
  return _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// The step-8 vectors of rows [j, j + R) (R <= 8) with queries [g0, g0 + gn) into part[g][r], two queries
// per pass over a row (more would not fit the 16 registers).
template <bool F16, int HD>
inline void score_block(const uint8_t* rows, int64_t stride, int64_t j, int R, const float* q, int64_t gn,
                        __m256 part[][8], const uint8_t* next) {
  for (int r = 0; r < R; ++r) {
    const uint8_t* row = rows + (j + r) * stride;
    if (next)  // attn_scores' `next` row, asked for as this row is read (kernels.h)
      for (int64_t b = 0; b < HD * (F16 ? 2 : 4); b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(next + (j + r) * stride + b), _MM_HINT_T0);
    int64_t g = 0;
    for (; g + 2 <= gn; g += 2) {
      __m256 v[2];
      dots_lanes8<F16, HD, 2>(row, q + g * HD, v);
      part[g][r] = v[0];
      part[g + 1][r] = v[1];
    }
    if (g < gn) dots_lanes8<F16, HD, 1>(row, q + g * HD, &part[g][r]);
  }
}

constexpr int64_t kMaxQueries = 8;  // queries per pass over the rows (GQA groups are usually 1-8 heads)

template <bool F16, int HD>
void attn_scores_fixed(const uint8_t* rows, int64_t stride, int64_t n, const float* q, int64_t nq, float* out,
                       int64_t ldo, const uint8_t* next) {
  __m256 part[kMaxQueries][8];
  for (int64_t g0 = 0; g0 < nq; g0 += kMaxQueries) {
    const int64_t gn = nq - g0 < kMaxQueries ? nq - g0 : kMaxQueries;
    const float* qs = q + g0 * HD;
    float* os = out + g0 * ldo;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      score_block<F16, HD>(rows, stride, j, 8, qs, gn, part, g0 == 0 ? next : nullptr);
      for (int64_t g = 0; g < gn; ++g) _mm256_storeu_ps(os + g * ldo + j, tree_last8(part[g]));
    }
    if (j < n) {
      score_block<F16, HD>(rows, stride, j, static_cast<int>(n - j), qs, gn, part, g0 == 0 ? next : nullptr);
      for (int64_t g = 0; g < gn; ++g)
        for (int64_t r = 0; j + r < n; ++r) os[g * ldo + j + r] = tree_last(part[g][r]);
    }
  }
}

void attn_scores(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* q, int64_t nq, int64_t hd,
                 float* out, int64_t ldo, const uint8_t* next) {
  const bool fixed = with_fixed_head_size(hd, [&](auto size) {
    if (f16) attn_scores_fixed<true, decltype(size)::value>(rows, stride, n, q, nq, out, ldo, next);
    else attn_scores_fixed<false, decltype(size)::value>(rows, stride, n, q, nq, out, ldo, next);
  });
  if (fixed) return;
  FromDots<avx2_table>::attn_scores(rows, stride, f16, n, q, nq, hd, out, ldo, next);
}

// Two accumulator registers (16 output elements of one query), named: as an [NQ][2] array GCC stored
// every accumulator to the stack on each row.
struct Acc2 {
  __m256 lo, hi;
  void load(const float* p) { lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8); }
  void fma(const float* w, __m256 a, __m256 b) {
    const __m256 s = _mm256_broadcast_ss(w);
    lo = _mm256_fmadd_ps(s, a, lo), hi = _mm256_fmadd_ps(s, b, hi);
  }
  void store(float* p) const { _mm256_storeu_ps(p, lo), _mm256_storeu_ps(p + 8, hi); }
};

// Up to four queries x 16 output elements [c, c + 16) over rows [j0, j1), added to out. Each output
// element is a chain of fma over the rows in order, as axpy_f32 row after row.
template <bool F16, int NQ>
inline void mix_chunk(const uint8_t* rows, int64_t stride, int64_t j0, int64_t j1, const float* w, int64_t ldw,
                      int64_t hd, int64_t c, float* out) {
  static_assert(NQ >= 1 && NQ <= 4);
  Acc2 x0, x1, x2, x3;
  x0.load(out + c);
  if constexpr (NQ > 1) x1.load(out + hd + c);
  if constexpr (NQ > 2) x2.load(out + 2 * hd + c);
  if constexpr (NQ > 3) x3.load(out + 3 * hd + c);
  for (int64_t j = j0; j < j1; ++j) {
    const uint8_t* row = rows + j * stride;
    const __m256 a = F16 ? load_f16(reinterpret_cast<const uint16_t*>(row) + c) : _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
    const __m256 b = F16 ? load_f16(reinterpret_cast<const uint16_t*>(row) + c + 8)
                         : _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c + 8);
    x0.fma(w + j, a, b);
    if constexpr (NQ > 1) x1.fma(w + ldw + j, a, b);
    if constexpr (NQ > 2) x2.fma(w + 2 * ldw + j, a, b);
    if constexpr (NQ > 3) x3.fma(w + 3 * ldw + j, a, b);
  }
  x0.store(out + c);
  if constexpr (NQ > 1) x1.store(out + hd + c);
  if constexpr (NQ > 2) x2.store(out + 2 * hd + c);
  if constexpr (NQ > 3) x3.store(out + 3 * hd + c);
}

constexpr int64_t kMixCols = 16;
#include "bitnet/kernels/attn_mix_driver.inc"

void attn_mix(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* w, int64_t ldw, int64_t nq,
              int64_t hd, float* out) {
  if (hd % 16 == 0) return f16 ? attn_mix_rows<true>(rows, stride, n, w, ldw, nq, hd, out)
                               : attn_mix_rows<false>(rows, stride, n, w, ldw, nq, hd, out);
  FromDots<avx2_table>::attn_mix(rows, stride, f16, n, w, ldw, nq, hd, out);
}

// exp_canonical (kernels.h) on 8 lanes: the same operations in the same order.
inline __m256 exp8(__m256 x) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(ExpConst::kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(ExpConst::kNegLn2Hi), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(ExpConst::kNegLn2Lo), r);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(ExpConst::kP0), r, _mm256_set1_ps(ExpConst::kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ExpConst::kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ExpConst::kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ExpConst::kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ExpConst::kP5));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  // Outside [-87.34, 88.72] (and for NaN) n may not fit the exponent field: the lanes are replaced below.
  const __m256i k = _mm256_cvtps_epi32(n);  // exact: n is an integer
  const __m256i k1 = _mm256_srai_epi32(_mm256_add_epi32(k, _mm256_srli_epi32(k, 31)), 1);  // k / 2, truncated
  const __m256i k2 = _mm256_sub_epi32(k, k1);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, _mm256_set1_epi32(127)), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, _mm256_set1_epi32(127)), 23));
  __m256 e = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  e = _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(ExpConst::kUnderflow), _CMP_LT_OQ));
  e = _mm256_blendv_ps(e, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, _mm256_set1_ps(ExpConst::kOverflow), _CMP_GE_OQ));
  return _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

void exp_shift(const float* x, float shift, float* y, int64_t n) {
  const __m256 s = _mm256_set1_ps(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
  if (i < n) {  // the tail in a padded vector (lanes are independent): the scalar exp is far slower per element
    alignas(32) float t[8] = {};
    std::copy(x + i, x + n, t);
    _mm256_store_ps(t, exp8(_mm256_sub_ps(_mm256_load_ps(t), s)));
    std::copy(t, t + (n - i), y + i);
  }
}

void silu_mul(const float* g, float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = exp8(_mm256_xor_ps(gv, _mm256_set1_ps(-0.0f)));  // -g
    _mm256_storeu_ps(u + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_loadu_ps(u + i)));
  }
  silu_mul_scalar(g + i, u + i, n - i);
}

void scale_mul(const float* x, float a, const float* g, float* out, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), va), _mm256_loadu_ps(g + i)));
  scale_mul_scalar(x + i, a, g + i, out + i, n - i);
}

void relu_sqr_mul(const float* g, float* u, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 r = _mm256_and_ps(_mm256_cmp_ps(gv, zero, _CMP_GT_OQ), gv);  // g > 0 ? g : +0 (NaN -> +0)
    _mm256_storeu_ps(u + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(u + i)));
  }
  relu_sqr_mul_scalar(g + i, u + i, n - i);
}

// vcvtps2ph (F16C) rounds to nearest even like f32_to_fp16, subnormal and overflowing halves included.
void to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  to_f16_scalar(x + i, y + i, n - i);
}

}  // namespace

const KernelTable* avx2_table() {
  static const KernelTable t{"avx2",   TernaryLayout::Panel8, QheadLayout::Rows, ternary_gemm, int8_gemm, qhead_gemm, sum_squares, quantize_row_i8,
                             dot_f32,  dot_f16,               FromDots<avx2_table>::gemm_f16,
                             axpy_f32, axpy_f16,              read_sum,     attn_scores,
                             attn_mix,     exp_shift,    silu_mul,     to_f16,
                             scale_mul,    relu_sqr_mul};
  return &t;
}

}  // namespace bitnet::kernels
