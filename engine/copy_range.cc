// Reading one large blob over several connections, in order.
//
// Between data centres a single TCP stream is capped by latency (window /
// RTT), and a registry behind object storage often serves one connection far
// slower than several. So a large blob is cut into fixed chunks; `streams`
// worker threads fetch chunks with ranged reads (HTTP Range on a registry,
// pread on a layout) into buffers, and the consumer takes them back in order
// — a reorder buffer in front of the sequential upload, which must see the
// bytes in order because the destination hashes and appends them.
//
// Memory is bounded by a window: a worker may fetch chunk i only while
// i < next + streams, where `next` is the chunk the consumer waits for; the
// consumer holds one more. Chunks are taken in increasing order, so the chunk
// the consumer needs is always in flight or ready: no deadlock.
//
// A broken range read is resumed from the byte where it broke (a new ranged
// request for the rest of that chunk); the chunk boundaries never depend on
// the number of streams, and the bytes are verified by the caller's
// VerifyingReader, so a resumed read cannot silently change the blob.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/cancel.h"
#include "engine/copy.h"
#include "engine/copy_internal.h"
#include "registry/log.h"

namespace mc::engine {
namespace {

using oci::Bytes;
using oci::Descriptor;
using oci::ErrorCode;
using oci::Reader;
using oci::Result;

class ParallelRangeReader final : public Reader {
 public:
  ParallelRangeReader(oci::ImageSource& src, Descriptor desc, uint64_t chunk, int streams,
                      int retry_times, uint64_t first_index, std::unique_ptr<Reader> first)
      : src_(src),
        desc_(std::move(desc)),
        chunk_(chunk),
        chunks_((static_cast<uint64_t>(desc_.size) + chunk - 1) / chunk),
        window_(static_cast<uint64_t>(streams)),
        retry_times_(retry_times),
        first_index_(first_index),
        first_(std::move(first)) {
    uint64_t n = std::min<uint64_t>(window_, chunks_);
    for (uint64_t i = 0; i < n; ++i) workers_.emplace_back([this] { Work(); });
  }

  ~ParallelRangeReader() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  Result<size_t> Read(std::span<std::byte> out) override {
    while (pos_ >= cur_.size()) {
      if (next_ >= chunks_) return 0;
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return error_.has_value() || ready_.contains(next_); });
      auto it = ready_.find(next_);
      if (it == ready_.end()) return std::unexpected(*error_);
      cur_ = std::move(it->second);
      ready_.erase(it);
      ++next_;
      pos_ = 0;
      lock.unlock();
      cv_.notify_all();
    }
    size_t n = std::min(out.size(), cur_.size() - pos_);
    std::copy_n(cur_.data() + pos_, n, out.data());
    pos_ += n;
    return n;
  }

 private:
  void Work() {
    for (;;) {
      uint64_t i;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock,
                 [&] { return stop_ || error_ || taken_ >= chunks_ || taken_ < next_ + window_; });
        if (stop_ || error_ || taken_ >= chunks_) return;
        i = taken_++;
      }
      auto r = Fetch(i);
      {
        std::lock_guard lock(mu_);
        if (!r) {
          if (!error_) error_ = r.error();
        } else {
          ready_.emplace(i, std::move(*r));
        }
      }
      cv_.notify_all();
      if (!r) return;
    }
  }

  bool Stopping() {
    std::lock_guard lock(mu_);
    return stop_ || error_.has_value();
  }

  Result<Bytes> Fetch(uint64_t i) {
    uint64_t off = i * chunk_;
    uint64_t len = std::min<uint64_t>(chunk_, static_cast<uint64_t>(desc_.size) - off);
    Bytes buf(len);
    uint64_t got = 0;
    int attempts = 0;
    std::unique_ptr<Reader> r = i == first_index_ ? std::move(first_) : nullptr;
    while (got < len) {
      MC_RETURN_IF_ERROR(CheckCancelled());
      if (Stopping()) return oci::Fail(ErrorCode::kCancelled, "stopped");
      oci::Error err;
      if (!r) {
        auto o = src_.OpenBlobRange(desc_, off + got, len - got);
        if (o) {
          r = std::move(*o);
          continue;
        }
        err = o.error();
      } else {
        auto n = r->Read(std::span(buf).subspan(got));
        if (n && *n > 0) {
          got += *n;
          continue;
        }
        err = n ? oci::Error{ErrorCode::kTransient, "the range read ended early", 0, std::nullopt}
                : n.error();
        r.reset();
      }
      if (!IsRetryable(err) || attempts >= retry_times_) {
        return oci::Wrap(err, "reading bytes " + std::to_string(off + got) + "-" +
                                  std::to_string(off + len - 1) + " of blob " +
                                  desc_.digest.Short());
      }
      registry::Log()->info("blob {}: range read broke at byte {} ({}), resuming",
                            desc_.digest.Short(), off + got, err.message);
      SleepBackoff(attempts++);
    }
    return buf;
  }

  oci::ImageSource& src_;
  const Descriptor desc_;
  const uint64_t chunk_;
  const uint64_t chunks_;
  const uint64_t window_;
  const int retry_times_;
  const uint64_t first_index_;
  std::unique_ptr<Reader> first_;  // the probe's reader, for chunk first_index_

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t taken_ = 0;               // guarded by mu_
  uint64_t next_ = 0;                // guarded by mu_ (written by the consumer only)
  std::map<uint64_t, Bytes> ready_;  // guarded by mu_
  std::optional<oci::Error> error_;  // guarded by mu_
  bool stop_ = false;                // guarded by mu_
  std::vector<std::thread> workers_;

  Bytes cur_;  // consumer only
  size_t pos_ = 0;
};

}  // namespace

bool IsRetryable(const oci::Error& e) {
  return e.code == ErrorCode::kTransient || e.code == ErrorCode::kNetwork;
}

void SleepBackoff(int attempt) {
  auto ms = std::chrono::milliseconds(100) * (1 << std::min(attempt, 5));
  std::this_thread::sleep_for(ms);
}

ResumingReader::ResumingReader(oci::ImageSource& src, Descriptor desc, int retry_times,
                               std::unique_ptr<Reader> first)
    : src_(src), desc_(std::move(desc)), retry_times_(retry_times), r_(std::move(first)) {}

Result<size_t> ResumingReader::Read(std::span<std::byte> out) {
  const bool sized = desc_.size >= 0;
  const uint64_t size = sized ? static_cast<uint64_t>(desc_.size) : 0;
  for (;;) {
    MC_RETURN_IF_ERROR(CheckCancelled());
    oci::Error err;
    bool ended_early = false;
    if (!r_) {
      if (pos_ >= size) return 0;
      auto o = src_.OpenBlobRange(desc_, pos_, size - pos_);
      if (o) {
        r_ = std::move(*o);
        continue;
      }
      // No Range support: the failure that made us try is the one to report.
      if (o.error().code == ErrorCode::kRangeNotSatisfiable) return std::unexpected(last_);
      err = o.error();
    } else {
      auto n = r_->Read(out);
      if (n && (*n > 0 || !sized || pos_ >= size)) {
        pos_ += *n;
        return *n;
      }
      ended_early = n.has_value();
      err = n ? oci::Error{ErrorCode::kTransient,
                           "the stream ended at byte " + std::to_string(pos_), 0, std::nullopt}
              : n.error();
      r_.reset();
    }
    if (!sized || !IsRetryable(err) || attempts_ >= retry_times_) {
      if (ended_early) return 0;  // the VerifyingReader reports the short blob
      return std::unexpected(err);
    }
    last_ = err;
    registry::Log()->info("blob {}: read broke at byte {} ({}), resuming with a range request",
                          desc_.digest.Short(), pos_, err.message);
    SleepBackoff(attempts_++);
  }
}

Result<std::unique_ptr<Reader>> OpenParallelRangeReader(oci::ImageSource& src,
                                                        const Descriptor& desc, uint64_t chunk,
                                                        int streams, int retry_times) {
  if (desc.size <= 0 || chunk == 0 || streams < 1) {
    return oci::Fail(ErrorCode::kInternal, "parallel range read needs a known size and a chunk");
  }
  // The second chunk's request doubles as the probe for Range support: a
  // server that ignores Range answers a request at offset 0 with the right
  // bytes, so only a request at a later offset tells.
  uint64_t size = static_cast<uint64_t>(desc.size);
  uint64_t index = size > chunk ? 1 : 0;
  uint64_t len = std::min<uint64_t>(chunk, size - index * chunk);
  MC_ASSIGN_OR_RETURN(auto first, src.OpenBlobRange(desc, index * chunk, len));
  return std::unique_ptr<Reader>(
      new ParallelRangeReader(src, desc, chunk, streams, retry_times, index, std::move(first)));
}

}  // namespace mc::engine
