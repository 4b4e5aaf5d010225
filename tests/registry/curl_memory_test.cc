// libcurl's allocator: large blocks are kept and reused, small ones are not,
// the cache stays bounded, and realloc/calloc/strdup keep their contracts.
#include "registry/curl_memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace mc::registry::internal {
namespace {

TEST(CurlMemoryTest, AFreedLargeBlockIsReusedForTheSameSize) {
  const size_t before = GetCurlMemoryStats().reused;
  void* p = CurlMalloc(2 << 20);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xab, 2 << 20);
  CurlFree(p);
  EXPECT_GE(GetCurlMemoryStats().kept_bytes, size_t{2} << 20);
  void* other = CurlMalloc((2 << 20) + 1);  // another size: not that block
  EXPECT_NE(other, p);
  void* q = CurlMalloc(2 << 20);
  EXPECT_EQ(q, p);
  EXPECT_EQ(GetCurlMemoryStats().reused, before + 1);
  CurlFree(q);
  CurlFree(other);
}

TEST(CurlMemoryTest, SmallBlocksAreNotKept) {
  const size_t kept = GetCurlMemoryStats().kept_bytes;
  void* p = CurlMalloc(kRecycleMin - 1);
  ASSERT_NE(p, nullptr);
  CurlFree(p);
  EXPECT_EQ(GetCurlMemoryStats().kept_bytes, kept);
  CurlFree(nullptr);
}

TEST(CurlMemoryTest, TheCacheIsBounded) {
  const size_t kept = GetCurlMemoryStats().kept_bytes;
  std::vector<void*> blocks;
  for (size_t i = 0; i < kMaxPerSize + 3; ++i) blocks.push_back(CurlMalloc(1 << 20));
  for (void* p : blocks) CurlFree(p);
  EXPECT_LE(GetCurlMemoryStats().kept_bytes, kept + kMaxPerSize * (size_t{1} << 20));
  blocks.clear();
  for (size_t i = 0; i < 2 * kMaxKeptBytes / (3 << 20); ++i) {
    blocks.push_back(CurlMalloc((3 << 20) + i * 4096));  // all different sizes
  }
  for (void* p : blocks) CurlFree(p);
  EXPECT_LE(GetCurlMemoryStats().kept_bytes, kMaxKeptBytes);
}

TEST(CurlMemoryTest, ReallocKeepsTheBytesAcrossSmallAndLargeBlocks) {
  char* p = static_cast<char*>(CurlMalloc(100));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 100; ++i) p[i] = static_cast<char>(i);
  p = static_cast<char*>(CurlRealloc(p, 1000));  // small → small
  ASSERT_NE(p, nullptr);
  p = static_cast<char*>(CurlRealloc(p, 3 << 20));  // small → large
  ASSERT_NE(p, nullptr);
  p[(3 << 20) - 1] = 'z';
  p = static_cast<char*>(CurlRealloc(p, 50));  // large → small
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(p[i], static_cast<char>(i));
  CurlFree(p);
  void* fresh = CurlRealloc(nullptr, 10);
  EXPECT_NE(fresh, nullptr);
  CurlFree(fresh);
}

TEST(CurlMemoryTest, CallocZeroesEvenWhereALargeBlockWasKeptAndStrdupCopies) {
  void* p = CurlMalloc(kRecycleMin * 2);
  std::memset(p, 0xff, kRecycleMin * 2);
  CurlFree(p);
  auto* z = static_cast<unsigned char*>(CurlCalloc(2, kRecycleMin));
  ASSERT_NE(z, nullptr);
  for (size_t i = 0; i < kRecycleMin * 2; ++i) ASSERT_EQ(z[i], 0) << i;
  CurlFree(z);
  EXPECT_EQ(CurlCalloc(SIZE_MAX / 2, 3), nullptr);  // overflow
  char* s = CurlStrdup("registry.example:5000");
  ASSERT_NE(s, nullptr);
  EXPECT_STREQ(s, "registry.example:5000");
  CurlFree(s);
}

}  // namespace
}  // namespace mc::registry::internal
