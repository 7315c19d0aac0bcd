// A fixed set of worker threads for data-parallel kernels. Threads are created once; each job wakes them
// with one atomic store, the caller works too, and the call returns when every thread that joined the
// job has finished. A worker that is not running when the job is posted (the OS gave its core to another
// process) simply misses it: the caller and the other workers take its share, and the late worker never
// touches the job once it is closed. Waiting spins briefly, then sleeps on the atomic (futex).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

namespace bitnet {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1 (the caller counts as one)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index) on the caller (index 0) and on every worker that joins in time; returns when
  // all of them are done. Work must therefore be claimed dynamically (see parallel_for).
  template <typename F>
  void run(F&& fn) {
    auto trampoline = [](void* ctx, int i) { (*static_cast<F*>(ctx))(i); };
    dispatch(trampoline, &fn);
  }

  // Calls fn(begin, end, thread_index) over chunks covering [0, n) exactly once. Chunks are multiples of
  // `grain`. Thread i owns the i-th contiguous share of [0, n) and takes its chunks front to back, so each
  // thread reads one forward stream of rows (a hardware prefetcher's best case; chunks dealt round-robin
  // made every thread jump between four places per matrix and decoded ~5 % slower); a thread done with its
  // share takes chunks of the others' shares, so threads still finish together whatever their speed, and a
  // worker that missed the job leaves nothing undone. A claim takes a quarter of what is left of a share
  // (at least `grain`), so the last chunks are small and a thread seldom waits long for the other at the end.
  template <typename F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    parallel_for(n, grain, std::forward<F>(fn), [] {});
  }
  // The same, and the caller runs after() once (on its own thread) when no chunk is left for it to take,
  // before it waits for the workers' last chunks: the time to ask for what it reads next (Forward::layer).
  template <typename F, typename After>
  void parallel_for(int64_t n, int64_t grain, F&& fn, After&& after) {
    if (n <= 0) return after();
    const int64_t nt = n_threads_;
    if (n <= grain || nt == 1) {  // one chunk or one thread: the caller does it without waking anyone
      fn(int64_t(0), n, 0);
      after();
      return;
    }
    Share local[kLocalShares];
    std::unique_ptr<Share[]> heap;
    Share* shares = local;
    if (nt > kLocalShares) heap.reset(new Share[nt]), shares = heap.get();
    for (int64_t i = 0; i < nt; ++i) {
      shares[i].next.store(share_begin(n, grain, i, nt), std::memory_order_relaxed);
      shares[i].end = share_begin(n, grain, i + 1, nt);
    }
    run([&](int i) {
      for (int64_t k = 0; k < nt; ++k) {
        Share& sh = shares[(i + k) % nt];
        int64_t b = sh.next.load(std::memory_order_relaxed);
        while (b < sh.end) {
          const int64_t size = std::max(grain, ((sh.end - b) / 4 + grain - 1) / grain * grain);
          if (!sh.next.compare_exchange_weak(b, b + size, std::memory_order_relaxed)) continue;  // b reloaded
          fn(b, std::min(b + size, sh.end), i);
          b = sh.next.load(std::memory_order_relaxed);
        }
      }
      if (i == 0) after();
    });
  }

  // Where thread i's share of parallel_for(n, grain, ...) on nt threads begins (share_begin(n, grain, nt, nt) == n).
  static int64_t share_begin(int64_t n, int64_t grain, int64_t i, int64_t nt) {
    return i >= nt ? n : n * i / nt / grain * grain;
  }

  // Warming. Decoding one token runs serial work between its parallel products (norms, RoPE, attention),
  // during which the workers and the memory bus idle. warm(i, p, n) has worker i (1 .. size() - 1) read [p,
  // p + n) into its caches meanwhile (at most warm_limit() bytes), stopping when the next job is posted:
  // named as the start of the worker's share of the next job, those bytes are then read from cache. The
  // memory must stay readable until clear_warm() returns (or the pool is destroyed).
  void warm(int i, const void* p, size_t n);
  // Stops every worker's warming and waits until none reads memory named by warm().
  void clear_warm();
  size_t warm_limit() const { return warm_limit_; }

  // Threads to use by default: the CPUs this process may run on.
  static int default_threads();

 private:
  // One thread's share of a parallel_for: the next unclaimed index and the end (own cache line each).
  struct alignas(64) Share {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };
  static constexpr int kLocalShares = 16;

  // A worker's warming request: address (low 48 bits) and length in 4 KB pages (high 16), 0 for none; and
  // whether the worker is reading it (clear_warm waits on that).
  struct alignas(64) WarmSlot {
    std::atomic<uint64_t> request{0};
    std::atomic<bool> reading{false};
  };

  using Task = void (*)(void*, int);
  void dispatch(Task task, void* ctx);
  void worker(int index);
  // Reads worker `index`'s pending request (until the job of `generation` is replaced or the request withdrawn)
  // and consumes it; returns whether there was one.
  bool warm_step(int index, uint32_t generation);

  // Job state in one word: generation (high 32 bits), closed flag (bit 31), joined workers (bits 0-30).
  static constexpr uint64_t kClosed = 1ull << 31;
  static constexpr uint64_t kActiveMask = kClosed - 1;

  int n_threads_;
  std::vector<std::thread> workers_;
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint64_t> state_{kClosed};  // generation 0, closed, nobody active
  std::atomic<bool> stop_{false};
  std::unique_ptr<WarmSlot[]> warm_;  // [n_threads]; slot 0 (the caller) unused
  size_t warm_limit_;
  bool warm_posted_ = false;  // (the caller's) a warm() since the last job
};

}  // namespace bitnet
