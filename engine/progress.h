// Progress reporting without printing: engine code updates counters, cmd/
// polls them and renders a bar (TTY) or a line every few seconds (logs).
//
// Thread guarantee: safe for concurrent use; counters are atomics, the task
// list is under a mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mc::engine {

class ProgressTask {
 public:
  ProgressTask(std::string stage, std::string item, uint64_t total)
      : stage_(std::move(stage)), item_(std::move(item)), total_(total) {}
  void Add(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }
  void Set(uint64_t n) { done_.store(n, std::memory_order_relaxed); }
  void SetTotal(uint64_t n) { total_.store(n, std::memory_order_relaxed); }
  void Finish() { finished_.store(true, std::memory_order_release); }

  const std::string& stage() const { return stage_; }
  const std::string& item() const { return item_; }
  uint64_t done() const { return done_.load(std::memory_order_relaxed); }
  uint64_t total() const { return total_.load(std::memory_order_relaxed); }
  bool finished() const { return finished_.load(std::memory_order_acquire); }

 private:
  std::string stage_;
  std::string item_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> total_{0};
  std::atomic<bool> finished_{false};
};

class Progress {
 public:
  // Starts a task ("build", "upload", "download", ...). total 0 = unknown.
  std::shared_ptr<ProgressTask> Start(std::string stage, std::string item, uint64_t total);
  std::vector<std::shared_ptr<ProgressTask>> Snapshot() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<ProgressTask>> tasks_;
};

}  // namespace mc::engine
