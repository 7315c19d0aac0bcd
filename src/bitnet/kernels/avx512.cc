// AVX-512 (F, BW, VL, VNNI) kernels, compiled with those flags; run only where CPUID reports them.
// Ternary: weights packed in the Panel16 layout, 16 rows per vpdpbusd (see ternary_gemm).
// Float: the canonical 64-lane dot in four 16-lane registers (lane l in register l / 16).
#include <immintrin.h>

#include <cmath>

#include "bitnet/kernels/kernels.h"

// Everything here is compiled for this instruction set, so it must not define (or instantiate) any
// function another file could share: helpers stay in an anonymous namespace and use intrinsics or
// builtins, not inline library functions (a linker could otherwise pick this copy for every caller).

namespace bitnet::kernels {

namespace {

// ---- Ternary GEMM on the Panel16 layout (kernels.h) ----
//
// One 64-byte step of a panel holds 16 rows x 16 elements. (step >> 2j) & 3 is the tile of elements
// 16s + 4j .. 16s + 4j + 3 of the 16 rows in vpdpbusd order, so each token multiplies it by a broadcast of
// its 4 activations (codes are the unsigned operand, activations the signed one) and one register
// accumulates 16 rows: no horizontal sums, no unpacked copy of the weights. The act_sums subtraction turns
// codes 0..2 into weights -1..1.

constexpr int kPanelRows = 16;

// Decoding reads every weight once, and a core keeps only as many bytes in flight as its loads reach ahead,
// plus what the hardware prefetcher adds. Between two 64-byte loads the GEMV runs ~9 operations (ANDs,
// vpdpbusd), so the out-of-order window reaches ~2 KB ahead where a plain read loop reaches ~10 KB: with the
// engine's jobs (2 threads, the 2B-4T shape's products, out of cache), the ternary GEMV streamed at 0.78-0.85 of
// a read loop, with half its arithmetic removed 0.91, with none 0.98. A software prefetch 4 KB ahead with the
// non-temporal hint (prefetchnta) closes the gap: 0.92-1.0 of the plain loop. The hint matters: the same
// prefetch into every level (T0) gained nothing at 1-16 KB, nor T1/T2 (L2) at 8-16 KB. Decoding the 2B-4T shape
// (2 threads; the variants drawn at random per token in one process, ~770 tokens per run, same-variant runs
// within +-1.1 %): the ternary GEMV +4.6 to +12.8 % tokens/s (7 runs; 1-2 KB ahead -3.5 to +0.8, 3 KB +7-8, 6 KB
// +6-12, 8 KB +2-5), the F16 head +7.7 to +9.7 %, the q8 head (was T0, 1 KB) +0.8 to +7.6, the q6 head panels
// (was T0) +0.7 to +3.0. Streams read several times from cache (the multi-token kernels' panels) keep T0:
// there NTA was no faster. (kStreamPrefetch is in kernels.h: the 256-bit tables use it too. Forced onto them on
// the same host, all their stream prefetches against none: avxvnni q6 head +14/+17 %, F16 +4/+6, q8 +12; vnni256
// q6 +6, q8 +16; avx2 q6 +2/+11, F16 +4/+8, q8 +4/+6 with its int8 head left unprefetched, see avx2.cc.)
inline void prefetch_stream(const void* p) {
  _mm_prefetch(static_cast<const char*>(p) + kStreamPrefetch, _MM_HINT_NTA);
}

// Multi-token passes (a prompt, a speculative verify, a batch of sequences) are far from the memory's speed
// only if the core waits for weights or spends its issue slots on anything but vpdpbusd. Two things fix most
// of that (standalone, one core, one 2560 x 6912 matrix out of cache):
//  - A prefetch kPanelPrefetch bytes ahead in the panel: with a slow consumer of the stream (several tokens
//    per byte), the hardware prefetcher alone leaves the core waiting (8 tokens, shifted tiles in one group,
//    in a test harness: 0.60 -> 0.44 ms).
//  - vpdpbusd with its activations as an embedded broadcast (a memory operand {1to16}), so a token's 4
//    activations cost no instruction of their own (GCC keeps _mm512_set1_epi32 as a separate broadcast,
//    hence the inline assembly in dpbusd_bcst), and in-place tiles as in gemv_panel (below), so the codes
//    cost 4 ANDs per step whatever the number of tokens. Through the kernel table, against the earlier
//    kernel (8 tokens per group, shifted tiles, no prefetch): 2 tokens 0.215 -> 0.14-0.17 ms (1 token:
//    0.15), 4 tokens 0.28 -> 0.23, 9 tokens 0.71 -> 0.52-0.59 (2560 x 6912), 4 tokens 0.40 -> 0.23 and 8
//    tokens 0.58 -> 0.45 (6912 x 2560). Groups of at most 4 (their accumulators fill the registers) run at
//    280-315 GMAC/s out of cache, near the 320-354 of the matrix in cache.
constexpr int64_t kPanelPrefetch = 4096;

// acc += codes (unsigned) x the 4 signed activations at p, broadcast to every lane.
inline __m512i dpbusd_bcst(__m512i acc, __m512i codes, const int8_t* p) {
  asm("vpdpbusd %[x]%{1to16%}, %[c], %[acc]"
      : [acc] "+v"(acc)
      : [c] "v"(codes), [x] "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}

// The exact division of a tile's sum by 4^j and the overflow bound of in-place tiles (see gemv_panel).
constexpr int64_t kGemvChunk = 2048;

// NT tokens (2..4) against one panel (K/16 steps) with in-place tiles (as gemv_panel): tile j keeps its
// bits 2j, so it holds 4^j * code, and each token has one accumulator per tile, divided back every
// kGemvChunk steps.
template <int NT>
inline void panel_dot(const uint8_t* w, int64_t steps, const int8_t* const* q, __m512i out[NT]) {
  const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C), m2 = _mm512_set1_epi8(0x30),
                m3 = _mm512_set1_epi8(static_cast<char>(0xC0));
  for (int t = 0; t < NT; ++t) out[t] = _mm512_setzero_si512();
  for (int64_t c0 = 0; c0 < steps; c0 += kGemvChunk) {
    const int64_t c1 = c0 + kGemvChunk < steps ? c0 + kGemvChunk : steps;
    __m512i a0[NT], a1[NT], a2[NT], a3[NT];
    for (int t = 0; t < NT; ++t) a0[t] = a1[t] = a2[t] = a3[t] = _mm512_setzero_si512();
    for (int64_t s = c0; s < c1; ++s) {
      _mm_prefetch(reinterpret_cast<const char*>(w + 64 * s + kPanelPrefetch), _MM_HINT_T0);
      const __m512i p = _mm512_loadu_si512(w + 64 * s);
      const __m512i t0 = _mm512_and_si512(p, m0), t1 = _mm512_and_si512(p, m1), t2 = _mm512_and_si512(p, m2),
                    t3 = _mm512_and_si512(p, m3);
      for (int t = 0; t < NT; ++t) {
        const int8_t* x = q[t] + 16 * s;
        a0[t] = dpbusd_bcst(a0[t], t0, x);
        a1[t] = dpbusd_bcst(a1[t], t1, x + 4);
        a2[t] = dpbusd_bcst(a2[t], t2, x + 8);
        a3[t] = dpbusd_bcst(a3[t], t3, x + 12);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m512i lo = _mm512_add_epi32(a0[t], _mm512_srai_epi32(a1[t], 2));
      const __m512i hi = _mm512_add_epi32(_mm512_srai_epi32(a2[t], 4), _mm512_srai_epi32(a3[t], 6));
      out[t] = _mm512_add_epi32(out[t], _mm512_add_epi32(lo, hi));
    }
  }
}

// One token against one panel: two steps per iteration into eight named accumulators. (Written out: with
// the accumulators in an array indexed in the loop, GCC kept them in memory and decoding ran at half speed.)
// The codes are not shifted down: tile j is masked in place (bits 2j of each byte), so it holds 4^j * code
// and its accumulators hold 4^j times its dot, divided back exactly (an arithmetic shift of a multiple of
// 4^j) every kGemvChunk steps, before |4^3 * 3 * 128 * 4 * chunk| could reach 2^31. That is 4 operations
// per step beside the 4 vpdpbusd instead of 7 (standalone, 442 MB of weights, 1 thread: 5-8 % faster), and
// the stream is prefetched (prefetch_stream, above). The activations are embedded broadcasts (dpbusd_bcst):
// GCC kept each _mm512_set1_epi32 as an instruction of its own, 8 of the 28 per 128 bytes, and the fewer
// instructions per byte, the further ahead of the loads the core's window reaches (2B-4T shape, q8 head,
// per-token A/B in one process, 7 runs: +1.3/+0.8/+4.2/+8.9/+3.7/+1.8/-0.3 % tok/s).
inline __m512i gemv_panel(const uint8_t* w, int64_t steps, const int8_t* q) {
  const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C), m2 = _mm512_set1_epi8(0x30),
                m3 = _mm512_set1_epi8(static_cast<char>(0xC0));
  __m512i total = _mm512_setzero_si512();
  for (int64_t c0 = 0; c0 < steps; c0 += kGemvChunk) {
    const int64_t c1 = c0 + kGemvChunk < steps ? c0 + kGemvChunk : steps;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    int64_t s = c0;
    for (; s + 2 <= c1; s += 2) {
      prefetch_stream(w + 64 * s);
      prefetch_stream(w + 64 * s + 64);
      const __m512i p = _mm512_loadu_si512(w + 64 * s), r = _mm512_loadu_si512(w + 64 * s + 64);
      const int8_t* x = q + 16 * s;
      a0 = dpbusd_bcst(a0, _mm512_and_si512(p, m0), x);
      a1 = dpbusd_bcst(a1, _mm512_and_si512(p, m1), x + 4);
      a2 = dpbusd_bcst(a2, _mm512_and_si512(p, m2), x + 8);
      a3 = dpbusd_bcst(a3, _mm512_and_si512(p, m3), x + 12);
      a4 = dpbusd_bcst(a4, _mm512_and_si512(r, m0), x + 16);
      a5 = dpbusd_bcst(a5, _mm512_and_si512(r, m1), x + 20);
      a6 = dpbusd_bcst(a6, _mm512_and_si512(r, m2), x + 24);
      a7 = dpbusd_bcst(a7, _mm512_and_si512(r, m3), x + 28);
    }
    if (s < c1) {
      const __m512i p = _mm512_loadu_si512(w + 64 * s);
      const int8_t* x = q + 16 * s;
      a0 = dpbusd_bcst(a0, _mm512_and_si512(p, m0), x);
      a1 = dpbusd_bcst(a1, _mm512_and_si512(p, m1), x + 4);
      a2 = dpbusd_bcst(a2, _mm512_and_si512(p, m2), x + 8);
      a3 = dpbusd_bcst(a3, _mm512_and_si512(p, m3), x + 12);
    }
    const __m512i lo = _mm512_add_epi32(_mm512_add_epi32(a0, a4), _mm512_srai_epi32(_mm512_add_epi32(a1, a5), 2));
    const __m512i hi = _mm512_add_epi32(_mm512_srai_epi32(_mm512_add_epi32(a2, a6), 4),
                                        _mm512_srai_epi32(_mm512_add_epi32(a3, a7), 6));
    total = _mm512_add_epi32(total, _mm512_add_epi32(lo, hi));
  }
  return total;
}

void ternary_gemm(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const int32_t* act_sums,
                  const float* act_scales, int64_t T, float scale, float* y, int64_t ldy) {
  const int64_t steps = K / 16;
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t p = m0 / kPanelRows; p * kPanelRows < m1; ++p) {
    const int64_t base = p * kPanelRows;
    const int64_t lo = base > m0 ? base : m0, hi = base + kPanelRows < m1 ? base + kPanelRows : m1;
    const __mmask16 store = static_cast<__mmask16>(((1u << (hi - base)) - 1) & ~((1u << (lo - base)) - 1));
    const uint8_t* w = codes + p * 4 * K;
    // Tokens in groups of at most 4, as even as possible (5 = 3 + 2, not 4 + 1: a lone token would read the
    // panel again at the one-token kernel's pace).
    const int64_t groups = (T + 3) / 4;
    for (int64_t t = 0, g = 0; t < T; ++g) {
      const int nt = static_cast<int>((T - t) / (groups - g) + ((T - t) % (groups - g) != 0));
      const int8_t* qs[4];
      for (int j = 0; j < nt; ++j) qs[j] = q + (t + j) * K;
      __m512i acc[4];
      switch (nt) {
        case 4: panel_dot<4>(w, steps, qs, acc); break;
        case 3: panel_dot<3>(w, steps, qs, acc); break;
        case 2: panel_dot<2>(w, steps, qs, acc); break;
        default: acc[0] = gemv_panel(w, steps, qs[0]); break;
      }
      for (int j = 0; j < nt; ++j) {
        // y = float(dot - act_sum) / act_scale * scale: the same IEEE operations as the scalar table.
        const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[j], _mm512_set1_epi32(act_sums[t + j])));
        const __m512 v = _mm512_mul_ps(_mm512_div_ps(dot, _mm512_set1_ps(act_scales[t + j])), vscale);
        _mm512_mask_storeu_ps(y + (t + j) * ldy + base, store, v);
      }
      t += nt;
    }
  }
}

// Steps 8, 4, 2, 1 of the canonical halving tree over 16 lanes (steps 32 and 16 are in dot_lanes16).
inline float tree16(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));  // step 8
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));          // step 4
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));                                                  // step 2
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));                                              // step 1
  return _mm_cvtss_f32(x);
}

// The 64 canonical lanes of dot(a, b), already folded by the tree's steps 32 and 16 into 16 lanes.
// Named accumulators: as an array indexed in the tail, GCC stored all four to the stack on every
// iteration of the main loop.
// Lanes of a 16-lane register that hold one of the `left` elements still to read (all 16, some, none).
inline __mmask16 tail_mask16(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << left) - 1);
}

template <typename LoadA>
inline __m512 dot_lanes16(LoadA load_a, const float* b, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(load_a(i, 0xFFFF), _mm512_loadu_ps(b + i), a0);
    a1 = _mm512_fmadd_ps(load_a(i + 16, 0xFFFF), _mm512_loadu_ps(b + i + 16), a1);
    a2 = _mm512_fmadd_ps(load_a(i + 32, 0xFFFF), _mm512_loadu_ps(b + i + 32), a2);
    a3 = _mm512_fmadd_ps(load_a(i + 48, 0xFFFF), _mm512_loadu_ps(b + i + 48), a3);
  }
  if (i < n) {  // the last, partial 64-element block, masked: missing elements are 0 * 0, which leaves a
                // lane unchanged (accumulators are never -0)
    const __mmask16 k0 = tail_mask16(n - i), k1 = tail_mask16(n - i - 16), k2 = tail_mask16(n - i - 32),
                    k3 = tail_mask16(n - i - 48);
    a0 = _mm512_fmadd_ps(load_a(i, k0), _mm512_maskz_loadu_ps(k0, b + i), a0);
    a1 = _mm512_fmadd_ps(load_a(i + 16, k1), _mm512_maskz_loadu_ps(k1, b + i + 16), a1);
    a2 = _mm512_fmadd_ps(load_a(i + 32, k2), _mm512_maskz_loadu_ps(k2, b + i + 32), a2);
    a3 = _mm512_fmadd_ps(load_a(i + 48, k3), _mm512_maskz_loadu_ps(k3, b + i + 48), a3);
  }
  return _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));  // steps 32, 16
}

template <typename LoadA>
inline float dot_impl(LoadA load_a, const float* b, int64_t n) {
  return tree16(dot_lanes16(load_a, b, n));
}

// Steps 8, 4, 2, 1 of the tree for 16 dot products at once (v[r] = dot_lanes16 of row r), by pairwise
// shuffles that keep the tree's pairing (lane l with l + 8, then l + 4, ...). Returns the 16 sums in
// row order.
inline __m512 tree16x16(__m512 v[16]) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)  // step 8: rows 2i, 2i+1 -> [8 lanes of 2i | 8 lanes of 2i+1]
    a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // step 4: 4 lanes per row
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i) {  // step 2: 2 lanes per row
    const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
    c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // step 1: one lane per row; lane 4p + q then holds row 4q + p.
  const __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), d);
}

inline __m512 load_row16(const uint8_t* row, bool f16, int64_t i, __mmask16 m) {
  return f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + i))
             : _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + i);
}

// dot_lanes16 for a row of exactly HD elements (a multiple of 16) already in registers (k), with a query read
// from memory: the same fma sequence as dot_lanes16.
template <int HD>
inline __m512 dot_lanes16_fixed(const __m512 k[HD / 16], const float* q) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int i = 0; i < HD / 16; ++i) acc[i % 4] = _mm512_fmadd_ps(k[i], _mm512_loadu_ps(q + 16 * i), acc[i % 4]);
  return _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));  // steps 32, 16
}

// Elements 16i .. 16i + 15 of a row, as floats.
template <bool F16>
inline __m512 load_chunk16(const uint8_t* row, int i) {
  return F16 ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row) + i))
             : _mm512_loadu_ps(reinterpret_cast<const float*>(row) + 16 * i);
}

template <bool F16, int HD>
inline void load_row_fixed(const uint8_t* row, __m512 k[HD / 16]) {
  for (int i = 0; i < HD / 16; ++i) k[i] = load_chunk16<F16>(row, i);
}

// Rows of exactly HD elements, 16 at a time, with QP queries held in registers (score_pass): each row is
// loaded and converted once per QP queries and its lane vectors wait in `part` for the shuffle tree. The
// queries used to be read from memory by every fma, each row converted once for all of them: 2 loads per
// fma kept the core at 44-46 cycles per row for 4 queries of 128 (hot rows, 1024 positions); held in
// registers, with the row converted again for each pair from L1, 29-32 (an F16 row's conversion takes the
// fma pipes too, so converting it once into an F32 copy for the second pair was no faster: 31); 16 queries
// (a prompt's tile of 4 tokens) 172-202 -> 124-138. A prompt at depth gains (pp256 after 2048 positions,
// 2B-4T shape: 118-125 -> 146 tok/s, two alternated pairs); decoding, whose rows come from memory, does not.
// Rows are prefetched kScoreRowsAhead ahead: a decoded token's K rows were written by earlier tokens and
// are cold, and a short context's rows end before the hardware prefetcher has ramped up (decoding the 2B-4T shape, q6 head, per-token A/B in one
// process, 7 runs: -0.1 to +2.5 % tokens/s, mean +1.2; at 1024 positions -1.2 / +2.8 %).
// The V rows the mix reads next (`next`) are asked for with the K rows, at the same pace. A burst of prefetches
// larger than the core's miss buffers is mostly dropped on Zen 5: N lines asked at once and read 20 us later
// cost 50 ns to read for N = 128 but 290 ns for N = 256 (530 not asked), and 5 heads' K and V rows (65 positions,
// 160 KB, cold) asked in one burst (T0, T1 or T2) then used 30 us later took 11.0-11.2 us against 10.3-15 not
// asked, while asked 4 lines at a time, ~20 ns apart, they took 6.2 (20.3 -> 11.9 at 128 positions). So the
// first block of V that Forward::attention used to ask for before the scores (128 lines) mostly arrived, the
// rest came during the mix: decoding tg128, a head's mix took 1.8 us, and 0.42 when run again at once. With the
// V rows pulled here: attention per token 0.41-0.52 -> 0.28-0.36 ms (2B-4T shape, q8 head, 4 alternated pairs
// of binaries), per layer 14-18 -> 9.4-10.7 us. (16 or 32 rows ahead with the faster passes: no change.)
constexpr int64_t kScoreRowsAhead = 8;

template <bool F16, int HD>
inline void prefetch_row(const uint8_t* row) {
  for (int64_t b = 0; b < HD * (F16 ? 2 : 4); b += 64) _mm_prefetch(reinterpret_cast<const char*>(row + b), _MM_HINT_T0);
}

// Queries per pass over a block of rows: QP * HD / 16 query registers and 4 accumulators per query fit the
// 32 registers with room for the row.
template <int HD>
constexpr int kScorePassQueries = HD <= 128 ? 2 : 1;

// part[g][r] = the 16 lanes of dot_lanes16(row j + r, query g) for the QP queries at q and the 16 rows from
// row j (the same fma sequence as dot_lanes16_fixed). With `pull`, rows kScoreRowsAhead ahead and the `next`
// rows beside them are asked for.
template <bool F16, int HD, int QP>
inline void score_pass(const uint8_t* rows, int64_t stride, int64_t j, int64_t n, const float* q,
                       float (*part)[16][16], const uint8_t* next, bool pull) {
  constexpr int C = HD / 16;
  __m512 qr[QP][C];
  for (int g = 0; g < QP; ++g)
    for (int i = 0; i < C; ++i) qr[g][i] = _mm512_loadu_ps(q + g * HD + 16 * i);
  for (int r = 0; r < 16; ++r) {
    if (pull && j + r + kScoreRowsAhead < n) {
      prefetch_row<F16, HD>(rows + (j + r + kScoreRowsAhead) * stride);
      if (next) prefetch_row<F16, HD>(next + (j + r + kScoreRowsAhead) * stride);
    }
    const uint8_t* row = rows + (j + r) * stride;
    __m512 acc[QP][4];
    for (int g = 0; g < QP; ++g)
      for (int u = 0; u < 4; ++u) acc[g][u] = _mm512_setzero_ps();
    for (int i = 0; i < C; ++i) {
      const __m512 k = load_chunk16<F16>(row, i);
      for (int g = 0; g < QP; ++g) acc[g][i % 4] = _mm512_fmadd_ps(k, qr[g][i], acc[g][i % 4]);
    }
    for (int g = 0; g < QP; ++g)
      _mm512_store_ps(part[g][r], _mm512_add_ps(_mm512_add_ps(acc[g][0], acc[g][2]), _mm512_add_ps(acc[g][1], acc[g][3])));
  }
}

template <bool F16, int HD>
void attn_scores_fixed(const uint8_t* rows, int64_t stride, int64_t n, const float* q, int64_t nq, float* out,
                       int64_t ldo, const uint8_t* next) {
  constexpr int QP = kScorePassQueries<HD>;
  alignas(64) float part[QP][16][16];
  auto flush = [&](int64_t g, int np, int64_t j) {  // the tree for queries g .. g + np - 1, rows j .. j + 15
    for (int p = 0; p < np; ++p) {
      __m512 v[16];
      for (int r = 0; r < 16; ++r) v[r] = _mm512_load_ps(part[p][r]);
      _mm512_storeu_ps(out + (g + p) * ldo + j, tree16x16(v));
    }
  };
  for (int64_t r = 0; r < kScoreRowsAhead && r < n; ++r) {
    prefetch_row<F16, HD>(rows + r * stride);
    if (next) prefetch_row<F16, HD>(next + r * stride);
  }
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {  // the block's rows come from memory in the first pass, from L1 after it
    int64_t g = 0;
    for (; g + QP <= nq; g += QP) {
      score_pass<F16, HD, QP>(rows, stride, j, n, q + g * HD, part, next, g == 0);
      flush(g, QP, j);
    }
    for (; g < nq; ++g) {
      score_pass<F16, HD, 1>(rows, stride, j, n, q + g * HD, part, next, g == 0);
      flush(g, 1, j);
    }
  }
  for (; j < n; ++j) {
    __m512 k[HD / 16];
    load_row_fixed<F16, HD>(rows + j * stride, k);
    for (int64_t g = 0; g < nq; ++g) out[g * ldo + j] = tree16(dot_lanes16_fixed<HD>(k, q + g * HD));
  }
}

void attn_scores(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* q, int64_t nq, int64_t hd,
                 float* out, int64_t ldo, const uint8_t* next) {
  const bool fixed = with_fixed_head_size(hd, [&](auto size) {
    if (f16) attn_scores_fixed<true, decltype(size)::value>(rows, stride, n, q, nq, out, ldo, next);
    else attn_scores_fixed<false, decltype(size)::value>(rows, stride, n, q, nq, out, ldo, next);
  });
  if (fixed) return;
  const int64_t row_bytes = hd * (f16 ? 2 : 4);
  auto pull = [&](int64_t j) {  // `next` row j, asked for with the first query's pass over row j
    for (int64_t b = 0; b < row_bytes; b += 64) _mm_prefetch(reinterpret_cast<const char*>(next + j * stride + b), _MM_HINT_T0);
  };
  for (int64_t g = 0; g < nq; ++g) {  // other head sizes: one query at a time
    const float* qg = q + g * hd;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      __m512 v[16];
      for (int r = 0; r < 16; ++r) {
        const uint8_t* row = rows + (j + r) * stride;
        if (g == 0 && next) pull(j + r);
        v[r] = dot_lanes16([row, f16](int64_t i, __mmask16 m) { return load_row16(row, f16, i, m); }, qg, hd);
      }
      _mm512_storeu_ps(out + g * ldo + j, tree16x16(v));
    }
    for (; j < n; ++j) {
      const uint8_t* row = rows + j * stride;
      if (g == 0 && next) pull(j);
      out[g * ldo + j] =
          tree16(dot_lanes16([row, f16](int64_t i, __mmask16 m) { return load_row16(row, f16, i, m); }, qg, hd));
    }
  }
}

// Four accumulator registers, named: as one [NQ][4] array GCC kept a copy of every accumulator in memory,
// stored on each step (16 stores per row, twice the time of the fmas).
struct Acc4 {
  __m512 a, b, c, d;
  void load(const float* out, const __mmask16 m[4]) {
    a = _mm512_maskz_loadu_ps(m[0], out);
    b = _mm512_maskz_loadu_ps(m[1], out + 16);
    c = _mm512_maskz_loadu_ps(m[2], out + 32);
    d = _mm512_maskz_loadu_ps(m[3], out + 48);
  }
  void fma(__m512 w, __m512 v0, __m512 v1, __m512 v2, __m512 v3) {
    a = _mm512_fmadd_ps(w, v0, a);
    b = _mm512_fmadd_ps(w, v1, b);
    c = _mm512_fmadd_ps(w, v2, c);
    d = _mm512_fmadd_ps(w, v3, d);
  }
  void store(float* out, const __mmask16 m[4]) const {
    _mm512_mask_storeu_ps(out, m[0], a);
    _mm512_mask_storeu_ps(out + 16, m[1], b);
    _mm512_mask_storeu_ps(out + 32, m[2], c);
    _mm512_mask_storeu_ps(out + 48, m[3], d);
  }
};

// out_g += sum_{j in [j0, j1)} w_g[j] * row_j for NQ <= 4 queries, 64 elements from column c: each row chunk is
// loaded once for all NQ queries, and each element sees the same fma sequence as axpy over j.
template <bool F16, int NQ>
void mix_chunk(const uint8_t* rows, int64_t stride, int64_t j0, int64_t j1, const float* w, int64_t ldw, int64_t hd,
               int64_t c, float* out) {
  static_assert(NQ >= 1 && NQ <= 4);
  __mmask16 m[4];
  for (int r = 0; r < 4; ++r) {
    const int64_t left = hd - c - 16 * r;
    m[r] = left >= 16 ? 0xFFFF : left <= 0 ? 0 : static_cast<__mmask16>((1u << left) - 1);
  }
  Acc4 x0, x1, x2, x3;
  x0.load(out + c, m);
  if constexpr (NQ > 1) x1.load(out + hd + c, m);
  if constexpr (NQ > 2) x2.load(out + 2 * hd + c, m);
  if constexpr (NQ > 3) x3.load(out + 3 * hd + c, m);
  for (int64_t j = j0; j < j1; ++j) {
    const uint8_t* row = rows + j * stride;
    const __m512 v0 = load_row16(row, F16, c, m[0]), v1 = load_row16(row, F16, c + 16, m[1]),
                 v2 = load_row16(row, F16, c + 32, m[2]), v3 = load_row16(row, F16, c + 48, m[3]);
    x0.fma(_mm512_set1_ps(w[j]), v0, v1, v2, v3);
    if constexpr (NQ > 1) x1.fma(_mm512_set1_ps(w[ldw + j]), v0, v1, v2, v3);
    if constexpr (NQ > 2) x2.fma(_mm512_set1_ps(w[2 * ldw + j]), v0, v1, v2, v3);
    if constexpr (NQ > 3) x3.fma(_mm512_set1_ps(w[3 * ldw + j]), v0, v1, v2, v3);
  }
  x0.store(out + c, m);
  if constexpr (NQ > 1) x1.store(out + hd + c, m);
  if constexpr (NQ > 2) x2.store(out + 2 * hd + c, m);
  if constexpr (NQ > 3) x3.store(out + 3 * hd + c, m);
}

constexpr int64_t kMixCols = 64;
#include "bitnet/kernels/attn_mix_driver.inc"

void attn_mix(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* w, int64_t ldw, int64_t nq,
              int64_t hd, float* out) {
  if (f16) attn_mix_rows<true>(rows, stride, n, w, ldw, nq, hd, out);
  else attn_mix_rows<false>(rows, stride, n, w, ldw, nq, hd, out);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  return dot_impl([a](int64_t i, __mmask16 m) { return _mm512_maskz_loadu_ps(m, a + i); }, b, n);
}

// F16 rows are converted 8 halves at a time into eight 256-bit accumulators (lane l in register l / 8).
// Measured on this Zen 4, 1 thread, 2B-4T decode (alternated runs): the F16 LM head took 30-35 ms per
// token with 16-lane vcvtph2ps and 24-27 ms with 8-lane conversions. gemm_f16 calls this per row through
// the table (FromDots): the same loop inlined into gemm_f16's row loop was slower again (25-30 ms).
inline __m256 load_f16x8(const uint16_t* p, __mmask8 m) {
  return _mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, p));
}

float dot_f16(const uint16_t* a, const float* b, int64_t n) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  const auto step = [&](int64_t i, auto mask) {
    c0 = _mm256_fmadd_ps(load_f16x8(a + i, mask(0)), _mm256_maskz_loadu_ps(mask(0), b + i), c0);
    c1 = _mm256_fmadd_ps(load_f16x8(a + i + 8, mask(1)), _mm256_maskz_loadu_ps(mask(1), b + i + 8), c1);
    c2 = _mm256_fmadd_ps(load_f16x8(a + i + 16, mask(2)), _mm256_maskz_loadu_ps(mask(2), b + i + 16), c2);
    c3 = _mm256_fmadd_ps(load_f16x8(a + i + 24, mask(3)), _mm256_maskz_loadu_ps(mask(3), b + i + 24), c3);
    c4 = _mm256_fmadd_ps(load_f16x8(a + i + 32, mask(4)), _mm256_maskz_loadu_ps(mask(4), b + i + 32), c4);
    c5 = _mm256_fmadd_ps(load_f16x8(a + i + 40, mask(5)), _mm256_maskz_loadu_ps(mask(5), b + i + 40), c5);
    c6 = _mm256_fmadd_ps(load_f16x8(a + i + 48, mask(6)), _mm256_maskz_loadu_ps(mask(6), b + i + 48), c6);
    c7 = _mm256_fmadd_ps(load_f16x8(a + i + 56, mask(7)), _mm256_maskz_loadu_ps(mask(7), b + i + 56), c7);
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {  // (a row of the F16 LM head: the next rows are prefetched at its end)
    prefetch_stream(a + i);
    prefetch_stream(a + i + 32);
    step(i, [](int) { return __mmask8(0xFF); });
  }
  if (i < n)  // the last, partial block, masked: missing elements are 0 * 0 (accumulators are never -0)
    step(i, [left = n - i](int r) {
      const int64_t k = left - 8 * r;
      return k >= 8 ? __mmask8(0xFF) : k <= 0 ? __mmask8(0) : static_cast<__mmask8>((1u << k) - 1);
    });
  // The canonical tree: step 32 (register r += r + 4), 16 (r += r + 2), 8 (r0 += r1), then 4, 2, 1.
  const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c4), _mm256_add_ps(c2, c6)),
                                 _mm256_add_ps(_mm256_add_ps(c1, c5), _mm256_add_ps(c3, c7)));
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // step 4
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));                                          // step 2
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));                                      // step 1
  return _mm_cvtss_f32(x);
}

uint64_t read_sum(const uint8_t* p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {  // prefetched as the kernels prefetch (the roofline reads as decoding reads)
    for (int l = 0; l < 4; ++l) prefetch_stream(p + i + 64 * l);
    a = _mm512_add_epi64(a, _mm512_loadu_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_loadu_si512(p + i + 64));
    c = _mm512_add_epi64(c, _mm512_loadu_si512(p + i + 128));
    d = _mm512_add_epi64(d, _mm512_loadu_si512(p + i + 192));
  }
  alignas(64) uint64_t l[8];  // (not _mm512_reduce_add_epi64: GCC's adds the lanes as signed long long)
  _mm512_store_si512(l, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
  uint64_t s = 0;
  for (uint64_t v : l) s += v;
  return s + scalar_table().read_sum(p + i, n - i);  // the words after the last full step
}

// Row after row (dot_f16 inlined): the weights stream through memory in order.
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

// 32 double lanes in four registers (lane l = elements i % 32 == l); x*x is exact in double, so the fused
// multiply-add rounds exactly like the scalar table's add.
double sum_squares(const float* x, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512d v0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), v1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)),
                  v2 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16)), v3 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24));
    a0 = _mm512_fmadd_pd(v0, v0, a0);
    a1 = _mm512_fmadd_pd(v1, v1, a1);
    a2 = _mm512_fmadd_pd(v2, v2, a2);
    a3 = _mm512_fmadd_pd(v3, v3, a3);
  }
  alignas(64) double lanes[kSquareLanes];
  _mm512_store_pd(lanes, a0);
  _mm512_store_pd(lanes + 8, a1);
  _mm512_store_pd(lanes + 16, a2);
  _mm512_store_pd(lanes + 24, a3);
  return finish_sum_squares(lanes, x, i, n);
}

// quantize_row_i8 in 16 lanes. The max of |x| is exact in float (and so equal to the scalar double
// max), NaN lanes are skipped like std::max skips them, and rounding is the same round-half-even of the
// same float product; NaN products clamp to 127 as fmin(127, NaN) does.
float quantize_i8(const float* x, int64_t K, int8_t* q, int32_t* sum) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  __m512 mx = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) mx = _mm512_max_ps(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + k)), mx);  // NaN -> mx
  const float s = quantize_scale(_mm512_reduce_max_ps(mx), x, k, K);
  const __m512 vs = _mm512_set1_ps(s), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-128.0f);
  __m512i total = _mm512_setzero_si512();
  for (k = 0; k + 16 <= K; k += 16) {
    __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_max_ps(_mm512_min_ps(v, hi), lo);  // min(NaN, 127) = 127 (second operand)
    const __m512i iv = _mm512_cvtps_epi32(v);
    total = _mm512_add_epi32(total, iv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtepi32_epi8(iv));
  }
  const int32_t t = _mm512_reduce_add_epi32(total) + quantize_tail(x, k, K, s, q);
  if (sum) *sum = t;
  return s;
}

// F16 weights times several tokens: each 64-element block of a row is converted once (16-lane vcvtph2ps)
// and multiplied into up to 4 tokens' accumulators, so the conversion and the load of a row are shared by
// the batch (the LM head of several sequences decoding together). Lane l of token t accumulates elements
// l, l + 64, ... by fused multiply-add in order and the lanes are folded by the canonical tree, exactly as
// dot_f16 (its 8-lane registers hold the same 64 lanes), so each result is bit-identical to it.
template <int NT>
inline void f16_rows_dot(const uint16_t* w, const float* const* xs, int64_t n, float* out) {
  // Plain loops over constant bounds, no lambda: with the accumulators captured by reference GCC stored all
  // of them to the stack on every iteration (the head of 3 tokens then cost 2.7x one token's).
  __m512 acc[NT][4];
#pragma GCC unroll 16
  for (int j = 0; j < NT; ++j)
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) acc[j][r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512 wv[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
      wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i + 16 * r)));
#pragma GCC unroll 16
    for (int j = 0; j < NT; ++j)
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) acc[j][r] = _mm512_fmadd_ps(wv[r], _mm512_loadu_ps(xs[j] + i + 16 * r), acc[j][r]);
  }
  if (i < n) {  // the last, partial block, masked: missing elements are 0 * 0 (accumulators are never -0)
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __mmask16 m = tail_mask16(n - i - 16 * r);
      const __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + i + 16 * r));
#pragma GCC unroll 16
      for (int j = 0; j < NT; ++j) acc[j][r] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xs[j] + i + 16 * r), acc[j][r]);
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < NT; ++j)  // steps 32, 16, then 8, 4, 2, 1
    out[j] = tree16(_mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][2]), _mm512_add_ps(acc[j][1], acc[j][3])));
}

void gemm_f16(const uint16_t* w, int64_t K, int64_t m0, int64_t m1, const float* x, int64_t T, float* y,
              int64_t ldy) {
  for (int64_t m = m0; m < m1; ++m) {
    const uint16_t* row = w + m * K;
    if (T == 1) {  // one token: dot_f16's 8-lane loop measured faster (see above)
      y[m] = dot_f16(row, x, K);
      continue;
    }
    for (int64_t t = 0; t < T; t += 4) {
      const int nt = T - t >= 4 ? 4 : static_cast<int>(T - t);
      const float* xs[4];
      for (int j = 0; j < nt; ++j) xs[j] = x + (t + j) * K;
      float out[4];
      switch (nt) {
        case 4: f16_rows_dot<4>(row, xs, K, out); break;
        case 3: f16_rows_dot<3>(row, xs, K, out); break;
        case 2: f16_rows_dot<2>(row, xs, K, out); break;
        default: f16_rows_dot<1>(row, xs, K, out); break;
      }
      for (int j = 0; j < nt; ++j) y[(t + j) * ldy + m] = out[j];
    }
  }
}

// int8 x int8 with vpdpbusd: weights offset to u8 (w + 128, one xor per 64 bytes, shared by the tokens), times
// the signed activations; the offset is taken off with 128 * sum(q), computed once per token per call. Tokens go
// in blocks of up to 8 sharing each 64-byte load of the weight row (the products are exact integers, so any
// order gives the scalar table's result); a row is read from memory once for a whole batch, which keeps several
// sequences decoding together near the cost of one. (Offsetting the activations instead needs each row's sum:
// a second pass over every row, 50 % more instructions per byte on decoding's memory-bound pass.)
template <int NT>
inline void int8_rows_dot(const int8_t* wr, int64_t K64, const int8_t* const* qs, __m512i* acc) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  if constexpr (NT == 1) {
    // One token (decoding, memory-bound): four accumulators, since one chain of vpdpbusd bound a row by its
    // latency, and the stream prefetched (into the next rows at a row's end).
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    const int8_t* x = qs[0];
    int64_t k = 0;
    for (; k + 256 <= K64; k += 256) {
      for (int l = 0; l < 4; ++l) prefetch_stream(wr + k + 64 * l);
      a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(wr + k), bias), _mm512_loadu_si512(x + k));
      a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_loadu_si512(wr + k + 64), bias), _mm512_loadu_si512(x + k + 64));
      a2 = _mm512_dpbusd_epi32(a2, _mm512_xor_si512(_mm512_loadu_si512(wr + k + 128), bias), _mm512_loadu_si512(x + k + 128));
      a3 = _mm512_dpbusd_epi32(a3, _mm512_xor_si512(_mm512_loadu_si512(wr + k + 192), bias), _mm512_loadu_si512(x + k + 192));
    }
    for (; k < K64; k += 64)
      a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(wr + k), bias), _mm512_loadu_si512(x + k));
    acc[0] = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
    return;
  }
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K64; k += 64) {
    const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wr + k), bias);
    for (int j = 0; j < NT; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], wv, _mm512_loadu_si512(qs[j] + k));
  }
}

void int8_gemm(const int8_t* w, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales, int64_t T,
               const float* row_scales, float* y, int64_t ldy) {
  constexpr int kBlock = 8, kChunk = 64;  // tokens sharing a load; tokens whose offsets are kept at once
  const int64_t K64 = K / 64 * 64;
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t c = 0; c < T; c += kChunk) {
    const int64_t nc = T - c < kChunk ? T - c : kChunk;
    int32_t off[kChunk];  // 128 * the sum of a token's first K64 activations: the u8 offset's share
    for (int64_t j = 0; j < nc; ++j) {
      __m512i sum = _mm512_setzero_si512();
      for (int64_t k = 0; k < K64; k += 64) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_loadu_si512(q + (c + j) * K + k));
      off[j] = 128 * _mm512_reduce_add_epi32(sum);
    }
    // Rows outer: a row is read from memory once per chunk, from cache for its other tokens.
    for (int64_t m = m0; m < m1; ++m) {
      const int8_t* wr = w + m * K;
      for (int64_t t = c; t < c + nc; t += kBlock) {
        const int nt = c + nc - t >= kBlock ? kBlock : static_cast<int>(c + nc - t);
        const int8_t* qs[kBlock];
        for (int j = 0; j < nt; ++j) qs[j] = q + (t + j) * K;
        __m512i acc[kBlock];
        switch (nt) {
          case 8: int8_rows_dot<8>(wr, K64, qs, acc); break;
          case 7: int8_rows_dot<7>(wr, K64, qs, acc); break;
          case 6: int8_rows_dot<6>(wr, K64, qs, acc); break;
          case 5: int8_rows_dot<5>(wr, K64, qs, acc); break;
          case 4: int8_rows_dot<4>(wr, K64, qs, acc); break;
          case 3: int8_rows_dot<3>(wr, K64, qs, acc); break;
          case 2: int8_rows_dot<2>(wr, K64, qs, acc); break;
          default: int8_rows_dot<1>(wr, K64, qs, acc); break;
        }
        for (int j = 0; j < nt; ++j) {
          int32_t dot = _mm512_reduce_add_epi32(acc[j]) - off[t - c + j];
          for (int64_t k = K64; k < K; ++k) dot += wr[k] * qs[j][k];
          y[(t + j) * ldy + m] = static_cast<float>(dot) / act_scales[t + j] * row_scales[m];
        }
      }
    }
  }
}

// ---- 4- and 6-bit LM head rows (layout in kernels.h): widths that are not a multiple of 512 ----
// (Others are read in panels: see the next section.)
//
// A group's 64 values are unpacked into one register in element order (vpsrlvq by 0 / 4 splits the nibbles of a
// 32-byte broadcast; the 6-bit planes are shifted into bits 4-5 per 128-bit lane), and vpdpbusd multiplies them
// (unsigned u = w + offset) by a token's 64 activations, so lane l sums block l. Per super-block the offset's
// share (offset * the lane's activation sum, computed once per token) is taken off and the lanes are multiplied
// by their block scales. Integer throughout: the scalar table's result in any order.

// Tokens sharing each unpacked group: 8 (20 of the 32 registers) rather than 4 halves the unpacking per
// multiply-add; a pass of 8 tokens with the q6 head of the 2B-4T shape spent 10.2 -> 9.2 ms in the head
// (`bench --parallel 8 --profile`, 3 alternated pairs).
constexpr int kQheadTokens = 8;
constexpr int kQheadSupers = kQheadMaxK / 512;

template <int Bits>
inline __m512i qhead_group(const uint8_t* p) {
  __m512i v = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                                                 _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0)),
                               _mm512_set1_epi8(0x0F));
  if constexpr (Bits == 6) {
    __m512i h = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)));
    h = _mm512_srlv_epi64(_mm512_sllv_epi64(h, _mm512_set_epi64(0, 0, 0, 0, 2, 2, 4, 4)), _mm512_set_epi64(2, 2, 0, 0, 0, 0, 0, 0));
    v = _mm512_or_si512(v, _mm512_and_si512(h, _mm512_set1_epi8(0x30)));
  }
  return v;
}

// NT tokens against rows [m0, m1); offs[j][s] = offset * lane sums of token j's activations in super-block s.
template <int Bits, int NT>
inline void qhead_rows(const uint8_t* w, size_t row_bytes, int64_t groups, int64_t m0, int64_t m1,
                       const int8_t* const* qs, const int32_t (*offs)[kQheadSupers][16], const float* act_scales,
                       const float* row_scales, float* const* ys) {
  constexpr int64_t kGroupBytes = Bits == 6 ? 48 : 32;
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* p = w + m * row_bytes;
    // The stream prefetched (prefetch_stream; its 4 KB run into the next rows): with no prefetch the q6 head of the
    // 2B-4T shape took 7.0-7.1 ms per token, with the next row's start and 1 KB ahead (T0) 5.6-6.1 (3 alternated
    // pairs); prefetch_stream against that, at d = 2304, q6 and q4 (per-token A/B, 6 runs): -1.5 to +5.5 %, mean +1.4.
    __m512i acc[NT];
    for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_si512();
    for (int64_t g0 = 0, s = 0; g0 < groups; g0 += 8, ++s) {
      const __m512i scales = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      p += 16;
      const int64_t g1 = groups - g0 < 8 ? groups : g0 + 8;
      __m512i blk[NT];
      for (int j = 0; j < NT; ++j) blk[j] = _mm512_setzero_si512();
      for (int64_t i = g0; i < g1; ++i, p += kGroupBytes) {
        prefetch_stream(p);
        const __m512i v = qhead_group<Bits>(p);
        for (int j = 0; j < NT; ++j) blk[j] = _mm512_dpbusd_epi32(blk[j], v, _mm512_loadu_si512(qs[j] + i * 64));
      }
      for (int j = 0; j < NT; ++j)
        acc[j] = _mm512_add_epi32(acc[j], _mm512_mullo_epi32(_mm512_sub_epi32(blk[j], _mm512_load_si512(offs[j][s])), scales));
    }
    for (int j = 0; j < NT; ++j) {
      const int64_t dot = _mm512_reduce_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc[j]))) +
                          _mm512_reduce_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc[j], 1)));
      ys[j][m] = static_cast<float>(dot) / act_scales[j] * row_scales[m];
    }
  }
}

// One token's offsets: 2^(Bits-1) x the per-lane sums of its activations in each super-block.
template <int Bits>
inline void qhead_offsets(const int8_t* q, int64_t groups, int32_t (*out)[16]) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t g0 = 0, s = 0; g0 < groups; g0 += 8, ++s) {
    __m512i sum = _mm512_setzero_si512();
    for (int64_t i = g0; i < groups && i < g0 + 8; ++i) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_loadu_si512(q + i * 64));
    _mm512_store_si512(out[s], _mm512_slli_epi32(sum, Bits - 1));
  }
}

#include "bitnet/kernels/qhead_driver.inc"

// ---- The LM head in the Panel16 layout (kernels.h, pack_qhead_panel; K % kQheadPanelK == 0) ----
//
// The rows kernel above spends most of a multi-token pass on unpacking (8 operations per group for 6 bits) and on
// one horizontal sum per row and token. In panels one register holds 16 rows x 4 elements, as in the ternary GEMM:
// each token multiplies it by a broadcast of its 4 activations into one accumulator of 16 rows, and values stored
// at the top of their bytes unpack with ANDs (and 6 operations for the fourth tile of 6-bit quads). Standalone,
// one core, 6 bits, K = 2560, 32768 rows out of cache, page-aligned: 8 tokens 125 -> 210-230 GMAC/s, 1 token
// 47 -> 47-56 (as fast as the rows kernel or faster: its rows are not 64-byte aligned). In a pass of 8 tokens of
// the 2B-4T shape on 2 threads, the q6 head 9.3-9.7 -> 6.7-7.3 ms (the layouts alternated, 3 pairs).
//
// Values are S * u (S = 4 for 6 bits, 16 for 4 bits; u = w + h), so a block's sum less 128 * (the token's
// activation sum over the block) is S times its integer dot; times the block's scale that is below 2^27 (S * 32
// elements * 32 * 128 * 255), so eight blocks add up in int32 and go to int64 per half super-block. The end
// divides by S exactly: the same integer as the rows kernels, hence the same float.
constexpr int kPanelHeadTokens = 8;

// acc -= the int32 at p, broadcast.
inline __m512i sub_bcst(__m512i acc, const int32_t* p) {
  asm("vpsubd %[x]%{1to16%}, %[a], %[a]" : [a] "+v"(acc) : [x] "m"(*p));
  return acc;
}

// NT tokens against panels covering rows [m0, m1); offs[j] = 128 x token j's block sums, [super-block][block].
template <int Bits, int NT>
void qhead_panels(const uint8_t* w, size_t panel_bytes, int64_t supers, int64_t m0, int64_t m1,
                  const int8_t* const* qs, const int32_t* const* offs, const float* act_scales,
                  const float* row_scales, float* const* ys) {
  const __m512i top6 = _mm512_set1_epi8(static_cast<char>(0xFC)), bits23 = _mm512_set1_epi8(0x0C),
                bits67 = _mm512_set1_epi8(static_cast<char>(0xC0)), top4 = _mm512_set1_epi8(static_cast<char>(0xF0));
  for (int64_t p = m0 / kPanelRows; p * kPanelRows < m1; ++p) {
    const int64_t base = p * kPanelRows;
    const int64_t lo = base > m0 ? base : m0, hi = base + kPanelRows < m1 ? base + kPanelRows : m1;
    const __mmask16 store = static_cast<__mmask16>(((1u << (hi - base)) - 1) & ~((1u << (lo - base)) - 1));
    const uint8_t* pw = w + p * panel_bytes;
    __m512i total_lo[NT], total_hi[NT];  // int64 sums of rows 0-7 and 8-15
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) total_lo[t] = total_hi[t] = _mm512_setzero_si512();
    for (int64_t s = 0; s < supers; ++s) {
      const uint8_t* scales = pw;
      pw += 256;
      for (int half = 0; half < 2; ++half) {
        __m512i part[NT];
#pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) part[t] = _mm512_setzero_si512();
        for (int l = 8 * half; l < 8 * half + 8; ++l) {
          // One accumulator per token and block (two, for more independent vpdpbusd chains, were 0-15 % slower
          // standalone for 1-8 tokens: the extra adds cost more than the chains gave).
          __m512i a[NT];
#pragma GCC unroll 16
          for (int t = 0; t < NT; ++t) a[t] = _mm512_setzero_si512();
          const int64_t x0 = s * 512 + 4 * l;  // tile i's activations at x0 + 64i
          if constexpr (Bits == 6) {
#pragma GCC unroll 2
            for (int c = 0; c < 2; ++c, pw += 192) {
              for (int k = 0; k < 3; ++k) prefetch_stream(pw + 64 * k);
              const __m512i x = _mm512_loadu_si512(pw), y = _mm512_loadu_si512(pw + 64), z = _mm512_loadu_si512(pw + 128);
              const __m512i t0 = _mm512_and_si512(x, top6), t1 = _mm512_and_si512(y, top6), t2 = _mm512_and_si512(z, top6);
              // Tile 3: bits 0-1 of x, y, z moved to bits 2-3, 4-5, 6-7 (16-bit shifts; each select keeps the right
              // bits from the right source, the AND drops what bits 0-1 picked up from the byte below).
              __m512i t3 = _mm512_ternarylogic_epi32(_mm512_slli_epi16(x, 2), _mm512_slli_epi16(y, 4), bits23, 0xE4);
              t3 = _mm512_and_si512(_mm512_ternarylogic_epi32(_mm512_slli_epi16(z, 6), t3, bits67, 0xE4), top6);
              const int64_t xc = x0 + 256 * c;
#pragma GCC unroll 16
              for (int t = 0; t < NT; ++t) {
                a[t] = dpbusd_bcst(a[t], t0, qs[t] + xc);
                a[t] = dpbusd_bcst(a[t], t1, qs[t] + xc + 64);
                a[t] = dpbusd_bcst(a[t], t2, qs[t] + xc + 128);
                a[t] = dpbusd_bcst(a[t], t3, qs[t] + xc + 192);
              }
            }
          } else {
#pragma GCC unroll 4
            for (int c = 0; c < 4; ++c, pw += 64) {
              prefetch_stream(pw);
              const __m512i x = _mm512_loadu_si512(pw);
              const __m512i t0 = _mm512_and_si512(x, top4), t1 = _mm512_and_si512(_mm512_slli_epi16(x, 4), top4);
              const int64_t xc = x0 + 128 * c;
#pragma GCC unroll 16
              for (int t = 0; t < NT; ++t) {
                a[t] = dpbusd_bcst(a[t], t0, qs[t] + xc);
                a[t] = dpbusd_bcst(a[t], t1, qs[t] + xc + 64);
              }
            }
          }
          const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16 * l)));
#pragma GCC unroll 16
          for (int t = 0; t < NT; ++t)
            part[t] = _mm512_add_epi32(part[t], _mm512_mullo_epi32(sub_bcst(a[t], offs[t] + 16 * s + l), sc));
        }
#pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
          total_lo[t] = _mm512_add_epi64(total_lo[t], _mm512_cvtepi32_epi64(_mm512_castsi512_si256(part[t])));
          total_hi[t] = _mm512_add_epi64(total_hi[t], _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(part[t], 1)));
        }
      }
    }
    // y = float(dot) / act_scale * row_scale with dot = total / S (exact): the scalar table's operations.
    const __m512 rs = _mm512_maskz_loadu_ps(store, row_scales + base);
    constexpr int kShift = Bits == 6 ? 2 : 4;
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const __m512 dot = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtepi64_ps(_mm512_srai_epi64(total_lo[t], kShift))),
                                            _mm512_cvtepi64_ps(_mm512_srai_epi64(total_hi[t], kShift)), 1);
      _mm512_mask_storeu_ps(ys[t] + base, store, _mm512_mul_ps(_mm512_div_ps(dot, _mm512_set1_ps(act_scales[t])), rs));
    }
  }
}

// One token's offsets: 128 x the per-lane (block) sums of its activations in each super-block.
inline void qhead_panel_offsets(const int8_t* q, int64_t supers, int32_t* out) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t s = 0; s < supers; ++s) {
    __m512i sum = _mm512_setzero_si512();  // lane l: block l's activation sum
    for (int i = 0; i < 8; ++i) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_loadu_si512(q + 512 * s + 64 * i));
    _mm512_storeu_si512(out + 16 * s, _mm512_slli_epi32(sum, 7));
  }
}

// Rows for the widths panels do not take: the rows driver's entry (above).
void qhead_rows(int bits, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                const float* act_scales, int64_t T, const float* row_scales, float* y, int64_t ldy) {
  qhead_gemm(bits, w, row_bytes, K, m0, m1, q, act_scales, T, row_scales, y, ldy);
}

#include "bitnet/kernels/qhead_panel_driver.inc"

// exp_canonical (kernels.h) on 16 lanes: the same operations in the same order.
inline __m512 exp16(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(ExpConst::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(ExpConst::kNegLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(ExpConst::kNegLn2Lo), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(ExpConst::kP0), r, _mm512_set1_ps(ExpConst::kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ExpConst::kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ExpConst::kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ExpConst::kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ExpConst::kP5));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  // Outside [-87.34, 88.72] (and for NaN) n may not fit the exponent field: the lanes are replaced below.
  const __m512i k = _mm512_cvtps_epi32(n);  // exact: n is an integer
  const __m512i k1 = _mm512_srai_epi32(_mm512_add_epi32(k, _mm512_srli_epi32(k, 31)), 1);  // k / 2, truncated
  const __m512i k2 = _mm512_sub_epi32(k, k1);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, _mm512_set1_epi32(127)), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, _mm512_set1_epi32(127)), 23));
  __m512 e = _mm512_mul_ps(_mm512_mul_ps(y, s1), s2);
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(ExpConst::kUnderflow), _CMP_LT_OQ), _mm512_setzero_ps());
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(ExpConst::kOverflow), _CMP_GE_OQ),
                         _mm512_set1_ps(__builtin_inff()));
  return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// The last n % 16 elements in masked lanes (each lane is exp_canonical's value whatever its neighbours): a
// softmax over a few positions is mostly tail, and the scalar exp_canonical took ~15 ns per element (decoding
// the 2B-4T shape at <= 16 positions, 2.4 us of a layer's ~30 us of serial work).
void exp_shift(const float* x, float shift, float* y, int64_t n) {
  const __m512 s = _mm512_set1_ps(shift);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s)));
  if (i < n) {
    const __mmask16 m = tail_mask16(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
  }
}

void silu_mul(const float* g, float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i);
    const __m512 e = exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gv), _mm512_set1_epi32(INT32_MIN))));  // -g
    _mm512_storeu_ps(u + i, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_loadu_ps(u + i)));
  }
  silu_mul_scalar(g + i, u + i, n - i);
}

void scale_mul(const float* x, float a, const float* g, float* out, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), va), _mm512_loadu_ps(g + i)));
  if (i < n) {
    const __mmask16 m = tail_mask16(n - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), va),
                                                    _mm512_maskz_loadu_ps(m, g + i)));
  }
}

void relu_sqr_mul(const float* g, float* u, int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask16(n - i);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(gv, zero, _CMP_GT_OQ), gv);  // g > 0 ? g : +0 (NaN -> +0)
    _mm512_mask_storeu_ps(u + i, m, _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

// vcvtps2ph rounds to nearest even like f32_to_fp16, subnormal and overflowing halves included.
void to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  to_f16_scalar(x + i, y + i, n - i);
}

}  // namespace

const KernelTable* avx512_table() {
  static const KernelTable t{"avx512", TernaryLayout::Panel16, QheadLayout::Panel16, ternary_gemm, int8_gemm, qhead_any, sum_squares, quantize_i8, dot_f32, dot_f16, gemm_f16, axpy_f32, axpy_f16,
                             read_sum, attn_scores, attn_mix, exp_shift, silu_mul, to_f16, scale_mul, relu_sqr_mul};
  return &t;
}

}  // namespace bitnet::kernels
