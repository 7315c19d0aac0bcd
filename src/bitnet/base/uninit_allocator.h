// An allocator whose vectors leave new elements uninitialized (default-initialized: no write for float or
// int8_t). For scratch buffers sized for the largest batch: pages of a large allocation come fresh from
// mmap and become resident only when a batch that large writes them, so decoding with a 512-token batch
// size does not hold ~80 MB of never-used activations. Every element must be written before it is read.
#pragma once

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
