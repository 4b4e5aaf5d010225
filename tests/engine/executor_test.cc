#include "engine/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>

namespace mc::engine {
namespace {

TEST(ExecutorTest, JoinWaitsForEveryTaskAndRunsMoveOnlyTasks) {
  std::atomic<int> sum{0};
  {
    Executor e(3);
    EXPECT_EQ(e.threads(), 3);
    for (int i = 1; i <= 100; ++i) {
      auto p = std::make_unique<int>(i);  // tasks own move-only state (pooled buffers)
      e.Post([&sum, p = std::move(p)] { sum += *p; });
    }
    e.Join();
    EXPECT_EQ(sum.load(), 5050);
    e.Join();  // again: nothing to wait for
  }
  EXPECT_EQ(sum.load(), 5050);
}

TEST(ExecutorTest, DefaultJobs) {
  EXPECT_EQ(DefaultJobs(5), 5);
  EXPECT_GE(DefaultJobs(0), 1);
  EXPECT_EQ(Executor(0).threads(), 1);
}

}  // namespace
}  // namespace mc::engine
