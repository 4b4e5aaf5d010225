#include "engine/executor.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

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

// An exception never leaves a worker thread (it would be std::terminate): the
// first one becomes the executor's error and reaches the stage's handler; the
// other tasks still run.
TEST(ExecutorTest, ATaskThatThrowsReachesTheHandlerAndTheOthersRun) {
  std::atomic<int> ran{0};
  std::mutex mu;
  std::vector<std::string> seen;
  Executor e(2, "test", [&](const oci::Error& err) {
    std::lock_guard lock(mu);
    seen.push_back(err.message);
  });
  e.Post([] { throw std::runtime_error("boom"); });
  e.Post([] { throw 42; });  // not a std::exception
  for (int i = 0; i < 10; ++i) e.Post([&] { ++ran; });
  e.Join();
  EXPECT_EQ(ran.load(), 10);
  ASSERT_EQ(seen.size(), 2u);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen[0], "internal error in the test stage: boom");
  EXPECT_EQ(seen[1], "internal error in the test stage: unknown exception");
  ASSERT_TRUE(e.error());
  EXPECT_EQ(e.error()->code, oci::ErrorCode::kInternal);
}

TEST(ExecutorTest, InjectedFaultHitsTheNthTaskOfItsStageOnly) {
  InjectTaskFaultForTesting("mine", 3);
  std::atomic<int> ran{0};
  {
    Executor other(1, "other");
    for (int i = 0; i < 5; ++i) other.Post([&] { ++ran; });
    other.Join();
    EXPECT_FALSE(other.error());
  }
  Executor mine(1, "mine");
  for (int i = 0; i < 5; ++i) mine.Post([&] { ++ran; });
  mine.Join();
  EXPECT_EQ(ran.load(), 9);
  ASSERT_TRUE(mine.error());
  EXPECT_EQ(mine.error()->message, "internal error in the mine stage: injected fault");
  // Fired once: disarmed afterwards.
  Executor again(1, "mine");
  again.Post([&] { ++ran; });
  again.Join();
  EXPECT_FALSE(again.error());
  InjectTaskFaultForTesting("mine", 0);
}

// A background stage's threads run at a lower priority (their own nice
// value only); a normal stage's threads and the caller keep theirs.
TEST(ExecutorTest, BackgroundWorkersRunNicerThanTheRest) {
  auto nice_of_this_thread = [] {
    errno = 0;
    return ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  };
  const int caller = nice_of_this_thread();
  std::mutex mu;
  std::vector<int> background, normal;
  {
    Executor bg(2, "compress", {}, WorkerPriority::kBackground);
    Executor fg(2, "layer writer");
    for (int i = 0; i < 8; ++i) {
      bg.Post([&] {
        int n = nice_of_this_thread();
        std::lock_guard lock(mu);
        background.push_back(n);
      });
      fg.Post([&] {
        int n = nice_of_this_thread();
        std::lock_guard lock(mu);
        normal.push_back(n);
      });
    }
  }
  ASSERT_EQ(background.size(), 8u);
  ASSERT_EQ(normal.size(), 8u);
  for (int n : background) EXPECT_EQ(n, std::min(caller + kBackgroundNice, 19));
  for (int n : normal) EXPECT_EQ(n, caller);
  EXPECT_EQ(nice_of_this_thread(), caller);
}

TEST(ExecutorTest, DefaultJobs) {
  EXPECT_EQ(DefaultJobs(5), 5);
  EXPECT_GE(DefaultJobs(0), 1);
  EXPECT_EQ(Executor(0).threads(), 1);
}

}  // namespace
}  // namespace mc::engine
