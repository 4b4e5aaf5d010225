// Worker threads of the data plane, on Boost.Asio.
//
// Every parallel stage (compress workers, ranged-read workers, the blob and
// manifest walks of copy) runs its tasks on an Executor: a
// boost::asio::thread_pool of a fixed number of threads that the stage owns
// for its lifetime. Stages coordinate through an oci::OrderedWindow and a
// BufferPool, never through the executor, so a task never waits for another
// task of the same executor to start (no nested-wait deadlock).
//
// DefaultJobs is the one place that turns "0 = automatic" into a thread count.
//
// Thread guarantee: Post may be called from any thread; Join from one.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <functional>
#include <utility>

namespace mc::engine {

// `jobs` > 0 as given; otherwise the number of CPUs (2 when unknown).
int DefaultJobs(int jobs);

class Executor {
 public:
  explicit Executor(int threads);
  // Waits for every posted task.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  template <class Fn>
  void Post(Fn&& fn) {
    boost::asio::post(pool_, std::forward<Fn>(fn));
  }
  // Waits until every posted task has run; no task may be posted afterwards.
  void Join();
  int threads() const { return threads_; }

 private:
  int threads_;
  boost::asio::thread_pool pool_;
  bool joined_ = false;
};

}  // namespace mc::engine
