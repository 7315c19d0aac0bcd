#include "bitnet/base/thread_pool.h"

#include <sched.h>
#include <unistd.h>

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

constexpr uint64_t kWarmAddress = (uint64_t(1) << 48) - 1;  // a warming request's address bits

// What a worker may warm: half its L2 (the rest keeps what the job itself reads), 128 KB to 1 MB.
size_t warm_limit_bytes() {
  long l2 = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
  l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  return std::clamp<size_t>(l2 > 0 ? size_t(l2) / 2 : 0, size_t(128) << 10, size_t(1) << 20);
}

}  // namespace

int ThreadPool::default_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads), warm_limit_(warm_limit_bytes()) {
  if (n_threads < 1 || n_threads > 1024) fail("-t: thread count {} must be between 1 and 1024", n_threads);
  warm_.reset(new WarmSlot[n_threads]);
  workers_.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  state_.fetch_add(1ull << 32, std::memory_order_acq_rel);  // a new generation wakes everyone
  state_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::warm(int i, const void* p, size_t n) {
  const uint64_t address = reinterpret_cast<uintptr_t>(p), pages = std::min(n, warm_limit_) >> 12;
  if (i < 1 || i >= n_threads_ || pages == 0 || (address & ~kWarmAddress) != 0) return;
  warm_[i].request.store(address | pages << 48, std::memory_order_release);
  warm_posted_ = true;
}

void ThreadPool::clear_warm() {
  for (int i = 1; i < n_threads_; ++i) {
    warm_[i].request.store(0, std::memory_order_seq_cst);
    while (warm_[i].reading.load(std::memory_order_seq_cst)) cpu_relax();
  }
  warm_posted_ = false;
}

bool ThreadPool::warm_step(int index, uint32_t generation) {
  WarmSlot& slot = warm_[index];
  const uint64_t request = slot.request.load(std::memory_order_acquire);
  if (request == 0) return false;
  // Announce the read, then check the request still stands: clear_warm withdraws it and then waits for
  // `reading` to fall, so (both sequentially consistent) either this sees 0 or clear_warm sees true.
  slot.reading.store(true, std::memory_order_seq_cst);
  if (slot.request.load(std::memory_order_seq_cst) == request) {
    const auto* p = reinterpret_cast<const uint8_t*>(request & kWarmAddress);
    const size_t n = (request >> 48) << 12;
    for (size_t off = 0; off < n; off += 1024) {  // a job posted or the request withdrawn stops it within 1 KB
      if (generation_of(state_.load(std::memory_order_relaxed)) != generation ||
          slot.request.load(std::memory_order_relaxed) != request)
        break;
      for (size_t line = off; line < off + 1024; line += 64) (void)*reinterpret_cast<const volatile uint8_t*>(p + line);
    }
    uint64_t expected = request;  // consumed (unless replaced meanwhile)
    slot.request.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
  }
  slot.reading.store(false, std::memory_order_release);
  return true;
}

void ThreadPool::dispatch(Task task, void* ctx) {
  if (n_threads_ == 1) {
    task(ctx, 0);
    return;
  }
  if (warm_posted_) {  // warming is for the gap before this job: a request not yet read is stale now
    for (int i = 1; i < n_threads_; ++i) warm_[i].request.store(0, std::memory_order_relaxed);
    warm_posted_ = false;
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
      if (warm_step(index, seen)) {
        spin = 0;
        continue;
      }
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
