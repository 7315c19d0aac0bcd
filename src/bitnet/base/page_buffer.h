// A large buffer of anonymous memory from mmap: page-aligned, zero-filled, and marked for transparent huge
// pages where the kernel offers them (fewer TLB misses when a kernel streams through gigabytes of weights).
// A buffer of 2 MiB or more starts on a 2 MiB boundary: the kernel backs only aligned 2 MiB ranges with a
// huge page, so a buffer that merely starts on a page boundary loses its first and last partial 2 MiB.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitnet {

class PageBuffer {
 public:
  PageBuffer() = default;
  explicit PageBuffer(size_t bytes);  // throws Error when the memory cannot be had
  ~PageBuffer();
  PageBuffer(PageBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  PageBuffer& operator=(PageBuffer&& o) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace bitnet
