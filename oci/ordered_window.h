// A bounded in-order window: many producers fill numbered items in any
// order, one consumer takes them back in order.
//
// This is the reorder buffer every parallel stage of the data plane needs:
// ranged reads of a blob finish out of order but the upload must see the
// bytes in order; compressed shards finish out of order but the layer must be
// framed in order. The window is a plain data structure (it owns no thread):
// producers Claim() the next index, fill it on whatever thread they run, and
// Put() it; the consumer Take()s index 0, 1, 2, ...
//
// Back-pressure: a producer may claim index i only while i < next + capacity,
// where `next` is the index the consumer takes next. So at most `capacity`
// items are claimed and not yet taken (being filled or waiting), however far
// ahead the fast producers are, and the item the consumer waits for is always
// claimed or claimable: no deadlock as long as every claimed index is
// eventually Put or the window failed.
//
// Failure: the first Fail() wins; every waiter (Claim, Take) wakes and gets
// it, later Put()s drop their item (destroying it: pooled buffers go home).
// Cancellation: an optional process-wide flag (engine/cancel.h's, which a
// signal handler sets and so cannot notify us) is polled while waiting; once
// set, the window fails with kCancelled and every stage sees that at once.
//
// Thread guarantee: safe for concurrent use by any number of producers and
// one consumer.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "oci/error.h"

namespace mc::oci {

template <class T>
class OrderedWindow {
 public:
  // `capacity` ≥ 1. `total`: the number of items, when known up front;
  // otherwise the producer that learns it calls SetTotal. `cancel`: polled
  // every `poll` while waiting (may be null).
  explicit OrderedWindow(size_t capacity, std::optional<uint64_t> total = std::nullopt,
                         const std::atomic<bool>* cancel = nullptr,
                         std::chrono::milliseconds poll = std::chrono::milliseconds(50))
      : capacity_(std::max<size_t>(capacity, 1)), total_(total), cancel_(cancel), poll_(poll) {}

  OrderedWindow(const OrderedWindow&) = delete;
  OrderedWindow& operator=(const OrderedWindow&) = delete;

  // Producer: the next index to fill. Blocks while the window is full.
  // nullopt when every item is claimed; the first error once failed.
  Result<std::optional<uint64_t>> Claim() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (error_) return std::unexpected(*error_);
      if (total_ && claimed_ >= *total_) return std::optional<uint64_t>{};
      if (claimed_ < next_ + capacity_) break;
      if (!WaitLocked(lock)) return std::unexpected(*error_);
    }
    uint64_t i = claimed_++;
    high_water_ = std::max<uint64_t>(high_water_, claimed_ - next_);
    return std::optional<uint64_t>{i};
  }

  // Producer: item `i` (claimed, not yet put) is ready. After a failure the
  // item is dropped.
  void Put(uint64_t i, T item) {
    {
      std::lock_guard lock(mu_);
      if (error_ || i < next_ || i >= claimed_) return;  // `item` is destroyed on return
      ready_.emplace(i, std::move(item));
    }
    cv_.notify_all();
  }

  // The number of items, for a producer that learns it late (the tar stream
  // ended): no index ≥ `total` is handed out, and Take() ends after it.
  void SetTotal(uint64_t total) {
    {
      std::lock_guard lock(mu_);
      total_ = total;
    }
    cv_.notify_all();
  }

  // Any stage: stops the window with `e` unless it failed already (the first
  // error wins). Items waiting are destroyed.
  void Fail(Error e) {
    std::map<uint64_t, T> dropped;
    {
      std::lock_guard lock(mu_);
      if (!error_) error_ = std::move(e);
      dropped.swap(ready_);
    }
    cv_.notify_all();
  }
  void Cancel() { Fail(Error{ErrorCode::kCancelled, "interrupted", 0, std::nullopt}); }

  // Consumer: the next item in order; nullopt after the last one; the first
  // error once failed.
  Result<std::optional<T>> Take() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (error_) return std::unexpected(*error_);
      if (total_ && next_ >= *total_) return std::optional<T>{};
      if (auto it = ready_.find(next_); it != ready_.end()) {
        std::optional<T> out(std::move(it->second));
        ready_.erase(it);
        ++next_;
        lock.unlock();
        cv_.notify_all();
        return out;
      }
      if (!WaitLocked(lock)) return std::unexpected(*error_);
    }
  }

  // The failure, if any.
  std::optional<Error> error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  bool failed() const {
    std::lock_guard lock(mu_);
    return error_.has_value();
  }
  size_t capacity() const { return capacity_; }
  // Claimed and not yet taken, now and at most ever (≤ capacity).
  uint64_t outstanding() const {
    std::lock_guard lock(mu_);
    return claimed_ - next_;
  }
  uint64_t high_water() const {
    std::lock_guard lock(mu_);
    return high_water_;
  }

 private:
  // Waits for a change; false once the window failed (cancellation included).
  bool WaitLocked(std::unique_lock<std::mutex>& lock) {
    if (cancel_) {
      cv_.wait_for(lock, poll_);
      if (!error_ && cancel_->load(std::memory_order_relaxed)) {
        error_ = Error{ErrorCode::kCancelled, "interrupted", 0, std::nullopt};
        ready_.clear();
        cv_.notify_all();
      }
    } else {
      cv_.wait(lock);
    }
    return !error_.has_value();
  }

  const size_t capacity_;
  std::optional<uint64_t> total_;  // guarded by mu_
  const std::atomic<bool>* const cancel_;
  const std::chrono::milliseconds poll_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t claimed_ = 0;         // guarded by mu_: indices handed out
  uint64_t next_ = 0;            // guarded by mu_: the index the consumer takes next
  uint64_t high_water_ = 0;      // guarded by mu_
  std::map<uint64_t, T> ready_;  // guarded by mu_
  std::optional<Error> error_;   // guarded by mu_
};

}  // namespace mc::oci
