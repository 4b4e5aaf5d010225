// Worker threads of the data plane, on Boost.Asio.
//
// Every parallel stage (compress workers, ranged-read workers, the blob and
// manifest walks of copy) runs its tasks on an Executor: a
// boost::asio::thread_pool of a fixed number of threads that the stage owns
// for its lifetime. Stages coordinate through an oci::OrderedWindow and a
// BufferPool, never through the executor, so a task never waits for another
// task of the same executor to start (no nested-wait deadlock).
//
// No exception leaves a task: one escaping a worker thread would be
// std::terminate. The executor catches it, turns it into a kInternal error
// naming the stage ("internal error in the compress stage: …") and hands it
// to the stage's failure handler, which must stop the stage's other tasks and
// wake whoever waits for them (usually: fail the stage's window) so the error
// reaches the caller like any other. error() keeps the first one.
//
// DefaultJobs is the one place that turns "0 = automatic" into a thread count.
//
// Priority: a stage of pure CPU work that others wait on only through a
// window (the compress workers) runs at WorkerPriority::kBackground, nice
// +kBackgroundNice for its own threads only (setpriority on the thread id,
// Linux). The threads that move bytes — the tar reader, the layer writer,
// the upload sender, libcurl — keep the normal priority, and so does a
// registry or proxy on the same machine that those bytes go to: measured on
// 2 cores against a loopback registry, three runnable compress/registry
// threads on two cores starved the registry's one upload goroutine to 2/3 of
// a core and left 20% of the machine idle (dataplane_bench.sh, push). Lowering a
// thread's priority needs no privilege; in a container the pod's cgroup
// weight, not nice, decides against other pods, so this only orders our own
// threads and the processes that share our cgroup.
//
// Thread guarantee: Post may be called from any thread; Join from one.
#pragma once

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "oci/error.h"

namespace mc::engine {

// `jobs` > 0 as given; otherwise the number of CPUs (2 when unknown).
int DefaultJobs(int jobs);

// Called from the worker whose task threw, with the kInternal error.
using TaskFailureHandler = std::function<void(const oci::Error&)>;

enum class WorkerPriority { kNormal, kBackground };
// The nice increment of kBackground threads (weight 1024 → 335: a normal
// thread gets 3/4 of a core it shares with one of ours).
inline constexpr int kBackgroundNice = 5;

class Executor {
 public:
  // `stage` names the stage in errors (and for InjectTaskFaultForTesting).
  explicit Executor(int threads, std::string stage = "worker", TaskFailureHandler on_failure = {},
                    WorkerPriority priority = WorkerPriority::kNormal);
  // Waits for every posted task.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  template <class Fn>
  void Post(Fn&& fn) {
    boost::asio::post(pool_, [this, fn = std::forward<Fn>(fn)]() mutable {
      try {
        BeforeTask();
        fn();
      } catch (...) {
        Failed(std::current_exception());
      }
    });
  }
  // Waits until every posted task has run; no task may be posted afterwards.
  void Join();
  int threads() const { return threads_; }
  const std::string& stage() const { return stage_; }
  // The first task failure (a task that threw), if any.
  std::optional<oci::Error> error() const;

 private:
  void BeforeTask();
  void Failed(std::exception_ptr e);

  int threads_;
  std::string stage_;
  WorkerPriority priority_;
  TaskFailureHandler on_failure_;
  mutable std::mutex mu_;
  std::optional<oci::Error> error_;  // guarded by mu_
  bool joined_ = false;
  boost::asio::thread_pool pool_;  // last: its threads use everything above
};

// Test seam: the `nth` task (1-based) that starts on any executor of `stage`
// from now on throws std::runtime_error("injected fault") before it runs.
// nth = 0 disarms. Costs one relaxed atomic load per task when disarmed.
void InjectTaskFaultForTesting(std::string_view stage, int nth);

}  // namespace mc::engine
