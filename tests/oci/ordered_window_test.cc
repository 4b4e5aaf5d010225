#include "oci/ordered_window.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "oci/buffer.h"

namespace mc::oci {
namespace {

// A fake scheduler drives the window from one thread: at every step it picks
// at random whether to claim, to complete one of the claimed items (any of
// them, in random order) or to take. Deterministic (fixed seeds), so a
// failure replays exactly.
TEST(OrderedWindowTest, TakesInOrderUnderRandomCompletion) {
  for (uint32_t seed = 1; seed <= 50; ++seed) {
    std::mt19937 rng(seed);
    const uint64_t total = 200;
    const size_t capacity = 1 + seed % 7;
    OrderedWindow<uint64_t> w(capacity, total);
    std::vector<uint64_t> claimed;  // claimed, not yet put
    uint64_t taken = 0, next_claim = 0;
    while (taken < total) {
      switch (rng() % 3) {
        case 0:
          // Claim only when it would not block (the window has room).
          if (next_claim < total && w.outstanding() < capacity) {
            auto c = w.Claim();
            ASSERT_TRUE(c && *c);
            EXPECT_EQ(**c, next_claim++);
            claimed.push_back(**c);
          }
          break;
        case 1:
          if (!claimed.empty()) {
            size_t k = rng() % claimed.size();
            w.Put(claimed[k], claimed[k] * 10);
            claimed.erase(claimed.begin() + static_cast<std::ptrdiff_t>(k));
          }
          break;
        default: {
          // Take only when the next item is put (else Take would block).
          bool ready = taken < next_claim &&
                       std::find(claimed.begin(), claimed.end(), taken) == claimed.end();
          if (ready) {
            auto t = w.Take();
            ASSERT_TRUE(t && *t);
            EXPECT_EQ(**t, taken * 10);
            ++taken;
          }
        }
      }
      ASSERT_LE(w.outstanding(), capacity);
    }
    auto end = w.Take();
    ASSERT_TRUE(end);
    EXPECT_FALSE(*end);
    auto none = w.Claim();
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    EXPECT_LE(w.high_water(), capacity);
  }
}

TEST(OrderedWindowTest, ClaimBlocksWhileTheWindowIsFull) {
  OrderedWindow<int> w(2, 10);
  ASSERT_EQ(**w.Claim(), 0u);
  ASSERT_EQ(**w.Claim(), 1u);
  std::atomic<bool> got{false};
  std::thread producer([&] {
    auto c = w.Claim();  // blocks until item 0 is taken
    got = c && *c && **c == 2;
  });
  w.Put(1, 1);
  // Item 1 put, 0 not taken: still full. Nothing the producer can do.
  EXPECT_EQ(w.outstanding(), 2u);
  w.Put(0, 0);
  EXPECT_EQ(**w.Take(), 0);
  producer.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(w.high_water(), 2u);
}

TEST(OrderedWindowTest, FirstErrorWinsAndReachesEveryWaiter) {
  OrderedWindow<int> w(1);
  ASSERT_TRUE(w.Claim());
  std::optional<Error> producer_saw, consumer_saw;
  std::thread producer([&] {
    auto c = w.Claim();  // window full: waits
    if (!c) producer_saw = c.error();
  });
  std::thread consumer([&] {
    auto t = w.Take();  // item 0 never arrives
    if (!t) consumer_saw = t.error();
  });
  w.Fail(Error{ErrorCode::kNetwork, "first", 0, std::nullopt});
  w.Fail(Error{ErrorCode::kInternal, "second", 0, std::nullopt});
  producer.join();
  consumer.join();
  ASSERT_TRUE(producer_saw && consumer_saw);
  EXPECT_EQ(producer_saw->message, "first");
  EXPECT_EQ(consumer_saw->message, "first");
  EXPECT_EQ(w.error()->code, ErrorCode::kNetwork);
}

TEST(OrderedWindowTest, ItemsAfterAFailureGoBackToThePool) {
  BufferPool pool(16, 3);
  {
    OrderedWindow<Buffer> w(3, 3);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.Claim());
    w.Put(1, *pool.Acquire());
    w.Put(2, *pool.Acquire());
    EXPECT_EQ(pool.in_use(), 2u);
    w.Fail(Error{ErrorCode::kTransient, "broken", 0, std::nullopt});
    EXPECT_EQ(pool.in_use(), 0u);  // the waiting items were dropped
    w.Put(0, *pool.Acquire());     // a late producer: dropped too
    EXPECT_EQ(pool.in_use(), 0u);
    EXPECT_FALSE(w.Take());
  }
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(OrderedWindowTest, CancelFlagWakesBlockedStages) {
  std::atomic<bool> flag{false};
  OrderedWindow<int> w(1, std::nullopt, &flag, std::chrono::milliseconds(1));
  ASSERT_TRUE(w.Claim());
  std::optional<Error> producer_saw, consumer_saw;
  std::thread producer([&] {
    auto c = w.Claim();
    if (!c) producer_saw = c.error();
  });
  std::thread consumer([&] {
    auto t = w.Take();
    if (!t) consumer_saw = t.error();
  });
  flag = true;  // as the SIGINT handler does: no notification
  producer.join();
  consumer.join();
  ASSERT_TRUE(producer_saw && consumer_saw);
  EXPECT_EQ(producer_saw->code, ErrorCode::kCancelled);
  EXPECT_EQ(consumer_saw->code, ErrorCode::kCancelled);
}

TEST(OrderedWindowTest, SetTotalEndsAStreamOfUnknownLength) {
  OrderedWindow<int> w(4);
  for (int i = 0; i < 3; ++i) {
    auto c = w.Claim();
    ASSERT_TRUE(c && *c);
    w.Put(**c, i);
  }
  w.SetTotal(3);
  EXPECT_FALSE(*w.Claim());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(**w.Take(), i);
  EXPECT_FALSE(*w.Take());
}

// Threads, a pool and the window together, the way copy and build use them:
// producers acquire a buffer, fill it with their index and put it; the
// consumer checks the order. A pool of capacity + 1 buffers (the window plus
// the one the consumer holds) is enough: it never deadlocks, never exceeds
// its count and ends with every buffer home.
TEST(OrderedWindowTest, PoolOfWindowPlusOneDoesNotDeadlock) {
  const size_t capacity = 3;
  const uint64_t total = 500;
  BufferPool pool(sizeof(uint64_t), capacity + 1);
  OrderedWindow<Buffer> w(capacity, total);
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(static_cast<uint32_t>(p));
      for (;;) {
        auto c = w.Claim();
        if (!c || !*c) return;
        auto b = pool.Acquire();
        if (!b) return w.Fail(b.error());
        uint64_t i = **c;
        b->Append(std::as_bytes(std::span(&i, 1)));
        if (rng() % 4 == 0) std::this_thread::yield();
        w.Put(i, std::move(*b));
      }
    });
  }
  for (uint64_t i = 0; i < total; ++i) {
    auto t = w.Take();
    ASSERT_TRUE(t && *t);
    uint64_t got;
    std::memcpy(&got, (*t)->data(), sizeof got);
    ASSERT_EQ(got, i);
    ASSERT_LE(pool.in_use(), capacity + 1);
  }
  EXPECT_FALSE(*w.Take());
  for (auto& t : producers) t.join();
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_LE(pool.high_water(), capacity + 1);
}

}  // namespace
}  // namespace mc::oci
