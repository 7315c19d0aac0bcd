#include <gtest/gtest.h>

#include "bitnet/base/atomic_file.h"
#include "bitnet/base/error.h"
#include "test_util.h"

namespace bitnet {
namespace {

TEST(AtomicFile, CommitReplacesTarget) {
  testing::ScratchDir dir;
  const auto target = dir / "out.bin";
  testing::write_bytes(target, {1, 2, 3});
  {
    AtomicFile f(target.string());
    f.write("abcd", 4);
    f.write_zeros(3);
    EXPECT_EQ(f.offset(), 7u);
    // Before commit the old content is intact.
    EXPECT_EQ(testing::read_bytes(target), (std::vector<uint8_t>{1, 2, 3}));
    f.commit();
  }
  EXPECT_EQ(testing::read_bytes(target), (std::vector<uint8_t>{'a', 'b', 'c', 'd', 0, 0, 0}));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(AtomicFile, AbandonedWriteLeavesNothing) {
  testing::ScratchDir dir;
  const auto target = dir / "out.bin";
  {
    AtomicFile f(target.string());
    f.write("abcd", 4);
  }
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);
}

TEST(AtomicFile, UnwritableDirectoryIsAnError) {
  EXPECT_THROW(AtomicFile("/nonexistent-dir/x.gguf"), Error);
}

}  // namespace
}  // namespace bitnet
