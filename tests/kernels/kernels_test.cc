// Every kernel table this CPU supports against the scalar specification: bit-exact.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <chrono>
#include <thread>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <utility>

#include "bitnet/base/fp16.h"
#include "bitnet/base/thread_pool.h"
#include "bitnet/format/ternary.h"
#include "bitnet/kernels/kernels.h"

namespace bitnet {
namespace {

using kernels::KernelTable;

std::vector<const KernelTable*> simd_tables() {
  auto all = kernels::supported_tables();
  return std::vector<const KernelTable*>(all.begin() + 1, all.end());
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint32_t bits_of(float f) { return bits(f); }

TEST(Kernels, ScalarIsAlwaysAvailableAndActiveIsSupported) {
  const auto all = kernels::supported_tables();
  ASSERT_FALSE(all.empty());
  EXPECT_STREQ(all[0]->name, "scalar");
  EXPECT_NE(kernels::table_by_name(kernels::active().name), nullptr);
  std::printf("kernel tables on this CPU:");
  for (auto* t : all) std::printf(" %s", t->name);
  std::printf("; active: %s\n", kernels::active().name);
}

TEST(Kernels, TernaryGemmBitExact) {
  std::mt19937 rng(5);
  for (int64_t K : {128, 256, 384, 640, 2560, 6912}) {
    for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 13}) {
      const int64_t M = 37;
      std::vector<uint8_t> codes(M * K / 4);
      for (auto& b : codes) b = static_cast<uint8_t>(rng());  // includes invalid code 3
      std::vector<float> x(T * K);
      std::normal_distribution<float> nd;
      for (auto& v : x) v = nd(rng);
      x[0] = 50.0f;  // an outlier
      std::vector<int8_t> q(T * K);
      std::vector<float> s(T);
      std::vector<int32_t> sum(T);
      for (int64_t t = 0; t < T; ++t) s[t] = kernels::quantize_row_i8(&x[t * K], K, &q[t * K], &sum[t]);
      std::vector<float> ref(T * M, -1.0f);
      kernels::scalar_table().ternary_gemm(codes.data(), K, 0, M, q.data(), sum.data(), s.data(), T, 1.25f, ref.data(), M);
      for (const KernelTable* kt : simd_tables()) {
        std::vector<uint8_t> packed(kernels::ternary_layout_bytes(kt->layout, M, K));
        kernels::pack_ternary(kt->layout, codes.data(), M, K, 0, M, packed.data());
        // Row ranges that start and end inside a panel, as well as whole panels.
        for (auto [m0, m1] : {std::pair<int64_t, int64_t>{3, M}, {0, 16}, {16, 21}, {5, 9}}) {
          std::vector<float> y(T * M, -1.0f);
          kt->ternary_gemm(packed.data(), K, m0, m1, q.data(), sum.data(), s.data(), T, 1.25f, y.data(), M);
          for (int64_t t = 0; t < T; ++t)
            for (int64_t m = 0; m < M; ++m) {
              const float want = m >= m0 && m < m1 ? ref[t * M + m] : -1.0f;  // outside [m0, m1): untouched
              ASSERT_EQ(bits(y[t * M + m]), bits(want)) << kt->name << " K=" << K << " T=" << T << " m=" << m
                                                        << " rows " << m0 << ".." << m1;
            }
        }
      }
    }
  }
}

// Rows long enough that a kernel's int32 partial sums would overflow if it scaled or grouped them
// carelessly, with the largest codes (invalid 3 = +2) and activations at the int8 ends.
TEST(Kernels, TernaryGemmExtremeLongRows) {
  std::mt19937 rng(21);
  const int64_t M = 17, K = 360448;  // 22528 steps of 16: 4^3 * 3 * 128 * 4 * 22528 > 2^31
  for (int fill : {0, 1, 2}) {
    std::vector<uint8_t> codes(M * K / 4);
    for (auto& b : codes) b = fill == 2 ? static_cast<uint8_t>(rng()) : 0xFF;
    for (int64_t T : {1, 2, 3, 4, 9}) {
      std::vector<int8_t> q(T * K);
      for (auto& v : q) v = fill == 0 ? int8_t{-128} : fill == 1 ? int8_t{127} : static_cast<int8_t>(rng());
      std::vector<int32_t> sum(T, 0);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t k = 0; k < K; ++k) sum[t] += q[t * K + k];
      const std::vector<float> s(T, 1.0f);
      std::vector<float> ref(T * M);
      kernels::scalar_table().ternary_gemm(codes.data(), K, 0, M, q.data(), sum.data(), s.data(), T, 1.0f, ref.data(), M);
      for (const KernelTable* kt : simd_tables()) {
        std::vector<uint8_t> packed(kernels::ternary_layout_bytes(kt->layout, M, K));
        kernels::pack_ternary(kt->layout, codes.data(), M, K, 0, M, packed.data());
        std::vector<float> y(T * M);
        kt->ternary_gemm(packed.data(), K, 0, M, q.data(), sum.data(), s.data(), T, 1.0f, y.data(), M);
        for (int64_t i = 0; i < T * M; ++i)
          ASSERT_EQ(bits(y[i]), bits(ref[i])) << kt->name << " fill " << fill << " T=" << T << " i=" << i;
      }
    }
  }
}

// The panel layouts, checked against their definition in kernels.h element by element.
TEST(Kernels, PanelLayoutsMatchTheirDefinition) {
  std::mt19937 rng(9);
  const int64_t M = 21, K = 384;  // a partial last panel
  std::vector<uint8_t> codes(M * K / 4);
  for (auto& b : codes) b = static_cast<uint8_t>(rng());
  auto i2s_code = [&](int64_t m, int64_t k) {
    return (codes[m * K / 4 + (k / 128) * 32 + k % 32] >> (6 - 2 * ((k % 128) / 32))) & 3;
  };
  for (auto [layout, R] : {std::pair{kernels::TernaryLayout::Panel16, int64_t(16)}, {kernels::TernaryLayout::Panel8, 8}}) {
    const int64_t panels = (M + R - 1) / R;
    ASSERT_EQ(kernels::ternary_layout_bytes(layout, M, K), size_t(panels * R * K / 4));
    std::vector<uint8_t> packed(kernels::ternary_layout_bytes(layout, M, K), 0xAA);
    // Two row ranges packed separately (as threads would) give the whole matrix.
    kernels::pack_ternary(layout, codes.data(), M, K, 0, R, packed.data());
    kernels::pack_ternary(layout, codes.data(), M, K, R, M, packed.data());
    for (int64_t m = 0; m < panels * R; ++m)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t p = m / R, r = m % R, s = k / 16, j = (k % 16) / 4, kk = k % 4;
        const int got = (packed[p * R * K / 4 + 4 * R * s + 4 * r + kk] >> (2 * j)) & 3;
        ASSERT_EQ(got, m < M ? i2s_code(m, k) : 1) << "R=" << R << " m=" << m << " k=" << k;
      }
  }
}

TEST(Kernels, TernaryGemmMatchesDecodedWeights) {
  // The scalar table itself against a plain decode of the I2_S codes.
  const int64_t K = 256, M = 3;
  std::vector<int8_t> w(M * K);
  std::mt19937 rng(1);
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  std::vector<uint8_t> codes(M * K / 4 + 32);
  i2s_encode(w.data(), M * K, 1.0f, codes.data());
  std::vector<int8_t> q(K);
  for (int64_t k = 0; k < K; ++k) q[k] = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  int32_t sum = 0;
  for (int8_t v : q) sum += v;
  const float s = 2.0f;
  float y[M];
  kernels::scalar_table().ternary_gemm(codes.data(), K, 0, M, q.data(), &sum, &s, 1, 3.0f, y, M);
  for (int64_t m = 0; m < M; ++m) {
    int32_t dot = 0;
    for (int64_t k = 0; k < K; ++k) dot += w[m * K + k] * q[k];
    EXPECT_EQ(y[m], static_cast<float>(dot) / 2.0f * 3.0f);
  }
}

TEST(Kernels, Int8GemmBitExact) {
  std::mt19937 rng(11);
  for (int64_t K : {64, 100, 256, 448, 2560})  // 448: the one-token loop of 256 bytes, then 3 steps of 64
  for (int64_t T : {1, 3, 4, 9, 70}) {  // token blocks of 8 and chunks of 64 in the AVX-512 table
    const int64_t M = 19;
    std::vector<int8_t> w(M * K), q(T * K);
    for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    for (auto& v : q) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    std::vector<float> rs(M), as(T, 3.0f), ref(T * M);
    for (auto& v : rs) v = 0.01f * static_cast<float>(rng() % 100 + 1);
    kernels::scalar_table().int8_gemm(w.data(), K, 0, M, q.data(), as.data(), T, rs.data(), ref.data(), M);
    for (int64_t m = 0; m < M; ++m) {
      int32_t dot = 0;
      for (int64_t k = 0; k < K; ++k) dot += w[m * K + k] * q[k];
      EXPECT_EQ(ref[m], static_cast<float>(dot) / 3.0f * rs[m]);
    }
    for (const KernelTable* kt : simd_tables()) {
      std::vector<float> y(T * M);
      kt->int8_gemm(w.data(), K, 0, M, q.data(), as.data(), T, rs.data(), y.data(), M);
      for (int64_t i = 0; i < T * M; ++i) ASSERT_EQ(bits(y[i]), bits(ref[i])) << kt->name << " K=" << K << " T=" << T;
    }
  }
}

// ---- 4- and 6-bit LM head rows: an encoder written here from kernels.h's layout text, not from qhead.cc ----

struct QheadRow {
  std::vector<int> w;          // K signed values
  std::vector<uint8_t> scale;  // one per block: (K/64 groups in super-blocks of 8) x 16 lanes
};

// Encodes by the letter of kernels.h: per super-block 16 scale bytes, then per group 32 nibble bytes (and 16
// high-bit bytes for 6 bits).
std::vector<uint8_t> encode_qhead(int bits, const QheadRow& r, int64_t K) {
  const int off = bits == 6 ? 32 : 8;
  std::vector<uint8_t> out;
  const int64_t groups = K / 64;
  for (int64_t g0 = 0, s = 0; g0 < groups; g0 += 8, ++s) {
    for (int l = 0; l < 16; ++l) out.push_back(r.scale[s * 16 + l]);
    for (int64_t i = g0; i < std::min<int64_t>(groups, g0 + 8); ++i) {
      auto u = [&](int e) { return r.w[i * 64 + e] + off; };
      for (int b = 0; b < 32; ++b) out.push_back(static_cast<uint8_t>((u(b) & 15) | (u(b + 32) & 15) << 4));
      if (bits == 6)
        for (int b = 0; b < 16; ++b) {
          int v = 0;
          for (int j = 0; j < 4; ++j) v |= (u(b + 16 * j) >> 4 & 3) << 2 * j;
          out.push_back(static_cast<uint8_t>(v));
        }
    }
  }
  return out;
}

// Block of element k: lane (k % 64) / 4 of its super-block.
int64_t qhead_block(int64_t k) { return k / 512 * 16 + k % 64 / 4; }

// M rows of the Rows layout in the layout `kt` reads for width K (packed with pack_qhead_panel, which
// QheadPanelLayoutMatchesTheDefinition checks against the layout text).
std::vector<uint8_t> qhead_for_table(const KernelTable& kt, int bits, const std::vector<uint8_t>& rows, int64_t M, int64_t K) {
  const kernels::QheadLayout layout = kernels::qhead_layout_for(kt, K);
  if (layout == kernels::QheadLayout::Rows) return rows;
  const size_t rb = kernels::qhead_row_bytes(bits, K);
  std::vector<uint8_t> out(kernels::qhead_layout_bytes(layout, bits, M, K));
  EXPECT_EQ(out.size(), size_t((M + 15) / 16 * 16) * rb);
  for (int64_t p = 0; p * 16 < M; ++p)
    kernels::pack_qhead_panel(bits, rows.data() + p * 16 * rb, std::min<int64_t>(16, M - p * 16), K, out.data() + p * 16 * rb);
  return out;
}

// Panel16 by the letter of kernels.h, from the values and scales (not from the rows' bytes): per super-block 256
// scale bytes [block][row], then per block its 8 tiles of 16 rows x 4 elements, values at the top of their bytes.
TEST(Kernels, QheadPanelLayoutMatchesTheDefinition) {
  std::mt19937 rng(24);
  for (int bits : {4, 6})
    for (int64_t M : {16, 21}) {
      const int64_t K = 1024, supers = K / 512;
      const int h = bits == 6 ? 32 : 8;
      std::vector<QheadRow> rows(M);
      std::vector<uint8_t> packed_rows;
      for (auto& r : rows) {
        r.w.resize(K);
        r.scale.resize(supers * 16);
        for (auto& v : r.w) v = static_cast<int>(rng() % (2 * h)) - h;
        for (auto& v : r.scale) v = static_cast<uint8_t>(rng() % 256);
        const auto e = encode_qhead(bits, r, K);
        packed_rows.insert(packed_rows.end(), e.begin(), e.end());
      }
      const size_t rb = kernels::qhead_row_bytes(bits, K);
      for (int64_t p = 0; p * 16 < M; ++p) {
        const int64_t n = std::min<int64_t>(16, M - p * 16);
        std::vector<uint8_t> want;
        // u of row r (of the panel), element k; padding rows hold weight 0 with scale 0
        auto u = [&](int64_t r, int64_t k) { return r < n ? rows[p * 16 + r].w[k] + h : h; };
        for (int64_t s = 0; s < supers; ++s) {
          for (int l = 0; l < 16; ++l)
            for (int64_t r = 0; r < 16; ++r) want.push_back(r < n ? rows[p * 16 + r].scale[s * 16 + l] : 0);
          for (int l = 0; l < 16; ++l) {
            auto tile = [&](int i, int b) { return u(b / 4, 512 * s + 64 * i + 4 * l + b % 4); };
            if (bits == 6) {
              for (int c = 0; c < 2; ++c)
                for (int x = 0; x < 3; ++x)
                  for (int b = 0; b < 64; ++b)
                    want.push_back(static_cast<uint8_t>(tile(4 * c + x, b) << 2 | (tile(4 * c + 3, b) >> (2 * x) & 3)));
            } else {
              for (int c = 0; c < 4; ++c)
                for (int b = 0; b < 64; ++b) want.push_back(static_cast<uint8_t>(tile(2 * c, b) << 4 | tile(2 * c + 1, b)));
            }
          }
        }
        ASSERT_EQ(want.size(), 16 * rb);
        std::vector<uint8_t> got(16 * rb, 0xAA);
        kernels::pack_qhead_panel(bits, packed_rows.data() + p * 16 * rb, n, K, got.data());
        EXPECT_EQ(got, want) << "bits=" << bits << " M=" << M << " panel " << p;
      }
    }
  // Panels only where every super-block is whole, and only for tables that read them.
  for (const KernelTable* kt : kernels::supported_tables()) {
    EXPECT_EQ(kernels::qhead_layout_for(*kt, 576), kernels::QheadLayout::Rows) << kt->name;
    EXPECT_EQ(kernels::qhead_layout_for(*kt, 2560), kt->qhead_layout) << kt->name;
  }
  EXPECT_EQ(kernels::qhead_layout_bytes(kernels::QheadLayout::Rows, 6, 21, 512), 21 * kernels::qhead_row_bytes(6, 512));
  EXPECT_EQ(kernels::qhead_layout_bytes(kernels::QheadLayout::Panel16, 6, 21, 512), 32 * kernels::qhead_row_bytes(6, 512));
}

TEST(Kernels, QheadLayoutAndScalarGemmMatchTheDefinition) {
  std::mt19937 rng(21);
  for (int bits : {4, 6})
    for (int64_t K : {64, 192, 512, 576, 2560}) {
      const int h = bits == 6 ? 32 : 8;
      const int64_t M = 5, T = 3, blocks = (K / 64 + 7) / 8 * 16;
      ASSERT_TRUE(kernels::qhead_fits(K));
      const size_t rb = kernels::qhead_row_bytes(bits, K);
      ASSERT_EQ(rb, size_t(blocks + K / 64 * (bits == 6 ? 48 : 32)));
      std::vector<QheadRow> rows(M);
      std::vector<uint8_t> packed;
      for (auto& r : rows) {
        r.w.resize(K);
        r.scale.resize(blocks);
        for (auto& v : r.w) v = static_cast<int>(rng() % (2 * h)) - h;
        for (auto& v : r.scale) v = static_cast<uint8_t>(rng() % 256);
        const auto e = encode_qhead(bits, r, K);
        ASSERT_EQ(e.size(), rb);
        packed.insert(packed.end(), e.begin(), e.end());
      }
      std::vector<int8_t> q(T * K);
      for (auto& v : q) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
      const float as[T] = {2.0f, 0.5f, 3.0f}, rs[M] = {0.25f, 1.0f, 0.01f, 7.0f, 0.125f};
      std::vector<float> y(T * M), deq(K);
      kernels::scalar_table().qhead_gemm(bits, packed.data(), rb, K, 0, M, q.data(), as, T, rs, y.data(), M);
      for (int64_t m = 0; m < M; ++m) {
        kernels::dequantize_qhead_row(bits, packed.data() + m * rb, rs[m], K, deq.data());
        for (int64_t k = 0; k < K; ++k)
          ASSERT_EQ(deq[k], rs[m] * float(rows[m].scale[qhead_block(k)]) * float(rows[m].w[k])) << "k=" << k;
        for (int64_t t = 0; t < T; ++t) {
          int64_t dot = 0;
          for (int64_t k = 0; k < K; ++k) dot += int64_t{rows[m].scale[qhead_block(k)]} * rows[m].w[k] * q[t * K + k];
          EXPECT_EQ(y[t * M + m], static_cast<float>(dot) / as[t] * rs[m]) << bits << " K=" << K;
        }
      }
    }
  EXPECT_FALSE(kernels::qhead_fits(100));
  EXPECT_FALSE(kernels::qhead_fits(kernels::kQheadMaxK + 64));
}

TEST(Kernels, QheadGemmBitExact) {
  std::mt19937 rng(22);
  std::normal_distribution<float> nd;
  for (int bits : {4, 6})
    for (int64_t K : {64, 256, 512, 576, 2560})  // panels where K % 512 == 0 (Panel16 tables)
      for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17}) {  // every token block size up to 8, chunks of 16
        const int64_t M = 37;                      // row tiles of 16: whole and partial
        const size_t rb = kernels::qhead_row_bytes(bits, K);
        std::vector<uint8_t> w(M * rb);
        std::vector<float> rs(M), x(K);
        for (int64_t m = 0; m < M; ++m) {
          for (auto& v : x) v = nd(rng) * (rng() % 50 == 0 ? 20.0f : 1.0f);  // some outliers
          rs[m] = kernels::quantize_qhead_row(bits, x.data(), K, w.data() + m * rb);
        }
        std::vector<int8_t> q(T * K);
        std::vector<float> as(T);
        for (int64_t t = 0; t < T; ++t) {
          for (auto& v : x) v = nd(rng);
          as[t] = kernels::quantize_row_i8(x.data(), K, q.data() + t * K);
        }
        const int64_t ld = M + 3;
        std::vector<float> ref(T * ld, -1.0f);
        kernels::scalar_table().qhead_gemm(bits, w.data(), rb, K, 0, M, q.data(), as.data(), T, rs.data(), ref.data(), ld);
        for (const KernelTable* kt : simd_tables()) {
          const std::vector<uint8_t> wt = qhead_for_table(*kt, bits, w, M, K);
          std::vector<float> y(T * ld, -1.0f);
          kt->qhead_gemm(bits, wt.data(), rb, K, 0, M, q.data(), as.data(), T, rs.data(), y.data(), ld);
          for (int64_t i = 0; i < T * ld; ++i)
            ASSERT_EQ(bits_of(y[i]), bits_of(ref[i])) << kt->name << " bits=" << bits << " K=" << K << " T=" << T << " i=" << i;
          std::vector<float> part(T * ld, -1.0f);  // a row range inside the matrix, as threads split it
          kt->qhead_gemm(bits, wt.data(), rb, K, 5, 23, q.data(), as.data(), T, rs.data(), part.data(), ld);
          for (int64_t t = 0; t < T; ++t)
            for (int64_t m = 0; m < ld; ++m)
              ASSERT_EQ(bits_of(part[t * ld + m]), bits_of(m >= 5 && m < 23 ? ref[t * ld + m] : -1.0f)) << kt->name;
        }
      }
}

// The largest width and every value at its extreme: the lanes' int32 sums must not overflow.
TEST(Kernels, QheadGemmExtremesAtLargestWidth) {
  const int64_t K = kernels::kQheadMaxK, M = 2;
  for (int bits : {4, 6}) {
    const int h = bits == 6 ? 32 : 8;
    QheadRow r;
    r.w.assign(K, -h);
    r.scale.assign((K / 64 + 7) / 8 * 16, 255);
    std::vector<uint8_t> w = encode_qhead(bits, r, K);
    r.w.assign(K, h - 1);
    const std::vector<uint8_t> w2 = encode_qhead(bits, r, K);
    w.insert(w.end(), w2.begin(), w2.end());
    std::vector<int8_t> q(K, -128);
    const float as = 1.0f, rs[M] = {1.0f, 1.0f};
    const float want[M] = {static_cast<float>(int64_t{255} * -h * -128 * K), static_cast<float>(int64_t{255} * (h - 1) * -128 * K)};
    for (const KernelTable* kt : kernels::supported_tables()) {
      const std::vector<uint8_t> wt = qhead_for_table(*kt, bits, w, M, K);
      float y[M];
      kt->qhead_gemm(bits, wt.data(), kernels::qhead_row_bytes(bits, K), K, 0, M, q.data(), &as, 1, rs, y, M);
      EXPECT_EQ(y[0], want[0]) << kt->name << " bits=" << bits;
      EXPECT_EQ(y[1], want[1]) << kt->name << " bits=" << bits;
    }
  }
}

// Quantization error of Gaussian rows with outliers (1 in 100 values 8x larger), relative to the rows' RMS: no
// worse than the plain per-block code (float step max|x| / (2^(bits-1) - 1), as Q4_0-like formats), and a real
// 6/4-bit code rather than a lossless copy.
TEST(Kernels, QheadQuantizationError) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd;
  for (int bits : {4, 6}) {
    const int64_t K = 2560;
    const int h = bits == 6 ? 32 : 8;
    double err = 0, plain = 0, power = 0;
    std::vector<float> x(K), back(K);
    std::vector<uint8_t> w(kernels::qhead_row_bytes(bits, K));
    for (int rep = 0; rep < 50; ++rep) {
      for (auto& v : x) v = 0.02f * nd(rng) * (rng() % 100 == 0 ? 8.0f : 1.0f);
      const float rs = kernels::quantize_qhead_row(bits, x.data(), K, w.data());
      kernels::dequantize_qhead_row(bits, w.data(), rs, K, back.data());
      for (int64_t k = 0; k < K; ++k) err += double(x[k] - back[k]) * (x[k] - back[k]), power += double(x[k]) * x[k];
      for (int64_t b = 0; b < K / 512 * 16; ++b) {  // the same blocks, plain code
        float amax = 0;
        for (int64_t k = 0; k < K; ++k)
          if (qhead_block(k) == b) amax = std::max(amax, std::fabs(x[k]));
        const float step = amax / float(h - 1);
        for (int64_t k = 0; k < K; ++k)
          if (qhead_block(k) == b) {
            const float v = step * std::nearbyint(x[k] / step);
            plain += double(x[k] - v) * (x[k] - v);
          }
      }
    }
    const double rel = std::sqrt(err / power), rel_plain = std::sqrt(plain / power);
    EXPECT_LE(rel, rel_plain) << bits;
    EXPECT_GT(rel, bits == 6 ? 0.003 : 0.02) << bits;
    std::printf("%d bits: relative RMS error %.4f (plain per-block code %.4f)\n", bits, rel, rel_plain);
    std::fill(x.begin(), x.end(), 0.0f);  // an all-zero row stays zero
    const float rs = kernels::quantize_qhead_row(bits, x.data(), K, w.data());
    kernels::dequantize_qhead_row(bits, w.data(), rs, K, back.data());
    EXPECT_TRUE(std::all_of(back.begin(), back.end(), [](float v) { return v == 0; }));
  }
}

TEST(Kernels, AttentionScoresAndMixBitExact) {
  std::mt19937 rng(8);
  std::normal_distribution<float> nd;
  for (bool f16 : {true, false})
    for (int64_t hd : {64, 96, 128, 256, 80, 200})
      for (int64_t n : {1, 15, 16, 17, 33, 64, 65, 100})
        for (int64_t nq : {1, 3, 4, 5, 9}) {  // query heads per KV head: the SIMD paths go 2, 4 and 8 at a time
          const int64_t elem = f16 ? 2 : 4, stride = (hd + 24) * elem;  // rows with gaps, as in the cache
          const int64_t ld = n + 3;                                       // score rows with gaps too
          std::vector<uint8_t> rows(n * stride);
          for (int64_t j = 0; j < n; ++j)
            for (int64_t i = 0; i < hd; ++i) {
              const float v = nd(rng);
              if (f16) {
                const uint16_t h = f32_to_fp16(v);
                std::memcpy(&rows[j * stride + 2 * i], &h, 2);
              } else {
                std::memcpy(&rows[j * stride + 4 * i], &v, 4);
              }
            }
          std::vector<float> q(nq * hd), w(nq * ld), ref_s(nq * ld, -3.0f), ref_o(nq * hd), s(nq * ld), o(nq * hd);
          for (auto& v : q) v = nd(rng);
          for (auto& v : w) v = std::fabs(nd(rng));
          const KernelTable& sc = kernels::scalar_table();
          sc.attn_scores(rows.data(), stride, f16, n, q.data(), nq, hd, ref_s.data(), ld, nullptr);
          sc.attn_mix(rows.data(), stride, f16, n, w.data(), ld, nq, hd, ref_o.data());
          for (int64_t g = 0; g < nq; ++g) {  // the scalar table is the dot/axpy definition
            std::vector<float> axpy(hd, 0.0f);
            for (int64_t j = 0; j < n; ++j) {
              const uint8_t* row = &rows[j * stride];
              const float want = f16 ? sc.dot_f16(reinterpret_cast<const uint16_t*>(row), &q[g * hd], hd)
                                     : sc.dot_f32(reinterpret_cast<const float*>(row), &q[g * hd], hd);
              ASSERT_EQ(bits(ref_s[g * ld + j]), bits(want)) << "g=" << g << " j=" << j;
              if (f16) sc.axpy_f16(w[g * ld + j], reinterpret_cast<const uint16_t*>(row), axpy.data(), hd);
              else sc.axpy_f32(w[g * ld + j], reinterpret_cast<const float*>(row), axpy.data(), hd);
            }
            for (int64_t j = n; j < ld; ++j) ASSERT_EQ(ref_s[g * ld + j], -3.0f);  // gaps left alone
            for (int64_t i = 0; i < hd; ++i) ASSERT_EQ(bits(ref_o[g * hd + i]), bits(axpy[i])) << "g=" << g << " i=" << i;
          }
          const std::vector<uint8_t> next(n * stride, 0x5A);  // rows asked for beside K: a hint that changes no result
          for (const KernelTable* kt : simd_tables())
            for (const uint8_t* pull : {static_cast<const uint8_t*>(nullptr), next.data()}) {
              std::fill(o.begin(), o.end(), -7.0f);
              std::fill(s.begin(), s.end(), -3.0f);
              kt->attn_scores(rows.data(), stride, f16, n, q.data(), nq, hd, s.data(), ld, pull);
              kt->attn_mix(rows.data(), stride, f16, n, w.data(), ld, nq, hd, o.data());
              for (int64_t k = 0; k < nq * ld; ++k)
                ASSERT_EQ(bits(s[k]), bits(ref_s[k])) << kt->name << " f16=" << f16 << " hd=" << hd << " n=" << n
                                                      << " nq=" << nq << " next=" << (pull != nullptr) << " at " << k;
              for (int64_t k = 0; k < nq * hd; ++k)
                ASSERT_EQ(bits(o[k]), bits(ref_o[k]))
                    << kt->name << " f16=" << f16 << " hd=" << hd << " n=" << n << " nq=" << nq << " at " << k;
            }
        }
}

TEST(Kernels, GemmF16BitExact) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  for (int64_t K : {64, 100, 2560})
  for (int64_t T : {1, 3, 4, 9, 70}) {  // token blocks of 4 in the AVX-512 table: whole, partial, several (70: many)
    const int64_t M = 21;
    std::vector<uint16_t> w(M * K);
    for (auto& v : w) v = f32_to_fp16(nd(rng));
    std::vector<float> x(T * K), ref(T * M, -1.0f), y(T * M, -1.0f);
    for (auto& v : x) v = nd(rng);
    kernels::scalar_table().gemm_f16(w.data(), K, 2, M, x.data(), T, ref.data(), M);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t m = 2; m < M; ++m)
        ASSERT_EQ(bits(ref[t * M + m]), bits(kernels::scalar_table().dot_f16(&w[m * K], &x[t * K], K)));
    for (const KernelTable* kt : simd_tables()) {
      kt->gemm_f16(w.data(), K, 2, M, x.data(), T, y.data(), M);
      for (int64_t i = 0; i < T * M; ++i)
        ASSERT_EQ(bits(y[i]), bits(ref[i])) << kt->name << " K=" << K << " T=" << T << " i=" << i;
    }
  }
}

TEST(Kernels, ReadSumAgrees) {
  std::mt19937_64 rng(2);
  for (size_t n : {0, 8, 100, 256, 1000, 4096 + 24}) {
    std::vector<uint8_t> buf(n);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    uint64_t want = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, &buf[i], 8);
      want += w;
    }
    for (const KernelTable* kt : kernels::supported_tables()) ASSERT_EQ(kt->read_sum(buf.data(), n), want) << kt->name << " n=" << n;
  }
}

TEST(Kernels, SumSquaresBitExact) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  for (int64_t n : {0, 1, 7, 8, 9, 31, 32, 33, 63, 65, 100, 2560, 6912, 6913}) {
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng) * 1e3f;
    double lanes[32] = {};  // the definition in kernels.h: lane i % 32, then the halving tree
    for (int64_t i = 0; i < n; ++i) lanes[i % 32] += static_cast<double>(x[i]) * x[i];
    for (int64_t width = 16; width >= 1; width /= 2)
      for (int64_t l = 0; l < width; ++l) lanes[l] = lanes[l] + lanes[l + width];
    const double want = lanes[0];
    for (const KernelTable* kt : kernels::supported_tables())
      ASSERT_EQ(kt->sum_squares(x.data(), n), want) << kt->name << " n=" << n;
  }
}

TEST(Kernels, QuantizeBitExact) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int64_t K : {1, 15, 16, 17, 100, 2560, 6912}) {
    for (int variant = 0; variant < 6; ++variant) {
      std::vector<float> x(K);
      for (auto& v : x) v = nd(rng) * (variant == 3 ? 1e-7f : 1.0f);
      if (variant == 1) x[K / 2] = std::nanf("");
      if (variant == 2) x[K - 1] = INFINITY;
      if (variant == 4)
        for (int64_t k = 0; k < K; ++k) x[k] = 0.5f * static_cast<float>(k % 9) - 2.0f;  // exact ties at s = 1
      if (variant == 5) x[0] = -1e30f;
      std::vector<int8_t> ref(K), q(K);
      int32_t ref_sum = 0, sum = 0;
      const float ref_s = kernels::quantize_row_i8(x.data(), K, ref.data(), &ref_sum);
      for (const KernelTable* kt : kernels::supported_tables()) {
        const float s = kt->quantize_i8(x.data(), K, q.data(), &sum);
        ASSERT_EQ(bits(s), bits(ref_s)) << kt->name << " K=" << K << " variant " << variant;
        ASSERT_EQ(sum, ref_sum) << kt->name << " K=" << K << " variant " << variant;
        ASSERT_EQ(q, ref) << kt->name << " K=" << K << " variant " << variant;
      }
    }
  }
}

TEST(Kernels, QuantizeRoundsHalfToEvenWithFloor) {
  const float x[4] = {0.5f, 1.5f, -2.5f, 127.0f};  // amax 127 -> s = 1
  int8_t q[4];
  int32_t sum;
  EXPECT_EQ(kernels::quantize_row_i8(x, 4, q, &sum), 1.0f);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 2);
  EXPECT_EQ(q[2], -2);
  EXPECT_EQ(q[3], 127);
  EXPECT_EQ(sum, 127);
  const float tiny[2] = {1e-9f, -1e-9f};  // amax floor 1e-5
  EXPECT_EQ(kernels::quantize_row_i8(tiny, 2, q), static_cast<float>(127.0 / 1e-5));
}

TEST(Kernels, FloatDotAndAxpyBitExact) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  for (int64_t n : {1, 7, 8, 15, 16, 17, 63, 64, 65, 100, 128, 1000, 2560, 6912}) {
    std::vector<float> a(n), b(n), y0(n);
    std::vector<uint16_t> h(n);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = nd(rng);
      b[i] = nd(rng) * 100;
      h[i] = f32_to_fp16(nd(rng));
      y0[i] = nd(rng);
    }
    const KernelTable& ref = kernels::scalar_table();
    const float d32 = ref.dot_f32(a.data(), b.data(), n), d16 = ref.dot_f16(h.data(), b.data(), n);
    std::vector<float> ya(y0), yh(y0);
    ref.axpy_f32(0.37f, a.data(), ya.data(), n);
    ref.axpy_f16(-1.5f, h.data(), yh.data(), n);
    for (const KernelTable* kt : simd_tables()) {
      EXPECT_EQ(bits(kt->dot_f32(a.data(), b.data(), n)), bits(d32)) << kt->name << " n=" << n;
      EXPECT_EQ(bits(kt->dot_f16(h.data(), b.data(), n)), bits(d16)) << kt->name << " n=" << n;
      std::vector<float> y1(y0), y2(y0);
      kt->axpy_f32(0.37f, a.data(), y1.data(), n);
      kt->axpy_f16(-1.5f, h.data(), y2.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(bits(y1[i]), bits(ya[i])) << kt->name;
        ASSERT_EQ(bits(y2[i]), bits(yh[i])) << kt->name;
      }
    }
  }
}

TEST(Kernels, CanonicalDotIsAccurate) {
  std::vector<float> a(1000, 0.1f), b(1000, 3.0f);
  EXPECT_NEAR(kernels::scalar_table().dot_f32(a.data(), b.data(), 1000), 300.0f, 1e-3);
}

TEST(ThreadPool, CallerAlwaysRunsAndWorkersRunAtMostOnce) {
  for (int n : {1, 2, 3, 8}) {
    ThreadPool pool(n);
    std::vector<std::atomic<int>> hits(n);
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<std::atomic<int>> once(n);
      pool.run([&](int i) {
        hits[i].fetch_add(1);
        EXPECT_EQ(once[i].fetch_add(1), 0);
      });
    }
    EXPECT_EQ(hits[0].load(), 200);
    int total = 0;
    for (int i = 0; i < n; ++i) total += hits[i].load();
    EXPECT_GE(total, 200);
  }
}

TEST(ThreadPool, WorkersShareLoadWhenIdle) {
  ThreadPool pool(2);
  std::atomic<int> by_worker{0};
  for (int rep = 0; rep < 50; ++rep)
    pool.parallel_for(64, 1, [&](int64_t, int64_t, int i) {
      if (i == 1) by_worker.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
  EXPECT_GT(by_worker.load(), 0);  // the worker took chunks
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  for (int threads : {2, 3, 5, 20})  // 20: more shares than the pool keeps on the stack
    for (int64_t grain : {1, 16})
      for (int64_t n : {0, 1, 5, 16, 17, 48, 1000, 128256}) {
        ThreadPool pool(threads);
        std::vector<std::atomic<int>> seen(n);
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int) {
          EXPECT_EQ(b % grain, 0);
          EXPECT_TRUE(e - b >= grain || e == n);
          EXPECT_LT(b, e);
          for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << threads << " " << n << " " << i;
      }
}

// Each share is claimed front to back: the chunks any one thread takes from a share come in increasing order,
// and along a share the chunks never grow (a claim is a quarter of what is left, at least the grain). Which
// thread takes which chunk depends on timing (a fast worker may take all of the caller's share), so only
// these orders are checked.
TEST(ThreadPool, ParallelForWalksSharesForward) {
  ThreadPool pool(2);
  for (int rep = 0; rep < 20; ++rep) {
    struct Chunk {
      int64_t b, e;
      int thread;
    };
    std::vector<Chunk> seen;  // in the order claimed by each thread
    std::mutex mu;
    pool.parallel_for(4096, 16, [&](int64_t b, int64_t e, int i) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back({b, e, i});
    });
    for (int64_t share_end : {int64_t(2048), int64_t(4096)}) {
      const int64_t share_begin = share_end - 2048;
      for (int thread : {0, 1}) {
        int64_t last = -1;
        for (const Chunk& c : seen)
          if (c.thread == thread && c.b >= share_begin && c.b < share_end) {
            EXPECT_GT(c.b, last);
            last = c.b;
          }
      }
      std::vector<Chunk> share;
      for (const Chunk& c : seen)
        if (c.b >= share_begin && c.b < share_end) share.push_back(c);
      std::sort(share.begin(), share.end(), [](const Chunk& a, const Chunk& b) { return a.b < b.b; });
      ASSERT_FALSE(share.empty());
      EXPECT_EQ(share.front().b, share_begin);
      EXPECT_EQ(share.back().e, share_end);
      for (size_t k = 1; k < share.size(); ++k) {
        EXPECT_EQ(share[k].b, share[k - 1].e);
        EXPECT_LE(share[k].e - share[k].b, share[k - 1].e - share[k - 1].b);
      }
    }
  }
}

// after() runs once, on the caller, when the caller has no chunk left to take: it takes none afterwards, and
// every chunk it ever took ended before after() began.
TEST(ThreadPool, ParallelForRunsAfterOnceOnTheCallerWhenItsChunksAreDone) {
  for (int threads : {1, 2, 3})
    for (int64_t n : {0, 1, 16, 4096}) {
      ThreadPool pool(threads);
      for (int rep = 0; rep < 20; ++rep) {
        std::atomic<int> calls{0}, caller_chunks{0}, caller_chunks_at_after{-1};
        std::atomic<bool> caller_busy{false};
        std::atomic<int64_t> covered{0};
        const std::thread::id caller = std::this_thread::get_id();
        pool.parallel_for(n, 16, [&](int64_t b, int64_t e, int i) {
          if (i == 0) {
            caller_busy = true;
            caller_chunks.fetch_add(1);
          }
          covered.fetch_add(e - b);
          if (i == 0) caller_busy = false;
        }, [&] {
          calls.fetch_add(1);
          EXPECT_EQ(std::this_thread::get_id(), caller);
          EXPECT_FALSE(caller_busy.load());
          caller_chunks_at_after = caller_chunks.load();
        });
        EXPECT_EQ(calls.load(), 1);
        EXPECT_EQ(caller_chunks_at_after.load(), caller_chunks.load());  // no chunk after after()
        EXPECT_EQ(covered.load(), n);
      }
    }
}

TEST(ThreadPool, RejectsBadThreadCounts) {
  EXPECT_ANY_THROW(ThreadPool(0));
  EXPECT_GE(ThreadPool::default_threads(), 1);
}

// The shares parallel_for starts its threads at (what Forward::warm names to each worker).
TEST(ThreadPool, ShareBeginsTileTheRange) {
  for (int64_t nt : {1, 2, 3, 7})
    for (int64_t grain : {1, 16, 64})
      for (int64_t n : {int64_t(0), int64_t(5), int64_t(2560), int64_t(13824), int64_t(128256)}) {
        EXPECT_EQ(ThreadPool::share_begin(n, grain, 0, nt), 0);
        EXPECT_EQ(ThreadPool::share_begin(n, grain, nt, nt), n);
        for (int64_t i = 1; i < nt; ++i) {
          const int64_t b = ThreadPool::share_begin(n, grain, i, nt);
          EXPECT_EQ(b % grain, 0);
          EXPECT_LE(ThreadPool::share_begin(n, grain, i - 1, nt), b);
          EXPECT_LE(b, n);
        }
      }
  // One thread's chunks of a job with the caller held back start at its share's beginning.
  ThreadPool pool(2);
  std::atomic<int64_t> first{-1};
  pool.parallel_for(2560, 16, [&](int64_t b, int64_t, int i) {
    if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int64_t none = -1;
    if (i == 1) first.compare_exchange_strong(none, b);
  });
  if (first.load() >= 0) {
    EXPECT_EQ(first.load(), ThreadPool::share_begin(2560, 16, 1, 2));
  }
}

// Warming (ThreadPool::warm): a worker reads named memory while it waits for a job; clear_warm returns only
// when none reads it any more, so the memory can then be unmapped. Each round maps fresh pages, names them to
// every worker, lets them read for 0-200 us (with or without a job in between), clears, and unmaps: a read
// after clear_warm would fault. (With clear_warm not waiting for the readers, this failed in 3 runs of 3.)
TEST(ThreadPool, WarmingStopsBeforeClearReturns) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    EXPECT_GE(pool.warm_limit(), size_t(128) << 10);
    EXPECT_LE(pool.warm_limit(), size_t(1) << 20);
    std::mt19937 rng(threads);
    for (int round = 0; round < 300; ++round) {
      const size_t bytes = size_t(2) << 20;
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      ASSERT_NE(p, MAP_FAILED);
      if (round % 2) std::memset(p, round & 0xff, bytes);  // else each page faults when first read: a wider window
      for (int i = 1; i < threads; ++i) pool.warm(i, static_cast<uint8_t*>(p) + 4096 * i, bytes - 4096 * i);
      const auto wait = std::chrono::microseconds(rng() % 200);
      for (auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < wait;) {
      }
      if (round % 3 == 0) {  // a job withdraws any request not yet read
        std::atomic<int64_t> sum{0};
        pool.parallel_for(64, 1, [&](int64_t b, int64_t e, int) { sum.fetch_add(e - b); });
        EXPECT_EQ(sum.load(), 64);
      }
      pool.clear_warm();
      ASSERT_EQ(munmap(p, bytes), 0);
    }
    // Requests that name nothing to read, or no worker, change nothing.
    static const uint8_t few[100] = {};
    pool.warm(0, few, sizeof few);
    pool.warm(threads, few, sizeof few);
    pool.warm(1, nullptr, 1 << 20);
    pool.warm(1, few, sizeof few);  // under a page
    pool.clear_warm();
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, 16, [&](int64_t b, int64_t e, int) { sum.fetch_add(e - b); });
    EXPECT_EQ(sum.load(), 1000);
  }
}


// The F16 KV cache's conversion: every table gives f32_to_fp16's bits, ties, subnormal halves, overflow to
// infinity and signed zeros included; a NaN gives a NaN.
TEST(Kernels, ToF16BitExact) {
  std::mt19937 rng(11);
  std::vector<float> x;
  for (float scale : {1e-9f, 1e-7f, 3e-5f, 1e-3f, 1.0f, 300.0f, 6e4f}) {
    std::normal_distribution<float> nd(0.0f, scale);
    for (int i = 0; i < 200; ++i) x.push_back(nd(rng));
  }
  // Exact ties between two halves (normal and subnormal), and values at the edges of the range.
  for (uint32_t h : {0x0000u, 0x0001u, 0x0002u, 0x03FFu, 0x0400u, 0x3C00u, 0x3C01u, 0x7BFEu}) {
    const float lo = fp16_to_f32(static_cast<uint16_t>(h)), hi = fp16_to_f32(static_cast<uint16_t>(h + 1));
    x.push_back(0.5f * (lo + hi));
    x.push_back(-0.5f * (lo + hi));
  }
  for (float v : {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, 1e30f, -1e30f, 5.96e-8f, 2.98e-8f, 2.9e-8f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::denorm_min()})
    x.push_back(v);
  for (uint32_t nan : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA00000u, 0xFF800123u})  // quiet and signalling
    x.push_back(bits_to_f32(nan));
  std::shuffle(x.begin(), x.end(), rng);
  for (const KernelTable* kt : kernels::supported_tables()) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(15), int64_t(17), int64_t(x.size())}) {
      std::vector<uint16_t> y(n + 1, 0xABCD);
      kt->to_f16(x.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(x[i])) {
          EXPECT_TRUE((y[i] & 0x7C00) == 0x7C00 && (y[i] & 0x3FF) != 0) << kt->name;
        } else {
          EXPECT_EQ(y[i], f32_to_fp16(x[i])) << kt->name << " x=" << x[i] << " n=" << n;
        }
      }
      EXPECT_EQ(y[n], 0xABCD) << kt->name << ": wrote past n";
    }
  }
}

// exp_canonical against the exact exp (long double): within 2 ulp over the range where it is normal;
// the flush and overflow thresholds and NaN as documented.
TEST(Kernels, ExpCanonicalAccuracy) {
  const auto ulps = [](float got, long double want) {
    const float w = static_cast<float>(want);
    const float ulp = std::nextafter(std::fabs(w), INFINITY) - std::fabs(w);
    return static_cast<double>(std::fabs(static_cast<long double>(got) - want) / ulp);
  };
  double worst = 0;
  for (float x = -87.3f; x < 88.7f; x += 0.000731f) worst = std::max(worst, ulps(kernels::exp_canonical(x), std::exp(static_cast<long double>(x))));
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> small(-1.0f, 1.0f);
  for (int i = 0; i < 200000; ++i) {
    const float x = small(rng);
    worst = std::max(worst, ulps(kernels::exp_canonical(x), std::exp(static_cast<long double>(x))));
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(kernels::exp_canonical(0.0f), 1.0f);
  EXPECT_EQ(kernels::exp_canonical(-0.0f), 1.0f);
  EXPECT_EQ(kernels::exp_canonical(88.72283935546875f), INFINITY);
  EXPECT_EQ(kernels::exp_canonical(INFINITY), INFINITY);
  EXPECT_EQ(kernels::exp_canonical(-87.3365555f), 0.0f);
  EXPECT_EQ(kernels::exp_canonical(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(kernels::exp_canonical(NAN)));
  EXPECT_GT(kernels::exp_canonical(88.7f), 3.0e38f);
  EXPECT_GT(kernels::exp_canonical(-87.3f), 0.0f);
}

// RMSNorm's scaling and the squared-ReLU gate: every table gives the scalar loop's bits, special values and
// vector tails included, and writes nothing past n.
TEST(Kernels, ScaleMulAndReluSqrBitExact) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  const std::vector<float> special = {0.0f, -0.0f, NAN, -NAN, INFINITY, -INFINITY, 1e-45f, -1e-45f, 1e30f, -1e30f,
                                      3.4e38f, -3.4e38f, 1e-20f, -1e-20f};
  const int64_t n_special = static_cast<int64_t>(special.size());
  for (int64_t n : {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 2560, 6912}) {
    std::vector<float> x(n), g(n), u(n);
    for (int64_t i = 0; i < n; ++i) {  // special values at the front, and again in the tail
      const bool front = i < n_special, back = n - 1 - i < n_special;
      x[i] = front && n >= 16 ? special[i] : back && n % 8 != 0 ? special[n - 1 - i] : nd(rng);
      g[i] = back && n >= 16 ? special[n - 1 - i] : nd(rng);
      u[i] = front && n % 8 == 1 ? special[i] : nd(rng);
    }
    for (float a : {0.37f, -2.0f, 1e-30f, 0.0f, INFINITY}) {
      std::vector<float> ref(n);
      for (int64_t i = 0; i < n; ++i) ref[i] = x[i] * a * g[i];
      for (const KernelTable* kt : kernels::supported_tables()) {
        std::vector<float> out(n + 16, -5.0f);
        kt->scale_mul(x.data(), a, g.data(), out.data(), n);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(bits(out[i]), bits(ref[i])) << kt->name << " " << x[i] << " * " << a << " * " << g[i] << " n=" << n;
        for (int64_t i = n; i < n + 16; ++i) ASSERT_EQ(out[i], -5.0f) << kt->name << " wrote past n=" << n;
      }
    }
    std::vector<float> ref = u;
    for (int64_t i = 0; i < n; ++i) {
      const float r = g[i] > 0 ? g[i] : 0.0f;
      ref[i] = r * r * u[i];
    }
    for (const KernelTable* kt : kernels::supported_tables()) {
      std::vector<float> got = u;
      got.resize(n + 16, -5.0f);
      kt->relu_sqr_mul(g.data(), got.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(bits(got[i]), bits(ref[i])) << kt->name << " relu(" << g[i] << ")^2 * " << u[i] << " n=" << n;
      for (int64_t i = n; i < n + 16; ++i) ASSERT_EQ(got[i], -5.0f) << kt->name << " wrote past n=" << n;
    }
  }
}

TEST(Kernels, ExpShiftAndSiluBitExact) {
  std::mt19937 rng(22);
  std::normal_distribution<float> nd(0.0f, 8.0f);
  const std::vector<float> special = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 88.72283935546875f, 88.7228317f,
                                      -87.33654785156250f, -87.3365555f, 1e-30f, -1e-30f, 1e30f, -1e30f,
                                      88.376f, -86.999f, 0.34657359f, -0.34657359f, 1e-45f};
  const int64_t n_special = static_cast<int64_t>(special.size());
  for (int64_t n : {1, 7, 8, 15, 16, 17, 31, 33, 47, 100, 1000}) {
    std::vector<float> x(n), u(n);
    for (int64_t i = 0; i < n; ++i) {  // the special values at the front, or (31, 47) in the vector tails
      x[i] = i < n_special && n >= 33 ? special[i] : n % 16 == 15 && n - 1 - i < n_special ? special[n - 1 - i] : nd(rng);
      u[i] = nd(rng);
    }
    for (float shift : {0.0f, 3.5f, -100.0f}) {
      std::vector<float> ref(n), ref_u = u;
      kernels::scalar_table().exp_shift(x.data(), shift, ref.data(), n);
      kernels::scalar_table().silu_mul(x.data(), ref_u.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(bits(ref[i]), bits(kernels::exp_canonical(x[i] - shift)));
        ASSERT_EQ(bits(ref_u[i]), bits(x[i] / (1.0f + kernels::exp_canonical(-x[i])) * u[i]));
      }
      for (const KernelTable* kt : simd_tables()) {
        std::vector<float> y(n + 16, -5.0f), yu = u;  // (y past n must stay untouched)
        kt->exp_shift(x.data(), shift, y.data(), n);
        kt->silu_mul(x.data(), yu.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(bits(y[i]), bits(ref[i])) << kt->name << " exp(" << x[i] << " - " << shift << ") n=" << n;
          ASSERT_EQ(bits(yu[i]), bits(ref_u[i])) << kt->name << " silu(" << x[i] << ") n=" << n;
        }
        for (int64_t i = n; i < n + 16; ++i) ASSERT_EQ(y[i], -5.0f) << kt->name << " wrote past n=" << n;
        std::vector<float> inplace = x;  // softmax calls it in place
        kt->exp_shift(inplace.data(), shift, inplace.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(inplace[i]), bits(ref[i]));
      }
    }
  }
}

}  // namespace
}  // namespace bitnet
