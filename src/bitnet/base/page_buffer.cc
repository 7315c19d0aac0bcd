#include "bitnet/base/page_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "bitnet/base/error.h"

namespace bitnet {

PageBuffer::PageBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  // Large buffers: map 2 MiB more than asked, then unmap the unaligned head and the tail beyond the pages used.
  const size_t extra = bytes >= kHuge && page < kHuge ? kHuge : 0;
  if (bytes > SIZE_MAX - extra - page) fail("cannot allocate {} bytes: too large", bytes);
  void* p = ::mmap(nullptr, bytes + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("cannot allocate {} bytes: {}", bytes, std::strerror(errno));
  uint8_t* base = static_cast<uint8_t*>(p);
  if (extra) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(base);
    uint8_t* aligned = base + ((kHuge - a % kHuge) % kHuge);
    const size_t used = (bytes + page - 1) / page * page;  // whole pages from `aligned`
    if (aligned > base) ::munmap(base, size_t(aligned - base));
    if (base + bytes + extra > aligned + used) ::munmap(aligned + used, size_t(base + bytes + extra - (aligned + used)));
    base = aligned;
  }
#ifdef MADV_HUGEPAGE
  if (bytes >= kHuge) ::madvise(base, bytes, MADV_HUGEPAGE);  // advice only; failure is harmless
#endif
  data_ = base;
}

PageBuffer::~PageBuffer() {
  if (data_) ::munmap(data_, size_);
}

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(data_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

}  // namespace bitnet
