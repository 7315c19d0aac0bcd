// AVX-512 (F, BW, VL, VNNI) kernels, compiled with those flags; run only where CPUID reports them.
// Ternary: 64 code bytes (two I2_S blocks) per step, vpdpbusd of codes (u8) with int8 activations that
// prepare_acts has laid out so each 64-byte vector pairs with one code group of both blocks.
// Float: the canonical 64-lane dot in four 16-lane registers (lane l in register l / 16).
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "bitnet/kernels/kernels.h"

// Everything here is compiled for this instruction set, so it must not define (or instantiate) any
// function another file could share: helpers stay in an anonymous namespace and use intrinsics or
// builtins, not inline library functions (a linker could otherwise pick this copy for every caller).

namespace bitnet::kernels {

namespace {

// Activation order: for each pair of 128-element blocks (256 values), four 64-byte groups g = 0..3,
// each = 32 values of group g of the first block, then 32 of the second. A trailing odd block stays
// in natural order.
void prepare_acts(const int8_t* q, int64_t K, int8_t* out) {
  const int64_t pairs = K / 256;
  for (int64_t p = 0; p < pairs; ++p)
    for (int g = 0; g < 4; ++g) {
      std::memcpy(out + 256 * p + 64 * g, q + 256 * p + 32 * g, 32);
      std::memcpy(out + 256 * p + 64 * g + 32, q + 256 * p + 128 + 32 * g, 32);
    }
  if (K % 256) std::memcpy(out + 256 * pairs, q + 256 * pairs, 128);
}

// Decode (one token), one row: the codes are not shifted down; group g is masked in place (code << 6-2g,
// at most 192, still a valid u8 operand), accumulated separately, and the exact multiples of 4^(3-g)
// are shifted back after the loop.
inline int32_t gemv1(const uint8_t* row, int64_t K, const int8_t* q) {
  const __m512i m0 = _mm512_set1_epi8(static_cast<char>(0xC0)), m1 = _mm512_set1_epi8(0x30),
                m2 = _mm512_set1_epi8(0x0C), m3 = _mm512_set1_epi8(0x03);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t p = 0; p < K / 256; ++p) {
    _mm_prefetch(reinterpret_cast<const char*>(row + 64 * p + 2048), _MM_HINT_T0);  // ~3 rows ahead
    const __m512i w = _mm512_loadu_si512(row + 64 * p);
    const int8_t* a = q + 256 * p;
    a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(w, m0), _mm512_loadu_si512(a));
    a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(w, m1), _mm512_loadu_si512(a + 64));
    a2 = _mm512_dpbusd_epi32(a2, _mm512_and_si512(w, m2), _mm512_loadu_si512(a + 128));
    a3 = _mm512_dpbusd_epi32(a3, _mm512_and_si512(w, m3), _mm512_loadu_si512(a + 192));
  }
  __m512i v = _mm512_add_epi32(_mm512_srai_epi32(a0, 6), _mm512_srai_epi32(a1, 4));
  v = _mm512_add_epi32(v, _mm512_add_epi32(_mm512_srai_epi32(a2, 2), a3));
  return _mm512_reduce_add_epi32(v);
}

// Codes of one 64-byte step shifted down to 0..3 per byte, group g in c[g].
inline void unpack(const uint8_t* src, __m512i c[4]) {
  const __m512i mask = _mm512_set1_epi8(3);
  const __m512i w = _mm512_loadu_si512(src);
  c[0] = _mm512_and_si512(_mm512_srli_epi16(w, 6), mask);
  c[1] = _mm512_and_si512(_mm512_srli_epi16(w, 4), mask);
  c[2] = _mm512_and_si512(_mm512_srli_epi16(w, 2), mask);
  c[3] = _mm512_and_si512(w, mask);
}

// Prompt tile: two rows x NT tokens (NT <= 4); each unpacked code vector feeds NT vpdpbusd.
template <int NT>
inline void tile2(const uint8_t* r0, const uint8_t* r1, int64_t K, const int8_t* const* q, int32_t out[2][4]) {
  __m512i acc[2][NT];
  for (int j = 0; j < NT; ++j) acc[0][j] = acc[1][j] = _mm512_setzero_si512();
  for (int64_t p = 0; p < K / 256; ++p) {
    __m512i c0[4], c1[4];
    unpack(r0 + 64 * p, c0);
    unpack(r1 + 64 * p, c1);
    for (int g = 0; g < 4; ++g)
      for (int j = 0; j < NT; ++j) {
        const __m512i a = _mm512_loadu_si512(q[j] + 256 * p + 64 * g);
        acc[0][j] = _mm512_dpbusd_epi32(acc[0][j], c0[g], a);
        acc[1][j] = _mm512_dpbusd_epi32(acc[1][j], c1[g], a);
      }
  }
  for (int j = 0; j < NT; ++j) {
    out[0][j] = _mm512_reduce_add_epi32(acc[0][j]);
    out[1][j] = _mm512_reduce_add_epi32(acc[1][j]);
  }
}

// sum_k code[k] * q[k] over a trailing 128-element block (K % 256 == 128), natural activation order.
inline int32_t tail_block(const uint8_t* row, const int8_t* q) {
  const __m256i mask = _mm256_set1_epi8(3);
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
  __m256i s = _mm256_setzero_si256();
  for (int g = 0; g < 4; ++g) {
    const __m256i c = _mm256_and_si256(_mm256_srli_epi16(w, 6 - 2 * g), mask);
    s = _mm256_dpbusd_epi32(s, c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * g)));
  }
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4E));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xB1));
  return _mm_cvtsi128_si32(x);
}

// One row against one token, any K (used for leftover rows).
inline int32_t row_dot(const uint8_t* row, int64_t K, const int8_t* q) {
  __m512i acc = _mm512_setzero_si512();
  for (int64_t p = 0; p < K / 256; ++p) {
    __m512i c[4];
    unpack(row + 64 * p, c);
    for (int g = 0; g < 4; ++g) acc = _mm512_dpbusd_epi32(acc, c[g], _mm512_loadu_si512(q + 256 * p + 64 * g));
  }
  return _mm512_reduce_add_epi32(acc);
}

// ---- Prompt GEMM: 16-row panels unpacked to int8 in VNNI order, tokens broadcast 4 bytes at a time ----
//
// A panel holds 16 rows x K weights (code - 1, in the activations' prepared order) as [K/4][16][4]
// bytes, so one 64-byte load feeds 16 rows x 4 k; each token contributes a broadcast of its 4 activation
// bytes (offset to u8 by +128; the offset is removed with the row sums). 40 KB per panel for K = 2560.

constexpr int kPanelRows = 16;

struct PanelBuffer {  // per-thread, grown once; plain memory (no library templates in this file)
  int8_t* data = nullptr;
  int64_t size = 0;
  ~PanelBuffer() { std::free(data); }
  int8_t* get(int64_t n) {
    if (n > size) {
      std::free(data);
      data = static_cast<int8_t*>(std::aligned_alloc(64, static_cast<size_t>((n + 63) / 64 * 64)));
      size = n;
    }
    return data;
  }
};

// Unpacks rows [m, m + rows) (rows <= 16; missing rows are zero) into `panel`, row sums into `sums`.
void unpack_panel(const uint8_t* codes, int64_t K, int64_t m, int rows, int8_t* panel, int32_t sums[kPanelRows]) {
  alignas(64) int8_t row[64];
  const __m512i mask = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
  const int64_t rb = K / 4, pairs = K / 256;
  for (int r = 0; r < kPanelRows; ++r) {
    int32_t sum = 0;
    // Writes 64 consecutive k (one group of a block pair, already in prepared order) of row r.
    auto put = [&](int64_t k0, const int8_t* vals, int n) {
      for (int i = 0; i < n; ++i) {
        const int64_t k = k0 + i;
        panel[(k / 4) * 64 + r * 4 + (k % 4)] = vals[i];
        sum += vals[i];
      }
    };
    if (r >= rows) {
      for (int64_t kq = 0; kq < K / 4; ++kq) std::memset(panel + kq * 64 + r * 4, 0, 4);
      sums[r] = 0;
      continue;
    }
    const uint8_t* src = codes + (m + r) * rb;
    for (int64_t p = 0; p < pairs; ++p) {
      const __m512i w = _mm512_loadu_si512(src + 64 * p);
      for (int g = 0; g < 4; ++g) {
        const __m512i c = _mm512_sub_epi8(_mm512_and_si512(_mm512_srl_epi16(w, _mm_cvtsi32_si128(6 - 2 * g)), mask), one);
        _mm512_store_si512(row, c);
        put(256 * p + 64 * g, row, 64);
      }
    }
    if (K % 256) {  // trailing odd block, natural order
      for (int j = 0; j < 128; ++j) row[j % 64] = 0;  // (silences -Wmaybe-uninitialized on partial use)
      for (int g = 0; g < 4; ++g) {
        int8_t vals[32];
        for (int i = 0; i < 32; ++i) vals[i] = static_cast<int8_t>(((src[64 * pairs + i] >> (6 - 2 * g)) & 3) - 1);
        put(256 * pairs + 32 * g, vals, 32);
      }
    }
    sums[r] = sum;
  }
}

// NT tokens (<= 8) against one unpacked panel; xu: NT token rows of K bytes (q + 128).
template <int NT>
inline void panel_tile(const int8_t* panel, int64_t K, const uint8_t* const* xu, __m512i acc[NT]) {
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_si512();
  for (int64_t kq = 0; kq < K / 4; ++kq) {
    const __m512i w = _mm512_load_si512(panel + 64 * kq);
    for (int j = 0; j < NT; ++j) {
      int32_t a;
      std::memcpy(&a, xu[j] + 4 * kq, 4);
      acc[j] = _mm512_dpbusd_epi32(acc[j], _mm512_set1_epi32(a), w);
    }
  }
}

void gemm_panels(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales,
                 int64_t T, float scale, float* y, int64_t ldy) {
  static thread_local PanelBuffer panel_buf, act_buf;
  int8_t* panel = panel_buf.get(K * kPanelRows);
  // Activations offset to u8 once: [T][K].
  uint8_t* xu = reinterpret_cast<uint8_t*>(act_buf.get(T * K));
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t i = 0; i + 64 <= T * K; i += 64)
    _mm512_storeu_si512(xu + i, _mm512_xor_si512(_mm512_loadu_si512(q + i), bias));
  for (int64_t i = (T * K) / 64 * 64; i < T * K; ++i) xu[i] = static_cast<uint8_t>(q[i] ^ 0x80);
  int32_t sums[kPanelRows];
  for (int64_t m = m0; m < m1; m += kPanelRows) {
    const int rows = static_cast<int>(m1 - m < kPanelRows ? m1 - m : kPanelRows);
    unpack_panel(codes, K, m, rows, panel, sums);
    __m512i bias_sum = _mm512_mullo_epi32(_mm512_loadu_si512(sums), _mm512_set1_epi32(128));
    const __mmask16 store = static_cast<__mmask16>((1u << rows) - 1);
    for (int64_t t = 0; t < T; t += 8) {
      const int nt = static_cast<int>(T - t < 8 ? T - t : 8);
      const uint8_t* xs[8];
      for (int j = 0; j < 8; ++j) xs[j] = xu + (t + (j < nt ? j : 0)) * K;
      __m512i acc[8];
      switch (nt) {
        case 8: panel_tile<8>(panel, K, xs, acc); break;
        case 7: panel_tile<7>(panel, K, xs, acc); break;
        case 6: panel_tile<6>(panel, K, xs, acc); break;
        case 5: panel_tile<5>(panel, K, xs, acc); break;
        case 4: panel_tile<4>(panel, K, xs, acc); break;
        case 3: panel_tile<3>(panel, K, xs, acc); break;
        case 2: panel_tile<2>(panel, K, xs, acc); break;
        default: panel_tile<1>(panel, K, xs, acc); break;
      }
      for (int j = 0; j < nt; ++j) {
        // y = float(dot) / act_scale * scale, the same two IEEE operations as the scalar table.
        const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[j], bias_sum));
        const __m512 v = _mm512_mul_ps(_mm512_div_ps(dot, _mm512_set1_ps(act_scales[t + j])), _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(y + (t + j) * ldy + m, store, v);
      }
    }
  }
}

void ternary_gemm(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const int32_t* act_sums,
                  const float* act_scales, int64_t T, float scale, float* y, int64_t ldy) {
  const int64_t rb = K / 4, tail = (K / 256) * 256;  // row bytes; start of a trailing odd block
  auto finish = [&](int64_t m, int64_t t, int32_t dot) {
    if (K % 256) dot += tail_block(codes + m * rb + 64 * (K / 256), q + t * K + tail);
    y[t * ldy + m] = static_cast<float>(dot - act_sums[t]) / act_scales[t] * scale;
  };
  if (T == 1) {
    int64_t m = m0;
    // (A four-row variant sharing activation loads measured slower: register pressure.)
    for (; m < m1; ++m) finish(m, 0, gemv1(codes + m * rb, K, q));
    return;
  }
  if (T >= 8) {
    gemm_panels(codes, K, m0, m1, q, act_scales, T, scale, y, ldy);
    return;
  }
  // Blocks of 16 rows (10 KB of a 2560-wide matrix) stay in cache while every token tile passes.
  constexpr int64_t kRowBlock = 16;
  for (int64_t mb = m0; mb < m1; mb += kRowBlock) {
    const int64_t me = mb + kRowBlock < m1 ? mb + kRowBlock : m1;
    for (int64_t t = 0; t < T; t += 4) {
      const int nt = static_cast<int>(T - t < 4 ? T - t : 4);
      const int8_t* qs[4] = {q + t * K, q + (t + 1 < T ? t + 1 : t) * K, q + (t + 2 < T ? t + 2 : t) * K,
                             q + (t + 3 < T ? t + 3 : t) * K};
      int64_t m = mb;
      for (; m + 2 <= me; m += 2) {
        int32_t d[2][4];
        const uint8_t *r0 = codes + m * rb, *r1 = codes + (m + 1) * rb;
        if (nt == 4) tile2<4>(r0, r1, K, qs, d);
        else if (nt == 3) tile2<3>(r0, r1, K, qs, d);
        else if (nt == 2) tile2<2>(r0, r1, K, qs, d);
        else tile2<1>(r0, r1, K, qs, d);
        for (int j = 0; j < nt; ++j) {
          finish(m, t + j, d[0][j]);
          finish(m + 1, t + j, d[1][j]);
        }
      }
      for (; m < me; ++m)
        for (int j = 0; j < nt; ++j) finish(m, t + j, row_dot(codes + m * rb, K, qs[j]));
    }
  }
}

// Halving tree over 64 lanes held as acc[0..3] (16 lanes each), identical to reduce_lanes().
inline float tree4(__m512 acc[4]) {
  acc[0] = _mm512_add_ps(acc[0], acc[2]);  // step 32
  acc[1] = _mm512_add_ps(acc[1], acc[3]);
  const __m512 v = _mm512_add_ps(acc[0], acc[1]);  // step 16
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));  // step 8
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));          // step 4
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));                                                  // step 2
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));                                              // step 1
  return _mm_cvtss_f32(x);
}

template <typename LoadA>
inline float dot_impl(LoadA load_a, const float* b, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int r = 0; r < 4; ++r) acc[r] = _mm512_fmadd_ps(load_a(i + 16 * r, 0xFFFF), _mm512_loadu_ps(b + i + 16 * r), acc[r]);
  for (; i < n; i += 16) {  // masked tail: missing elements are 0 * 0, which leaves a lane unchanged
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    const int r = static_cast<int>((i % 64) / 16);
    acc[r] = _mm512_fmadd_ps(load_a(i, m), _mm512_maskz_loadu_ps(m, b + i), acc[r]);
  }
  return tree4(acc);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  return dot_impl([a](int64_t i, __mmask16 m) { return _mm512_maskz_loadu_ps(m, a + i); }, b, n);
}

float dot_f16(const uint16_t* a, const float* b, int64_t n) {
  return dot_impl(
      [a](int64_t i, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i)); }, b, n);
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

void axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))),
                                            _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, _cvtsh_ss(x[i]), y[i]);
}

// int8 x int8 with vpdpbusd: activations offset to u8 (q + 128) and the offset removed with the row sum.
void int8_gemm(const int8_t* w, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales, int64_t T,
               const float* row_scales, float* y, int64_t ldy) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80)), ones = _mm512_set1_epi8(1);
  for (int64_t m = m0; m < m1; ++m) {
    const int8_t* wr = w + m * K;
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* qt = q + t * K;
      __m512i acc = _mm512_setzero_si512(), wsum = _mm512_setzero_si512();
      int64_t k = 0;
      for (; k + 64 <= K; k += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(wr + k + 2048), _MM_HINT_T0);
        const __m512i wv = _mm512_loadu_si512(wr + k);
        acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(_mm512_loadu_si512(qt + k), bias), wv);
        wsum = _mm512_dpbusd_epi32(wsum, ones, wv);
      }
      int32_t dot = _mm512_reduce_add_epi32(acc) - 128 * _mm512_reduce_add_epi32(wsum);
      for (; k < K; ++k) dot += wr[k] * qt[k];
      y[t * ldy + m] = static_cast<float>(dot) / act_scales[t] * row_scales[m];
    }
  }
}

}  // namespace

const KernelTable* avx512_table() {
  static const KernelTable t{"avx512", prepare_acts, ternary_gemm, int8_gemm, dot_f32, dot_f16, axpy_f32, axpy_f16};
  return &t;
}

}  // namespace bitnet::kernels
