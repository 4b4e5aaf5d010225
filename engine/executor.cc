// Executor (executor.h).
//
// A thin owner of boost::asio::thread_pool: the pool's threads start in its
// constructor and stop after join(), so an Executor that lives for one blob or
// one layer costs a few thread starts, nothing per task. We keep the wrapper
// so that thread counts are decided in one place and so that destruction
// always waits for the tasks, which reference stack objects of their stage.
#include "engine/executor.h"

#include <algorithm>
#include <thread>

namespace mc::engine {

int DefaultJobs(int jobs) {
  if (jobs > 0) return jobs;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 2 : static_cast<int>(n);
}

Executor::Executor(int threads)
    : threads_(std::max(threads, 1)), pool_(static_cast<size_t>(threads_)) {}

Executor::~Executor() { Join(); }

void Executor::Join() {
  if (joined_) return;
  joined_ = true;
  pool_.join();
}

}  // namespace mc::engine
