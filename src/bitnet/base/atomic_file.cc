#include "bitnet/base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bitnet/base/error.h"

namespace bitnet {

namespace {
constexpr size_t kBufferBytes = 4u << 20;
}

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  std::vector<char> tmpl(target_.begin(), target_.end());
  const char suffix[] = ".tmp.XXXXXX";
  tmpl.insert(tmpl.end(), suffix, suffix + sizeof(suffix));  // includes the NUL
  fd_ = ::mkstemp(tmpl.data());
  if (fd_ < 0) fail("{}: cannot create temporary output file: {}", target_, std::strerror(errno));
  temp_ = tmpl.data();
  ::fchmod(fd_, 0644);
  buf_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

namespace {
void write_all(int fd, const char* p, size_t n, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", path, std::strerror(errno));
    }
    done += static_cast<size_t>(w);
  }
}
}  // namespace

void AtomicFile::flush() {
  write_all(fd_, buf_.data(), buf_.size(), temp_);
  buf_.clear();
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  offset_ += n;
  if (buf_.size() + n > kBufferBytes) {
    flush();
    if (n >= kBufferBytes) {  // large blocks go straight from the caller's memory
      write_all(fd_, p, n, temp_);
      return;
    }
  }
  buf_.append(p, n);
}

void AtomicFile::write_zeros(size_t n) {
  static const char zeros[64] = {};
  while (n > 0) {
    size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
    write(zeros, k);
    n -= k;
  }
}

void AtomicFile::commit() {
  flush();
  if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", temp_, std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(temp_.c_str());
    fail("{}: close failed: {}", temp_, std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    int e = errno;
    ::unlink(temp_.c_str());
    fail("{}: cannot rename temporary file into place: {}", target_, std::strerror(e));
  }
}

}  // namespace bitnet
