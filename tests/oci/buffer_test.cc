#include "oci/buffer.h"

#include <gtest/gtest.h>

#include "oci/io.h"

#include <thread>
#include <vector>

namespace mc::oci {
namespace {

TEST(BufferPoolTest, ReusesTheSameStorage) {
  BufferPool pool(1024, 2);
  std::byte* first;
  {
    auto b = pool.Acquire();
    ASSERT_TRUE(b);
    first = b->data();
    EXPECT_EQ(b->capacity(), 1024u);
    EXPECT_EQ(b->size(), 0u);
  }
  auto again = pool.Acquire();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->data(), first);
  EXPECT_EQ(pool.allocated(), 1u);
}

TEST(BufferPoolTest, NeverHandsOutMoreThanCount) {
  BufferPool pool(64, 2);
  auto a = pool.TryAcquire();
  auto b = pool.TryAcquire();
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
  EXPECT_FALSE(pool.TryAcquire());
  EXPECT_EQ(pool.in_use(), 2u);
  a.Release();
  EXPECT_EQ(pool.in_use(), 1u);
  EXPECT_TRUE(pool.TryAcquire());
  EXPECT_EQ(pool.high_water(), 2u);
}

TEST(BufferPoolTest, AcquireWaitsForARelease) {
  BufferPool pool(64, 1);
  auto held = pool.Acquire();
  ASSERT_TRUE(held);
  std::thread releaser([&] { held->Release(); });
  auto got = pool.Acquire();  // blocks until the other thread releases
  releaser.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(pool.allocated(), 1u);
}

TEST(BufferPoolTest, ShutdownWakesWaiters) {
  BufferPool pool(64, 1);
  auto held = pool.Acquire();
  ASSERT_TRUE(held);
  Result<Buffer> waited = Fail(ErrorCode::kInternal, "not run");
  std::thread waiter([&] { waited = pool.Acquire(); });
  pool.Shutdown();
  waiter.join();
  ASSERT_FALSE(waited);
  EXPECT_EQ(waited.error().code, ErrorCode::kCancelled);
}

TEST(BufferPoolTest, BufferMayOutliveThePool) {
  Buffer b;
  {
    BufferPool pool(16, 1);
    auto got = pool.Acquire();
    ASSERT_TRUE(got);
    b = std::move(*got);
  }
  EXPECT_EQ(b.Append(AsBytes("hello")), 5u);
  EXPECT_EQ(b.view(), "hello");
  b.Release();  // ASan: no use after free, no leak
  EXPECT_FALSE(b);
}

TEST(BufferTest, AppendStopsAtCapacityAndFreeSpaceFollowsSize) {
  Buffer b = Buffer::Heap(8);
  EXPECT_EQ(b.Append(AsBytes("0123456789")), 8u);
  EXPECT_TRUE(b.full());
  EXPECT_EQ(b.view(), "01234567");
  b.Resize(3);
  EXPECT_EQ(b.free_space().size(), 5u);
  b.free_space()[0] = std::byte{'x'};
  b.Commit(1);
  EXPECT_EQ(b.view(), "012x");
  Buffer moved = std::move(b);
  EXPECT_FALSE(b);
  EXPECT_EQ(moved.view(), "012x");
}

}  // namespace
}  // namespace mc::oci
