// A fixed set of worker threads for data-parallel kernels. Threads are created once; each job wakes them
// with one atomic store, the caller works too, and the call returns when every thread that joined the
// job has finished. A worker that is not running when the job is posted (the OS gave its core to another
// process) simply misses it: the caller and the other workers take its share, and the late worker never
// touches the job once it is closed. Waiting spins briefly, then sleeps on the atomic (futex).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
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
  // `grain`, handed out through an atomic counter, so threads finish together whatever their speed.
  template <typename F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    const int64_t per = (n + int64_t(n_threads_) * 4 - 1) / (int64_t(n_threads_) * 4);
    const int64_t chunk = std::max<int64_t>(grain, (per + grain - 1) / grain * grain);
    if (n <= chunk) {  // one chunk: the caller does it without waking anyone
      fn(int64_t(0), n, 0);
      return;
    }
    std::atomic<int64_t> next{0};
    run([&](int i) {
      for (int64_t b = next.fetch_add(chunk, std::memory_order_relaxed); b < n;
           b = next.fetch_add(chunk, std::memory_order_relaxed))
        fn(b, std::min(b + chunk, n), i);
    });
  }

  // Threads to use by default: the CPUs this process may run on.
  static int default_threads();

 private:
  using Task = void (*)(void*, int);
  void dispatch(Task task, void* ctx);
  void worker(int index);

  // Job state in one word: generation (high 32 bits), closed flag (bit 31), joined workers (bits 0-30).
  static constexpr uint64_t kClosed = 1ull << 31;
  static constexpr uint64_t kActiveMask = kClosed - 1;

  int n_threads_;
  std::vector<std::thread> workers_;
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint64_t> state_{kClosed};  // generation 0, closed, nobody active
  std::atomic<bool> stop_{false};
};

}  // namespace bitnet
