// Every kernel table this CPU supports against the scalar specification: bit-exact.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cstring>
#include <random>

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
    for (int64_t T : {1, 2, 3, 4, 5, 9}) {
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
        std::vector<int8_t> qk(q);
        if (kt->prepare_acts)
          for (int64_t t = 0; t < T; ++t) kt->prepare_acts(&q[t * K], K, &qk[t * K]);
        std::vector<float> y(T * M, -1.0f);
        kt->ternary_gemm(codes.data(), K, 3, M, qk.data(), sum.data(), s.data(), T, 1.25f, y.data(), M);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t m = 3; m < M; ++m)
            ASSERT_EQ(bits(y[t * M + m]), bits(ref[t * M + m])) << kt->name << " K=" << K << " T=" << T << " m=" << m;
      }
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
  for (int64_t K : {64, 100, 256, 2560}) {
    const int64_t M = 19, T = 3;
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
      for (int64_t i = 0; i < T * M; ++i) ASSERT_EQ(bits(y[i]), bits(ref[i])) << kt->name << " K=" << K;
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
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 5, 16, 17, 1000, 128256}) {
    std::vector<std::atomic<int>> seen(n);
    pool.parallel_for(n, 16, [&](int64_t b, int64_t e, int) {
      EXPECT_EQ(b % 16, 0);
      EXPECT_TRUE(e - b >= 16 || e == n);
      for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << n << " " << i;
  }
}

TEST(ThreadPool, RejectsBadThreadCounts) {
  EXPECT_ANY_THROW(ThreadPool(0));
  EXPECT_GE(ThreadPool::default_threads(), 1);
}

}  // namespace
}  // namespace bitnet
