// Atomic output: bytes go to a temporary file beside the target, which is renamed over the target only
// by commit(). If the writer is destroyed without commit() (error, exception), the temporary is removed
// and the target is untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bitnet {

class AtomicFile {
 public:
  explicit AtomicFile(std::string target);  // creates "<target>.tmp.XXXXXX"
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write_zeros(size_t n);
  uint64_t offset() const { return offset_; }
  void commit();  // flush, fsync, rename over the target

  const std::string& temp_path() const { return temp_; }

 private:
  void flush();
  std::string target_, temp_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::string buf_;  // write buffer, flushed at 4 MiB
};

}  // namespace bitnet
