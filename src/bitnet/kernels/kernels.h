// CPU kernels, one table per instruction set, chosen once at startup from CPUID (BITNET_ISA=scalar|
// avx2|avxvnni|vnni256|avx512|neon forces one). scalar.cc is the specification: every other table is bit-exact with it.
//
//  - Ternary x int8 products are exact integers in every table.
//  - Float dot products have one canonical order: element i accumulates into lane i % 64 with a fused
//    multiply-add, and the 64 lanes are summed by a fixed halving tree (lane l += lane l + 32, then 16,
//    8, 4, 2, 1). SIMD tables keep the same 64 lanes in registers, so results match to the bit, and a
//    model gives the same tokens whatever CPU runs it.
//  - axpy is an elementwise fused multiply-add; exp, norms and quantization stay scalar.
//
// Shapes: activations are row-major [T][K]; outputs [T][ldy] with columns m0..m1 written, so threads
// split output rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bitnet/format/ggml_types.h"

namespace bitnet::kernels {

constexpr int kDotLanes = 64;

// Layouts of ternary weight matrices [M][K] that kernels read (codes 0, 1, 2 = -1, 0, +1; 3 is invalid and
// counts as +2 in every table, so a corrupt code gives the same wrong answer everywhere):
//  - I2S: the file's I2_S layout. Row m at byte m*K/4; 128-element blocks of 32 bytes, element 32g + i of a
//    block in bits (6 - 2g) of byte i.
//  - Panel16: rows in panels of 16 (the last one padded with code 1), panel p at byte p*4K. A panel is K/16
//    steps of 64 bytes; byte 4r + kk of step s holds row 16p + r, elements k = 16s + 4j + kk, j = 0..3, in
//    bits 2j. So (step >> 2j) & 3 is a 16-row x 4-element int8 tile in vpdpbusd order (AVX-512).
//  - Panel8: the same with 8 rows per panel (panel p at byte p*2K, 32-byte steps), for 256-bit registers.
enum class TernaryLayout { I2S, Panel16, Panel8 };

// Bytes of an [M][K] matrix in `layout`.
size_t ternary_layout_bytes(TernaryLayout layout, int64_t M, int64_t K);
// Writes rows [m0, m1) of I2_S codes (an [M][K] matrix) in `layout` into `out` (sized for all M rows);
// for panel layouts, m0 and m1 are multiples of the panel height or M. Threads may pack disjoint row ranges at once.
void pack_ternary(TernaryLayout layout, const uint8_t* i2s, int64_t M, int64_t K, int64_t m0, int64_t m1,
                  uint8_t* out);
// Whether rows of K columns can be packed into `layout` (every layout is packed from I2_S rows, so
// K % 128 == 0 for all of them).
bool ternary_layout_fits(TernaryLayout layout, int64_t K);

// Layouts of a 4- or 6-bit LM head [M][K] that qhead_gemm reads (the row format is described below, "4- and
// 6-bit LM head rows"):
//  - Rows: row m at byte m * qhead_row_bytes(bits, K).
//  - Panel16: for K % kQheadPanelK == 0 (other widths stay in Rows): rows in panels of 16 (the last one padded
//    with zero rows), panel p at byte 16p * qhead_row_bytes(bits, K); see pack_qhead_panel.
enum class QheadLayout { Rows, Panel16 };
constexpr int64_t kQheadPanelK = 512;  // whole super-blocks

// How far ahead the SIMD tables prefetch a weight stream that decoding reads once (the one-token GEMV, the LM
// head's rows and panels, read_sum), with the non-temporal hint (prefetchnta): the out-of-order window of a
// loop with arithmetic between its loads reaches only ~2 KB ahead. Measurements in avx512.cc (prefetch_stream).
constexpr int64_t kStreamPrefetch = 4096;
// Rows of V that the SIMD tables' attn_mix takes per block (attn_mix_driver.inc): it prefetches each next block
// itself (a decoded token's rows are already cached: attn_scores asked for them, its `next`).
constexpr int64_t kMixRows = 32;

struct KernelTable {
  const char* name;  // "scalar", "avx2", "avxvnni", "vnni256", "avx512", "neon"

  // The layout ternary_gemm reads (weights are packed into it once, at load time).
  TernaryLayout layout;
  // The layout qhead_gemm reads where the width allows it (qhead_layout_for; packed once, at load time).
  QheadLayout qhead_layout;

  // Ternary weights in `layout` times int8 activations [T][K] (natural order) with
  // act_sums[t] = sum_k q[t][k]:
  //   y[t][m] = float(sum_k code[m][k]*q[t][k] - act_sums[t]) / act_scales[t] * scale
  void (*ternary_gemm)(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                       const int32_t* act_sums, const float* act_scales, int64_t T, float scale, float* y,
                       int64_t ldy);

  // int8 weights [M][K] (row m at w + m*K) times int8 activations [T][K]:
  //   y[t][m] = float(sum_k w[m][k]*q[t][k]) / act_scales[t] * row_scales[m]   (the --lm-head q8 path)
  void (*int8_gemm)(const int8_t* w, int64_t K, int64_t m0, int64_t m1, const int8_t* q, const float* act_scales,
                    int64_t T, const float* row_scales, float* y, int64_t ldy);

  // 4- or 6-bit LM head rows (`bits`, the format below, in qhead_layout_for(table, K)) of row_bytes =
  // qhead_row_bytes(bits, K) times int8 activations [T][K]:
  //   y[t][m] = float(sum_l s_l * sum_{k in block l} w[m][k]*q[t][k]) / act_scales[t] * row_scales[m]
  // with the integer sum exact (so every table gives the scalar table's bits).
  void (*qhead_gemm)(int bits, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                     const float* act_scales, int64_t T, const float* row_scales, float* y, int64_t ldy);

  // sum_i x[i]^2 in double: element i accumulates into lane i % 32 (products of floats are exact in
  // double), lanes summed by a halving tree (l += l + 16, 8, 4, 2, 1). RMSNorm's sum of squares. (With 8
  // lanes, one register of AVX-512, each step waited for the last: 1.2 us of a 6912-wide norm, 32 lanes
  // keep four independent chains. The float mean rounded from the double sum is the same in all but
  // ~1 in 10^9 vectors.)
  double (*sum_squares)(const float* x, int64_t n);

  // BitNet's per-token activation quantization, bit-exact with quantize_row_i8 (below).
  float (*quantize_i8)(const float* x, int64_t K, int8_t* q, int32_t* sum);

  float (*dot_f32)(const float* a, const float* b, int64_t n);     // canonical order
  float (*dot_f16)(const uint16_t* a, const float* b, int64_t n);  // a: IEEE half, canonical order
  // F16 weights [M][K] (row m at w + m*K) times float activations [T][K]: y[t][m] = dot_f16(row m, x[t])
  // for rows [m0, m1). Rows are read one after another (one stream per thread reads fastest here).
  void (*gemm_f16)(const uint16_t* w, int64_t K, int64_t m0, int64_t m1, const float* x, int64_t T, float* y,
                   int64_t ldy);
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);  // y[i] = fma(a, x[i], y[i])
  void (*axpy_f16)(float a, const uint16_t* x, float* y, int64_t n);

  // Sum of the n / 8 little-endian 64-bit words at p (mod 2^64): a streaming read at the table's full
  // width, used by `bitnet bench --roofline` to measure memory bandwidth.
  uint64_t (*read_sum)(const uint8_t* p, size_t n);

  // Attention of nq query heads that share one KV head (GQA) over n cached rows of hd elements (F16 when
  // f16, else F32), row j at rows + j*stride bytes; query g at q + g*hd, its weights at w + g*ldw:
  //   attn_scores: out[g*ldo + j] = dot(row_j, q_g)          (canonical order, as dot_f16 / dot_f32)
  //   attn_mix:    out[g*hd + i] = sum_j w_g[j] * row_j[i]   (out starts at 0; fma over j in order, as axpy)
  // Each row is read once for all nq queries (with one query per call, a long context's K and V would be
  // streamed from memory once per query head). attn_scores' `next`, when not null, is n more rows at the same
  // stride that the caller reads next (the V rows of the same positions): each is asked for as its K row is,
  // so they arrive while the scores are computed. A hint only: no result depends on it. (Asked for in one
  // burst, most of them would not arrive: measurements at kScoreRowsAhead in avx512.cc.)
  void (*attn_scores)(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* q, int64_t nq,
                      int64_t hd, float* out, int64_t ldo, const uint8_t* next);
  void (*attn_mix)(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* w, int64_t ldw,
                   int64_t nq, int64_t hd, float* out);

  // With exp = exp_canonical (below), element by element:
  //   exp_shift: y[i] = exp(x[i] - shift)                  (softmax)
  //   silu_mul:  u[i] = g[i] / (1 + exp(-g[i])) * u[i]     (SiLU-gated feed-forward)
  void (*exp_shift)(const float* x, float shift, float* y, int64_t n);
  void (*silu_mul)(const float* g, float* u, int64_t n);

  // y[i] = x[i] as an IEEE half, rounded to nearest even: f32_to_fp16's bits (a NaN stays a NaN, its payload
  // unspecified). The F16 KV cache's rows.
  void (*to_f16)(const float* x, uint16_t* y, int64_t n);

  // Element by element, in float (two roundings each, no fused multiply-add; so every table gives the scalar
  // loop's bits):
  //   scale_mul:    out[i] = x[i] * a * g[i]                        (RMSNorm: (x * scale) * weight)
  //   relu_sqr_mul: u[i] = r * r * u[i], r = g[i] > 0 ? g[i] : 0    (squared-ReLU-gated feed-forward; NaN -> 0)
  // Steps of a token's serial work between products, which as loops compiled for the baseline ISA (SSE2) ran
  // 4 floats per instruction. Per-token A/B with a cycle counter per step (2B-4T shape, tg128, q8 head, 3
  // runs): each 2560-wide RMSNorm 0.35-0.4 us faster, the 6912-wide sub-norm 0.6-0.7, the activation 0.7.
  void (*scale_mul)(const float* x, float a, const float* g, float* out, int64_t n);
  void (*relu_sqr_mul)(const float* g, float* u, int64_t n);
};

// gemm_f16, attn_scores and attn_mix written with a table's dot and axpy (tables without their own).
void gemm_f16_by_dots(const KernelTable& kt, const uint16_t* w, int64_t K, int64_t m0, int64_t m1, const float* x,
                      int64_t T, float* y, int64_t ldy);
void attn_scores_by_dots(const KernelTable& kt, const uint8_t* rows, int64_t stride, bool f16, int64_t n,
                         const float* q, int64_t nq, int64_t hd, float* out, int64_t ldo, const uint8_t* next);
void attn_mix_by_axpy(const KernelTable& kt, const uint8_t* rows, int64_t stride, bool f16, int64_t n,
                      const float* w, int64_t ldw, int64_t nq, int64_t hd, float* out);

// The same as table entries: FromDots<avx2_table>::gemm_f16 calls gemm_f16_by_dots with *avx2_table().
// (They only forward to scalar.cc, and each instantiation names one table, so a copy compiled with one
// file's ISA flags is never picked for another file.)
template <const KernelTable* (*Table)()>
struct FromDots {
  static void gemm_f16(const uint16_t* w, int64_t K, int64_t m0, int64_t m1, const float* x, int64_t T, float* y,
                       int64_t ldy) {
    gemm_f16_by_dots(*Table(), w, K, m0, m1, x, T, y, ldy);
  }
  static void attn_scores(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* q, int64_t nq,
                          int64_t hd, float* out, int64_t ldo, const uint8_t* next) {
    attn_scores_by_dots(*Table(), rows, stride, f16, n, q, nq, hd, out, ldo, next);
  }
  static void attn_mix(const uint8_t* rows, int64_t stride, bool f16, int64_t n, const float* w, int64_t ldw,
                       int64_t nq, int64_t hd, float* out) {
    attn_mix_by_axpy(*Table(), rows, stride, f16, n, w, ldw, nq, hd, out);
  }
};

// Head sizes with unrolled attention-score kernels in the SIMD tables: BitNet/LLaMA 128, bitnet_b1_58-large
// 96, Falcon3 256, small models 64. with_fixed_head_size(hd, fn) calls fn(std::integral_constant<int, hd>)
// and returns true when hd is one of them. (fn is a lambda of the calling file, so each instantiation
// belongs to that file's ISA.)
template <typename Fn>
bool with_fixed_head_size(int64_t hd, Fn&& fn) {
  return [&]<int... HDs>(std::integer_sequence<int, HDs...>) {
    return ((hd == HDs && (fn(std::integral_constant<int, HDs>{}), true)) || ...);
  }(std::integer_sequence<int, 64, 96, 128, 256>{});
}

// The table in use (chosen on first call).
const KernelTable& active();
// Every table this CPU can run, scalar first (tests run each).
std::vector<const KernelTable*> supported_tables();
// A table by name if this CPU supports it, else nullptr.
const KernelTable* table_by_name(const std::string& name);

const KernelTable& scalar_table();
const KernelTable* avx2_table();     // nullptr when not compiled in
const KernelTable* avxvnni_table();  // AVX2 + 256-bit VNNI, VEX form (AVX-VNNI CPUs)
const KernelTable* vnni256_table();  // the same kernels in EVEX form (AVX-512 VNNI + VL CPUs)
const KernelTable* avx512_table();
const KernelTable* neon_table();    // aarch64 with the dot-product extension

// ---- Scalar building blocks shared by all tables (the specification) ----

// BitNet per-token activation quantization (BITNET_FORMATS.md §1.6):
//   amax = max(1e-5, max|x|) in double; s = float(127/amax); q = round_half_even(x*s) in [-128, 127].
// Returns s; *sum (optional) receives sum_k q[k].
float quantize_row_i8(const float* x, int64_t K, int8_t* q, int32_t* sum = nullptr);

// The scalar ends of quantize_row_i8, for SIMD tables that vectorize the middle (scalar.cc, compiled
// without ISA flags): the scale from the max |x| of x[0, k0) and the rest of the row, and the codes of
// x[k0, K) with their sum.
float quantize_scale(float prefix_amax, const float* x, int64_t k0, int64_t K);
int32_t quantize_tail(const float* x, int64_t k0, int64_t K, float s, int8_t* q);

// exp(x) in float as every table computes it (so softmax and SiLU give the same bits on every CPU): Cephes'
// expf method. n = round_half_even(x * log2(e)); r = fma(n, -0.693359375, x); r = fma(n, 2.12194440e-4, r);
// p = degree-5 polynomial in r by fma (Horner); y = fma(p, r*r, r) + 1; result y * 2^(n/2) * 2^(n - n/2)
// (n/2 truncated; both multiplies exact). x >= 88.7228394 gives +inf, x < -87.3365479 gives 0 (std::exp's
// subnormal results are flushed), NaN gives NaN. Within 2 ulp of the true exp elsewhere.
float exp_canonical(float x);
// Its constants, shared by every table's version.
struct ExpConst {
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kNegLn2Hi = -0.693359375f, kNegLn2Lo = 2.12194440e-4f;  // -ln 2 in two parts
  static constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                         kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
  static constexpr float kOverflow = 88.72283935546875f;    // x >= this: +inf
  static constexpr float kUnderflow = -87.33654785156250f;  // x < this: 0
};
// The scalar table's exp_shift and silu_mul, for SIMD tables' tails (and tables without their own).
void exp_shift_scalar(const float* x, float shift, float* y, int64_t n);
void silu_mul_scalar(const float* g, float* u, int64_t n);
void to_f16_scalar(const float* x, uint16_t* y, int64_t n);
void scale_mul_scalar(const float* x, float a, const float* g, float* out, int64_t n);
void relu_sqr_mul_scalar(const float* g, float* u, int64_t n);

// ---- 4- and 6-bit LM head rows (`--lm-head q4|q6`; qhead.cc) ----
//
// A row of K elements (qhead_fits: K % 64 == 0, K <= kQheadMaxK) is K/64 groups of 64 elements, taken in
// super-blocks of 8 groups (the last may have fewer, g). Block l (l = 0..15) of a super-block is its 4g elements
// 64i + 4l + j (i < g, j < 4): the elements one lane of a 16 x int32 vpdpbusd accumulator sums, so a block's
// scale multiplies a lane once per super-block. A super-block is stored as
//   16 bytes: the blocks' scales s_l (uint8);
//   per group, 32 bytes: byte b has the low 4 bits of u[b] in bits 0-3 and of u[b + 32] in bits 4-7;
//   6 bits only, per group after its 32 bytes, 16 bytes: byte b has bits 4-5 of u[b + 16j] in bits 2j, 2j + 1;
// where u = w + 8 (4 bits, w in [-8, 7]) or u = w + 32 (6 bits, w in [-32, 31]). Element k of a row is
// row_scale * s_l * w[k]: 4.25 or 6.25 bits per weight. The lanes' int32 sums stay below 2^31 for K <= kQheadMaxK
// (a super-block adds at most 255 * 32 * 32 * 128 < 2^25 to a lane).
constexpr int64_t kQheadMaxK = 16384;
bool qhead_fits(int64_t K);
size_t qhead_row_bytes(int bits, int64_t K);
// Quantizes one row (K floats) into `out` (qhead_row_bytes bytes); returns its row_scale. Each block's step is
// the one of six candidates with the least squared error; the row's scale makes the largest step 255.
float quantize_qhead_row(int bits, const float* x, int64_t K, uint8_t* out);
void dequantize_qhead_row(int bits, const uint8_t* row, float row_scale, int64_t K, float* out);
// The layout `kt`'s qhead_gemm reads for rows of K elements: its qhead_layout, or Rows where that needs a width
// it does not have.
QheadLayout qhead_layout_for(const KernelTable& kt, int64_t K);
// Bytes of an [M][K] head in `layout` (Panel16 rounds M up to whole panels).
size_t qhead_layout_bytes(QheadLayout layout, int bits, int64_t M, int64_t K);
// Panel16: the n (<= 16) rows at `rows` (Rows layout; rows n..15 are padding: weight 0, scale 0) written as one
// panel of 16 * qhead_row_bytes(bits, K) bytes. K % kQheadPanelK == 0, so every super-block has 8 groups. Per
// super-block:
//   256 bytes: the block scales, byte 16l + r = s_l of row r;
//   per block l = 0..15, its 8 tiles i = 0..7 (tile i: elements 512s + 64i + 4l + j, j < 4, of the 16 rows, value
//   u of row r, element j in byte 4r + j, vpdpbusd's order, so one register multiplies 16 rows by a broadcast of
//   4 activations), stored with each value shifted up to the top of its byte:
//     6 bits: per 4 tiles (i = 4c..4c+3) 3 x 64 bytes X0, X1, X2: byte b of Xn = u_{4c+n}[b] << 2 | bits 2n, 2n + 1
//             of u_{4c+3}[b];
//     4 bits: per 2 tiles (i = 2c, 2c + 1) 64 bytes: byte b = u_{2c}[b] << 4 | u_{2c+1}[b].
//   The same values and scales as the rows, so every layout gives the same products to the bit.
void pack_qhead_panel(int bits, const uint8_t* rows, int64_t n, int64_t K, uint8_t* out);
// The scalar table's qhead_gemm.
void qhead_gemm_scalar(int bits, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                       const float* act_scales, int64_t T, const float* row_scales, float* y, int64_t ldy);

// Ternary GEMM with one scale per 256-element block (TQ tensors whose block scales differ), natural
// activation order: y[t][m] = (sum_b float(dot_b) * block_scales[m*K/256 + b]) / act_scales[t].
void ternary_gemm_blocks(const uint8_t* codes, int64_t K, int64_t m0, int64_t m1, const int8_t* q,
                         const float* act_scales, int64_t T, const float* block_scales, float* y, int64_t ldy);

// Float weights of `type` (F32, F16, BF16, Q8_0, Q4_0, Q6_K), [M][K] rows of `row_bytes`:
//   y[t][m] = dot(W[m], x[t]) in the canonical order (other types are dequantized per row first).
// `row_scratch` holds K floats.
void float_gemm(const KernelTable& kt, TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0,
                int64_t m1, const float* x, int64_t T, float* y, int64_t ldy, float* row_scratch);

// One row of a float-typed matrix to float32 (embedding lookup).
void dequantize_row(TensorType type, const uint8_t* row, int64_t K, float* out);

// y = x / sqrt(mean(x^2) + eps) * g   (sum of squares in double through the active table's sum_squares;
// float mean and 1/sqrtf as ggml)
void rmsnorm(const float* x, const float* g, int64_t n, float eps, float* out);

// The canonical 64-lane reduction tree (shared by SIMD tails).
float reduce_lanes(float lanes[kDotLanes]);

// sum_squares' lanes (KernelTable::sum_squares) and their end, shared by every table: elements [i, n) of x
// added into lanes[j % kSquareLanes] (lanes holds the sums of x[0, i), i a multiple of kSquareLanes), then
// the halving tree; returns the sum.
constexpr int64_t kSquareLanes = 32;
double finish_sum_squares(double lanes[kSquareLanes], const float* x, int64_t i, int64_t n);

}  // namespace bitnet::kernels

namespace bitnet::kernels {
// Float weights times int8 activations (BitNet quantization applied to a float layer that is not exactly
// ternary): y[t][m] = (sum_k W[m][k] * q[t][k]) / act_scale[t], sequential float sum. Diagnostic path.
void float_gemm_i8(TensorType type, const uint8_t* w, size_t row_bytes, int64_t K, int64_t m0, int64_t m1,
                   const int8_t* q, const float* act_scales, int64_t T, float* y, int64_t ldy, float* row_scratch);
}  // namespace bitnet::kernels
