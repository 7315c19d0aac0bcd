// A fixed set of worker threads for data-parallel kernels. Threads are created once; each run() wakes
// them with one atomic increment, the caller works as thread 0, and the call returns when every thread
// has finished its share. Waiting spins briefly, then sleeps on the atomic (futex), so back-to-back
// operations of a decode step cost well under a microsecond to hand over.
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

  // Calls fn(thread_index, n_threads) on every thread and waits for all of them.
  template <typename F>
  void run(F&& fn) {
    auto trampoline = [](void* ctx, int i, int n) { (*static_cast<F*>(ctx))(i, n); };
    dispatch(trampoline, &fn);
  }

  // Calls fn(begin, end, thread_index) over chunks covering [0, n) exactly once. Chunks are multiples
  // of `grain` and handed out dynamically (an atomic counter), so a thread that was descheduled, or
  // got slower rows, takes fewer chunks and all threads finish together.
  template <typename F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    const int64_t per = (n + int64_t(n_threads_) * 4 - 1) / (int64_t(n_threads_) * 4);
    const int64_t chunk = std::max<int64_t>(grain, (per + grain - 1) / grain * grain);
    std::atomic<int64_t> next{0};
    run([&](int i, int) {
      for (int64_t b = next.fetch_add(chunk, std::memory_order_relaxed); b < n;
           b = next.fetch_add(chunk, std::memory_order_relaxed))
        fn(b, std::min(b + chunk, n), i);
    });
  }

  // Threads to use by default: the CPUs this process may run on.
  static int default_threads();

 private:
  using Task = void (*)(void*, int, int);
  void dispatch(Task task, void* ctx);
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace bitnet
