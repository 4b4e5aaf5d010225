// Executor (executor.h).
//
// A thin owner of boost::asio::thread_pool: the pool's threads start in its
// constructor and stop after join(), so an Executor that lives for one blob or
// one layer costs a few thread starts, nothing per task. We keep the wrapper
// so that thread counts are decided in one place, so that destruction always
// waits for the tasks, which reference stack objects of their stage, and so
// that no exception ever leaves a worker thread.
#include "engine/executor.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <thread>

namespace mc::engine {
namespace {

std::atomic<bool> fault_armed{false};
std::mutex fault_mu;
std::string fault_stage;  // guarded by fault_mu
int fault_countdown = 0;  // guarded by fault_mu

// Lowers the calling thread's priority once (an executor's threads are its
// own for their whole life). Best effort: a refusal (a seccomp profile, an
// RLIMIT_NICE) leaves the thread as it was.
void LowerThreadPriorityOnce() {
  thread_local bool lowered = false;
  if (lowered) return;
  lowered = true;
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  int nice = ::getpriority(PRIO_PROCESS, tid);
  if (nice == -1 && errno != 0) return;
  (void)::setpriority(PRIO_PROCESS, tid, std::min(nice + kBackgroundNice, 19));
}

}  // namespace

int DefaultJobs(int jobs) {
  if (jobs > 0) return jobs;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 2 : static_cast<int>(n);
}

Executor::Executor(int threads, std::string stage, TaskFailureHandler on_failure,
                   WorkerPriority priority)
    : threads_(std::max(threads, 1)),
      stage_(std::move(stage)),
      priority_(priority),
      on_failure_(std::move(on_failure)),
      pool_(static_cast<size_t>(threads_)) {}

Executor::~Executor() { Join(); }

void Executor::Join() {
  if (joined_) return;
  joined_ = true;
  pool_.join();
}

std::optional<oci::Error> Executor::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

void Executor::BeforeTask() {
  if (priority_ == WorkerPriority::kBackground) LowerThreadPriorityOnce();
  if (!fault_armed.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(fault_mu);
  if (fault_countdown <= 0 || fault_stage != stage_) return;
  if (--fault_countdown > 0) return;
  fault_armed = false;
  throw std::runtime_error("injected fault");
}

void Executor::Failed(std::exception_ptr e) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(std::move(e));
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  oci::Error err{
      oci::ErrorCode::kInternal, "internal error in the " + stage_ + " stage: " + what, 0, {}};
  {
    std::lock_guard lock(mu_);
    if (!error_) error_ = err;
  }
  if (!on_failure_) return;
  try {
    on_failure_(err);
  } catch (...) {  // a handler that throws must not end the process either
  }
}

void InjectTaskFaultForTesting(std::string_view stage, int nth) {
  std::lock_guard lock(fault_mu);
  fault_stage = std::string(stage);
  fault_countdown = nth;
  fault_armed = nth > 0;
}

}  // namespace mc::engine
