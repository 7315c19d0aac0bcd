#include "bitnet/base/thread_pool.h"

#include <sched.h>

#include "bitnet/base/error.h"

namespace bitnet {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

constexpr int kSpins = 20000;  // tens of microseconds of spinning before sleeping
inline uint32_t generation_of(uint64_t s) { return static_cast<uint32_t>(s >> 32); }

}  // namespace

int ThreadPool::default_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  if (n_threads < 1 || n_threads > 1024) fail("-t: thread count {} must be between 1 and 1024", n_threads);
  workers_.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  state_.fetch_add(1ull << 32, std::memory_order_acq_rel);  // a new generation wakes everyone
  state_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::dispatch(Task task, void* ctx) {
  if (n_threads_ == 1) {
    task(ctx, 0);
    return;
  }
  // The previous job is closed with no worker active, so nobody reads task_/ctx_ now.
  task_ = task;
  ctx_ = ctx;
  const uint64_t gen = generation_of(state_.load(std::memory_order_relaxed)) + 1u;
  state_.store(static_cast<uint64_t>(static_cast<uint32_t>(gen)) << 32, std::memory_order_release);
  state_.notify_all();
  task(ctx, 0);
  // Close the job: workers that have not joined yet will skip it.
  uint64_t s = state_.fetch_or(kClosed, std::memory_order_acq_rel) | kClosed;
  for (int spin = 0; (s & kActiveMask) != 0; ++spin) {
    if (spin < kSpins) cpu_relax();
    else state_.wait(s, std::memory_order_acquire);
    s = state_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0;
  while (true) {
    uint64_t s;
    for (int spin = 0; generation_of(s = state_.load(std::memory_order_acquire)) == seen; ++spin) {
      if (spin < kSpins) cpu_relax();
      else state_.wait(s, std::memory_order_acquire);
    }
    seen = generation_of(s);
    if (stop_.load(std::memory_order_acquire)) return;
    // Join unless the job was already closed (or replaced).
    bool joined = false;
    while (generation_of(s) == seen && !(s & kClosed)) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    task_(ctx_, index);
    const uint64_t after = state_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if ((after & kActiveMask) == 0 && (after & kClosed)) state_.notify_all();
  }
}

}  // namespace bitnet
