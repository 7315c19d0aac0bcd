#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>

#include "bitnet/base/page_buffer.h"

namespace bitnet {
namespace {

constexpr size_t kHuge = size_t(2) << 20;

// The process's mapped address space in kB (VmSize in /proc/self/status), or -1 where there is none.
long vm_size_kb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == "VmSize:") {
      in >> value;
      return value;
    }
    std::getline(in, key);
  }
  return -1;
}

TEST(PageBuffer, ZeroFilledWritableAndAlignedForHugePages) {
  for (size_t bytes : {size_t(1), size_t(4095), size_t(4096), kHuge - 1, kHuge, kHuge + 1, 5 * kHuge + 123}) {
    SCOPED_TRACE(bytes);
    PageBuffer b(bytes);
    ASSERT_NE(b.data(), nullptr);
    EXPECT_EQ(b.size(), bytes);
    const auto addr = reinterpret_cast<uintptr_t>(b.data());
    EXPECT_EQ(addr % 4096, 0u);
    if (bytes >= kHuge) {
      EXPECT_EQ(addr % kHuge, 0u) << "a large buffer must start on a 2 MiB boundary";
    }
    for (size_t i = 0; i < bytes; i += 4093) EXPECT_EQ(b.data()[i], 0);
    EXPECT_EQ(b.data()[bytes - 1], 0);
    b.data()[0] = 1;
    b.data()[bytes - 1] = 2;  // every byte asked for is mapped
    EXPECT_EQ(b.data()[bytes - 1], 2);
  }
}

TEST(PageBuffer, AlignmentLeavesNothingMappedBehind) {
  // Each large buffer maps 2 MiB more than it keeps; what it trims and what it keeps must all go again.
  const long before = vm_size_kb();
  if (before < 0) GTEST_SKIP() << "no /proc/self/status VmSize here";
  for (int i = 0; i < 200; ++i) {
    PageBuffer b(5 * kHuge + 4097);
    b.data()[b.size() - 1] = 1;
  }
  EXPECT_LE(vm_size_kb(), before + 1024) << "200 buffers of 10 MiB left address space mapped";
}

TEST(PageBuffer, MovesOwnership) {
  PageBuffer a(3 * kHuge);
  uint8_t* p = a.data();
  p[0] = 7;
  PageBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), p);
  PageBuffer c(4096);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), 3 * kHuge);
  EXPECT_EQ(c.data()[0], 7);
}

}  // namespace
}  // namespace bitnet
