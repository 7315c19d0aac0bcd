// An allocator whose vectors leave new elements uninitialized (default-initialized: no write for float or
// int8_t). For scratch buffers sized for the largest batch: pages of a large allocation come fresh from
// mmap and become resident only when a batch that large writes them, so decoding with a 512-token batch
// size does not hold ~80 MB of never-used activations. Every element must be written before it is read.
// Allocations are 64-byte aligned: kernels load a token's int8 activations 64 bytes at a time (the LM head's
// q4/q6/q8 GEMMs), and a load across two cache lines costs two (large blocks from malloc start 16 bytes into
// a page, so rows of a multiple of 64 bytes all straddled lines). The q6 head of the 2B-4T shape, 3 pairs of
// old and new binaries alternated: 5 tokens 10.6 -> 9.7-10.1 ms, 9 tokens 16.1-17.0 -> 14.6-16.2 ms per pass.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace bitnet {

template <typename T>
struct UninitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <typename U>
  UninitAllocator(const UninitAllocator<U>&) noexcept {}
  static constexpr std::align_val_t kAlign{64};
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) noexcept { ::operator delete(p, kAlign); }  // (clang has no sized form by default)
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
using ScratchVector = std::vector<T, UninitAllocator<T>>;

}  // namespace bitnet
