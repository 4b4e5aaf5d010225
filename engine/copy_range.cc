// Reading one large blob over several connections, in order.
//
// Between data centres a single TCP stream is capped by latency (window /
// RTT), and a registry behind object storage often serves one connection far
// slower than several. So a large blob is cut into fixed chunks; `streams`
// workers (on an Executor) fetch chunks with ranged reads straight into
// pooled buffers, and the consumer takes the buffers back in order through
// an oci::OrderedWindow — a reorder buffer in front of the sequential upload,
// which must see the bytes in order because the destination hashes and
// appends them.
//
// Memory is bounded by the pool: a worker claims chunk i only while
// i < next + streams (the window), then takes a buffer; the consumer holds
// one more, and the writer it hands buffers to keeps a known number
// (reserve). So the pool never runs dry while the chunk the consumer needs is
// unfilled: no deadlock, and the buffers are allocated once per blob and
// never zero-filled — the kernel clears each page once, not once per chunk.
//
// A broken range read is resumed from the byte where it broke (a new ranged
// request for the rest of that chunk, appended to the same buffer); the chunk
// boundaries never depend on the number of streams, and the bytes are
// verified by the consumer, so a resumed read cannot silently change the blob.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "engine/cancel.h"
#include "engine/copy.h"
#include "engine/copy_internal.h"
#include "engine/executor.h"
#include "oci/ordered_window.h"
#include "registry/log.h"
#include "registry/retry.h"

namespace mc::engine {
namespace {

using oci::Buffer;
using oci::Descriptor;
using oci::ErrorCode;
using oci::Reader;
using oci::Result;

class ParallelRangeStream final : public BufferStream {
 public:
  ParallelRangeStream(oci::ImageSource& src, Descriptor desc, uint64_t chunk, int streams,
                      int retry_times, size_t reserve, uint64_t first_index,
                      std::unique_ptr<Reader> first, uint64_t fan_out_below)
      : src_(src),
        desc_(std::move(desc)),
        chunk_(chunk),
        chunks_((static_cast<uint64_t>(desc_.size) + chunk - 1) / chunk),
        retry_times_(retry_times),
        first_index_(first_index),
        first_(std::move(first)),
        fan_out_below_(fan_out_below),
        pool_(static_cast<size_t>(chunk), static_cast<size_t>(streams) + 1 + reserve),
        window_(static_cast<size_t>(streams), chunks_, &CancelFlag()),
        executor_(static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(streams), chunks_)),
                  "ranged read", [this](const oci::Error& e) { window_.Fail(e); }) {
    width_ = fan_out_below_ == 0 ? executor_.threads() : 1;
    for (int i = 0; i < executor_.threads(); ++i) executor_.Post([this, i] { Work(i); });
  }

  ~ParallelRangeStream() override {
    // Stops the workers: those waiting for a slot or a buffer wake at once,
    // one inside a read stops at its next check, those never let in leave.
    {
      std::lock_guard lock(width_mu_);
      stopping_ = true;
    }
    width_cv_.notify_all();
    window_.Cancel();
    pool_.Shutdown();
    executor_.Join();
  }

  Result<std::optional<Buffer>> Next() override { return window_.Take(); }
  const oci::BufferPool& pool() const override { return pool_; }
  int streams() const override {
    std::lock_guard lock(width_mu_);
    return width_;
  }

 private:
  void Work(int id) {
    if (id > 0) {  // joins when the first worker alone is too slow
      std::unique_lock lock(width_mu_);
      width_cv_.wait(lock, [&] { return width_ > id || stopping_; });
      if (width_ <= id) return;
    }
    if (id == 0 && fan_out_below_ > 0 && !Sequential()) return;
    for (;;) {
      auto claim = window_.Claim();
      if (!claim || !*claim) return;
      const uint64_t i = **claim;
      auto buf = pool_.Acquire();
      if (!buf) return window_.Fail(buf.error());
      const auto start = std::chrono::steady_clock::now();
      if (auto r = Fetch(i, *buf); !r) return window_.Fail(r.error());
      Measure(buf->size(), std::chrono::steady_clock::now() - start);
      window_.Put(i, std::move(*buf));
    }
  }

  uint64_t ChunkLength(uint64_t i) const {
    return std::min<uint64_t>(chunk_, static_cast<uint64_t>(desc_.size) - i * chunk_);
  }

  // The first worker alone, while one stream is fast enough: one ranged GET
  // for the whole blob, its body cut into the window's chunks as it arrives
  // (one request instead of one per chunk: a registry serves that for half
  // the CPU). Returns true when the chunk loop should go on: the others were
  // let in, or the stream broke (the chunk it was filling is finished with
  // ranged reads, which resume where it broke); false when the blob is read
  // or the window failed.
  bool Sequential() {
    auto claim = window_.Claim();
    if (!claim || !*claim) return false;
    uint64_t i = **claim;
    auto acquired = pool_.Acquire();
    if (!acquired) {
      window_.Fail(acquired.error());
      return false;
    }
    Buffer cur = std::move(*acquired);
    const uint64_t size = static_cast<uint64_t>(desc_.size);
    const uint64_t start = i * chunk_;
    bool fan_out = false, done = false;
    auto mark = std::chrono::steady_clock::now();
    auto sink = [&](std::span<const std::byte> data) -> Result<void> {
      while (!data.empty()) {
        MC_RETURN_IF_ERROR(CheckCancelled());
        if (window_.failed()) return oci::Fail(ErrorCode::kCancelled, "stopped");
        const uint64_t len = ChunkLength(i);
        data = data.subspan(cur.Append(
            data.first(static_cast<size_t>(std::min<uint64_t>(data.size(), len - cur.size())))));
        if (cur.size() < len) continue;
        // Network time only: waiting for a window slot or a buffer is not.
        Measure(cur.size(), std::chrono::steady_clock::now() - mark);
        window_.Put(i, std::move(cur));
        if (i + 1 == chunks_) {
          done = true;
          return {};
        }
        if (streams() > 1) {
          fan_out = true;
          return oci::Fail(ErrorCode::kCancelled, "fanning out");
        }
        auto next = window_.Claim();
        if (!next) return std::unexpected(next.error());
        if (!*next) return oci::Fail(ErrorCode::kInternal, "the window ended early");
        i = **next;
        MC_ASSIGN_OR_RETURN(cur, pool_.Acquire());
        mark = std::chrono::steady_clock::now();
      }
      return {};
    };
    auto r = src_.StreamBlobRange(desc_, start, size - start, sink);
    if (done || fan_out) return !done;
    if (window_.failed()) return false;
    if (r) {  // the stream ended early: finish the chunk with ranged reads
      r = oci::Fail(ErrorCode::kTransient, "the blob stream ended early");
    }
    if (!IsRetryable(r.error()) || !cur) {
      window_.Fail(r.error());
      return false;
    }
    registry::Log()->info("blob {}: stream broke at byte {} ({}), continuing with ranged reads",
                          desc_.digest.Short(), i * chunk_ + cur.size(), r.error().message);
    if (auto f = Fetch(i, cur); !f) {
      window_.Fail(f.error());
      return false;
    }
    window_.Put(i, std::move(cur));
    return true;
  }

  // The single worker's rate, from its second chunk on (the first pays for
  // the connection and TCP slow start): below fan_out_below_, every worker
  // joins, for the rest of the blob.
  void Measure(uint64_t bytes, std::chrono::steady_clock::duration took) {
    std::lock_guard lock(width_mu_);
    if (width_ > 1 || fan_out_below_ == 0 || ++seen_chunks_ == 1) return;
    measured_bytes_ += bytes;
    measured_time_ += took;
    if (++measured_chunks_ < 2) return;
    const double seconds = std::chrono::duration<double>(measured_time_).count();
    if (static_cast<double>(measured_bytes_) >=
        static_cast<double>(fan_out_below_) * std::max(seconds, 1e-9)) {
      return;  // fast enough alone
    }
    width_ = executor_.threads();
    registry::Log()->debug("blob {}: one stream reads {:.0f} MB/s; reading with {}",
                           desc_.digest.Short(),
                           static_cast<double>(measured_bytes_) / seconds / 1e6, width_);
    width_cv_.notify_all();
  }

  Result<void> Fetch(uint64_t i, Buffer& buf) {
    const uint64_t off = i * chunk_;
    const uint64_t len = ChunkLength(i);
    int attempts = 0;
    // The probe's reader serves chunk first_index_; only its claimer gets here.
    std::unique_ptr<Reader> r = i == first_index_ ? std::move(first_) : nullptr;
    while (buf.size() < len) {
      MC_RETURN_IF_ERROR(CheckCancelled());
      if (window_.failed()) return oci::Fail(ErrorCode::kCancelled, "stopped");
      const uint64_t got = buf.size();
      auto res = r ? oci::ReadFull(*r, buf, len - got)
                   : src_.ReadBlobRange(desc_, off + got, len - got, buf);
      r.reset();
      if (res) continue;
      const oci::Error& err = res.error();
      if (!IsRetryable(err) || attempts >= retry_times_) {
        return oci::Wrap(err, "reading bytes " + std::to_string(off + buf.size()) + "-" +
                                  std::to_string(off + len - 1) + " of blob " +
                                  desc_.digest.Short());
      }
      registry::Log()->info("blob {}: range read broke at byte {} ({}), resuming",
                            desc_.digest.Short(), off + buf.size(), err.message);
      SleepBackoff(attempts++);
    }
    return {};
  }

  oci::ImageSource& src_;
  const Descriptor desc_;
  const uint64_t chunk_;
  const uint64_t chunks_;
  const int retry_times_;
  const uint64_t first_index_;
  std::unique_ptr<Reader> first_;  // the probe's reader, for chunk first_index_
  const uint64_t fan_out_below_;
  mutable std::mutex width_mu_;
  std::condition_variable width_cv_;
  int width_ = 1;          // workers let in; guarded by width_mu_
  bool stopping_ = false;  // guarded by width_mu_
  uint64_t measured_bytes_ = 0;
  std::chrono::steady_clock::duration measured_time_{};
  int measured_chunks_ = 0;
  int seen_chunks_ = 0;  // chunks the single worker finished
  oci::BufferPool pool_;
  oci::OrderedWindow<Buffer> window_;
  Executor executor_;  // last: its tasks use everything above
};

// A sequential reader cut into pooled buffers.
class ReaderStream final : public BufferStream {
 public:
  ReaderStream(std::unique_ptr<Reader> r, size_t buffer_size, size_t reserve)
      : r_(std::move(r)), pool_(buffer_size, 1 + reserve) {}

  Result<std::optional<Buffer>> Next() override {
    if (done_) return std::optional<Buffer>{};
    MC_ASSIGN_OR_RETURN(Buffer buf, pool_.Acquire());
    while (!buf.full()) {
      MC_ASSIGN_OR_RETURN(size_t n, r_->Read(buf.free_space()));
      if (n == 0) {
        done_ = true;
        break;
      }
      buf.Commit(n);
    }
    if (buf.empty()) return std::optional<Buffer>{};
    return std::optional<Buffer>{std::move(buf)};
  }
  const oci::BufferPool& pool() const override { return pool_; }

 private:
  std::unique_ptr<Reader> r_;
  oci::BufferPool pool_;
  bool done_ = false;
};

// The Reader face of a BufferStream (OpenParallelRangeReader's callers).
class BufferStreamReader final : public Reader {
 public:
  explicit BufferStreamReader(std::unique_ptr<BufferStream> s) : s_(std::move(s)) {}
  Result<size_t> Read(std::span<std::byte> out) override {
    while (pos_ >= cur_.size()) {
      if (end_) return 0;
      MC_ASSIGN_OR_RETURN(auto next, s_->Next());
      if (!next) {
        end_ = true;
        cur_.Release();
        return 0;
      }
      cur_ = std::move(*next);
      pos_ = 0;
    }
    size_t n = std::min(out.size(), cur_.size() - pos_);
    std::copy_n(cur_.data() + pos_, n, out.data());
    pos_ += n;
    return n;
  }

 private:
  std::unique_ptr<BufferStream> s_;
  Buffer cur_;
  size_t pos_ = 0;
  bool end_ = false;
};

}  // namespace

bool IsRetryable(const oci::Error& e) {
  return e.code == ErrorCode::kTransient || e.code == ErrorCode::kNetwork;
}

void SleepBackoff(int attempt) {
  // The one policy (registry/retry.h): full jitter over 100 ms·2^attempt, up to 3.2 s.
  static const registry::BackoffPolicy policy{
      std::chrono::milliseconds(100), std::chrono::milliseconds(3'200), {}, {}};
  policy.Wait(attempt);
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

Result<std::unique_ptr<BufferStream>> OpenParallelRangeStream(oci::ImageSource& src,
                                                              const Descriptor& desc,
                                                              uint64_t chunk, int streams,
                                                              int retry_times, size_t reserve,
                                                              uint64_t fan_out_below) {
  if (desc.size <= 0 || chunk == 0 || streams < 1) {
    return oci::Fail(ErrorCode::kInternal, "parallel range read needs a known size and a chunk");
  }
  // The second chunk's request doubles as the probe for Range support: a
  // server that ignores Range answers a request at offset 0 with the right
  // bytes, so only a request at a later offset tells.
  uint64_t size = static_cast<uint64_t>(desc.size);
  uint64_t index = size > chunk ? 1 : 0;
  uint64_t len = std::min<uint64_t>(chunk, size - index * chunk);
  if (fan_out_below > 0) {
    // One stream reads first (Sequential) and the chunk would be dropped:
    // one byte proves Range support as well, read whole so that its
    // connection goes back to the pool.
    MC_RETURN_IF_ERROR(src.StreamBlobRange(
        desc, index * chunk, 1, [](std::span<const std::byte>) { return Result<void>{}; }));
    return std::unique_ptr<BufferStream>(new ParallelRangeStream(
        src, desc, chunk, streams, retry_times, reserve, index, nullptr, fan_out_below));
  }
  MC_ASSIGN_OR_RETURN(auto first, src.OpenBlobRange(desc, index * chunk, len));
  return std::unique_ptr<BufferStream>(new ParallelRangeStream(
      src, desc, chunk, streams, retry_times, reserve, index, std::move(first), fan_out_below));
}

std::unique_ptr<BufferStream> NewReaderStream(std::unique_ptr<Reader> reader, size_t buffer_size,
                                              size_t reserve) {
  return std::make_unique<ReaderStream>(std::move(reader), buffer_size, reserve);
}

Result<std::unique_ptr<Reader>> OpenParallelRangeReader(oci::ImageSource& src,
                                                        const Descriptor& desc, uint64_t chunk,
                                                        int streams, int retry_times) {
  MC_ASSIGN_OR_RETURN(auto s, OpenParallelRangeStream(src, desc, chunk, streams, retry_times, 0));
  return std::unique_ptr<Reader>(new BufferStreamReader(std::move(s)));
}

}  // namespace mc::engine
