// Helpers shared by the fuzz targets: turn the fuzzer's bytes into structured values.
//
// Every target defines `extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t)` (and, when it
// loads data once, LLVMFuzzerInitialize). The same source links either with libFuzzer (the `fuzz`
// preset) or with replay_main.cc, which feeds it the checked-in corpus and regression inputs as an
// ordinary ctest in every build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bitnet::fuzz {

// Reads from the front of the input; every read past the end yields zeros / empty, never fails, so a
// target consumes whatever structure it needs and the rest of the bytes stay meaningful.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}

  size_t remaining() const { return n_ - pos_; }
  bool empty() const { return pos_ >= n_; }

  uint8_t u8() { return pos_ < n_ ? p_[pos_++] : 0; }
  // Sequenced reads (the operands of | are not), so gcc and clang builds consume bytes alike.
  uint16_t u16() {
    const uint16_t lo = u8();
    return static_cast<uint16_t>(lo | (u8() << 8));
  }
  uint32_t u32() {
    const uint32_t lo = u16();
    return lo | (static_cast<uint32_t>(u16()) << 16);
  }
  bool flag() { return (u8() & 1) != 0; }
  // Value in [0, n) for n > 0 (one byte when n <= 256).
  uint32_t below(uint32_t n) { return n <= 256 ? u8() % n : u32() % n; }

  // Bytes up to the next `sep` (consumed, not included) or the end.
  std::string_view until(char sep) {
    const size_t start = pos_;
    const void* hit = std::memchr(p_ + pos_, sep, n_ - pos_);
    const size_t end = hit ? static_cast<size_t>(static_cast<const uint8_t*>(hit) - p_) : n_;
    pos_ = hit ? end + 1 : n_;
    return view(start, end - start);
  }
  // A length-prefixed string of at most `max` bytes.
  std::string_view bytes(size_t max) {
    size_t len = u8();
    if (len > max) len = max;
    if (len > remaining()) len = remaining();
    const size_t start = pos_;
    pos_ += len;
    return view(start, len);
  }
  std::string_view rest() {
    const size_t start = pos_;
    pos_ = n_;
    return view(start, n_ - start);
  }

 private:
  std::string_view view(size_t start, size_t len) const {
    return std::string_view(reinterpret_cast<const char*>(p_) + start, len);
  }
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace bitnet::fuzz
