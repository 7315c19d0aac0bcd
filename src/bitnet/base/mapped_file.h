// Read-only memory map of a whole file. Files larger than memory are paged in by the kernel, never read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bitnet {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error naming the path and errno text
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Tells the kernel this process no longer needs the pages of [p, p + n) (a range inside the map):
  // they leave the resident set and are read again from the page cache if touched later. Used after a
  // tensor has been repacked into memory of its own, so the file's copy does not count twice.
  void release(const uint8_t* p, size_t n) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace bitnet
