// The layer pipeline: files → tar → shards → compress → reorder → sink.
//
//   tar thread ──shards──▶ compress pool (jobs threads) ──▶ writer thread ──▶ BlobWriter
//      │ diff_id = sha256(tar)                              │ digest = sha256(output)
//
// The tar thread (the caller's) runs TarWriter into a ShardingWriter that hashes
// the tar stream for the diff_id and cuts it into fixed kShardSize shards.
// Workers compress shards independently; the writer thread puts the results
// back in sequence, frames them (gzip header/trailer), hashes the output for the
// layer digest and writes it to the sink. At most `2 × jobs` shards are between
// the tar thread and the sink, which is what bounds memory however large the
// model is. Every byte of the model is read once.
//
// Shard size is a constant of the output format, never derived from `jobs`, so
// the bytes (and digests) are the same for any thread count. With no
// compression the digest equals the diff_id and we hash once.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "engine/build.h"
#include "engine/cancel.h"
#include "oci/digest.h"

namespace mc::engine {
namespace {

using oci::Bytes;
using oci::Error;
using oci::ErrorCode;
using oci::Result;

int DefaultJobs(int jobs) {
  if (jobs > 0) return jobs;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 2 : static_cast<int>(n);
}

// Compresses shards on a pool and writes them, in order, to the sink.
// Submit is called from one thread (the tar thread).
class ShardPipeline {
 public:
  ShardPipeline(const oci::Codec& codec, int jobs, oci::BlobWriter& out, bool hash_output)
      : codec_(codec),
        out_(out),
        hash_output_(hash_output),
        framer_(codec.NewFramer()),
        limit_(static_cast<size_t>(2 * std::max(jobs, 1))) {
    passthrough_ = codec.kind() == oci::Compression::kNone;
    int workers = passthrough_ ? 0 : std::max(jobs, 1);
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
    writer_ = std::thread([this] { WriterLoop(); });
  }

  ~ShardPipeline() { Stop(); }

  // Hands one shard over; blocks while `limit_` shards are in flight.
  Result<void> Submit(Bytes raw, bool last) {
    std::unique_lock lock(mu_);
    space_cv_.wait(lock, [&] { return in_flight_ < limit_ || error_; });
    if (error_) return std::unexpected(*error_);
    uint64_t seq = submitted_++;
    ++in_flight_;
    if (last) total_ = submitted_;
    if (passthrough_) {
      oci::ShardOutput s;
      s.raw_size = raw.size();
      s.data = std::move(raw);
      done_.emplace(seq, std::move(s));
      done_cv_.notify_all();
    } else {
      pending_.push_back(Job{seq, std::move(raw), last});
      work_cv_.notify_one();
    }
    return {};
  }

  // Waits until every shard is written (or an error); returns the output digest.
  Result<oci::Digest> Finish() {
    {
      std::unique_lock lock(mu_);
      finish_cv_.wait(lock, [&] { return (total_ && written_ == *total_) || error_; });
    }
    Stop();
    if (error_) return std::unexpected(*error_);
    return digester_.Finish();
  }

  uint64_t output_bytes() const { return output_bytes_; }

  void Fail(const Error& e) {
    std::lock_guard lock(mu_);
    if (!error_) error_ = e;
    NotifyAll();
  }

 private:
  struct Job {
    uint64_t seq;
    Bytes raw;
    bool last;
  };

  void NotifyAll() {
    work_cv_.notify_all();
    done_cv_.notify_all();
    space_cv_.notify_all();
    finish_cv_.notify_all();
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      NotifyAll();
    }
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
    if (writer_.joinable()) writer_.join();
  }

  void WorkerLoop() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return !pending_.empty() || stopping_ || error_; });
        if (error_ || (pending_.empty() && stopping_)) return;
        job = std::move(pending_.front());
        pending_.pop_front();
      }
      auto out = codec_.CompressShard(job.raw, job.last);
      Bytes().swap(job.raw);
      std::lock_guard lock(mu_);
      if (!out) {
        if (!error_) error_ = out.error();
        NotifyAll();
        return;
      }
      done_.emplace(job.seq, std::move(*out));
      done_cv_.notify_all();
    }
  }

  Result<void> Emit(std::span<const std::byte> bytes) {
    if (bytes.empty()) return {};
    if (hash_output_) digester_.Update(bytes);
    output_bytes_ += bytes.size();
    return out_.Write(bytes);
  }

  void WriterLoop() {
    auto r = Emit(framer_->Header());
    for (uint64_t next = 0; r;) {
      oci::ShardOutput shard;
      {
        std::unique_lock lock(mu_);
        done_cv_.wait(lock, [&] {
          return done_.contains(next) || error_ || (total_ && next == *total_) || stopping_;
        });
        if (error_) return;
        if (total_ && next == *total_) break;
        if (!done_.contains(next)) return;  // stopping without finishing
        shard = std::move(done_.at(next));
        done_.erase(next);
      }
      framer_->Add(shard);
      r = Emit(shard.data);
      if (!r) break;
      if (Cancelled()) r = CheckCancelled();
      std::lock_guard lock(mu_);
      ++next;
      ++written_;
      --in_flight_;
      space_cv_.notify_all();
      finish_cv_.notify_all();
    }
    if (r) r = Emit(framer_->Trailer());
    std::lock_guard lock(mu_);
    if (!r && !error_) error_ = r.error();
    finished_writing_ = true;
    NotifyAll();
  }

  const oci::Codec& codec_;
  oci::BlobWriter& out_;
  bool hash_output_;
  bool passthrough_ = false;
  std::unique_ptr<oci::Framer> framer_;
  oci::Digester digester_;     // writer thread only
  uint64_t output_bytes_ = 0;  // writer thread only, read after join
  const size_t limit_;

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_, space_cv_, finish_cv_;
  std::deque<Job> pending_;
  std::map<uint64_t, oci::ShardOutput> done_;
  uint64_t submitted_ = 0;
  uint64_t written_ = 0;
  size_t in_flight_ = 0;
  std::optional<uint64_t> total_;
  std::optional<Error> error_;
  bool stopping_ = false;
  bool finished_writing_ = false;
  std::vector<std::thread> workers_;
  std::thread writer_;
};

// Receives the tar stream: hashes it (diff_id) and cuts it into shards.
class ShardingWriter final : public oci::Writer {
 public:
  // hash: compute the diff_id here (off when the writer thread hashes the same bytes).
  ShardingWriter(ShardPipeline& pipeline, ProgressTask* progress, bool hash)
      : pipeline_(pipeline), progress_(progress), hash_(hash) {
    buf_.reserve(oci::kShardSize);
  }

  Result<void> Write(std::span<const std::byte> data) override {
    if (hash_) diff_.Update(data);
    tar_size_ += data.size();
    if (progress_) progress_->Add(data.size());
    while (!data.empty()) {
      size_t n = std::min(data.size(), oci::kShardSize - buf_.size());
      buf_.insert(buf_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
      data = data.subspan(n);
      if (buf_.size() == oci::kShardSize) {
        MC_RETURN_IF_ERROR(pipeline_.Submit(std::move(buf_), false));
        buf_ = Bytes();
        buf_.reserve(oci::kShardSize);
      }
    }
    return {};
  }

  // The final (possibly empty) shard.
  Result<void> Close() override { return pipeline_.Submit(std::move(buf_), true); }

  oci::Digest diff_id() const { return diff_.Finish(); }
  uint64_t tar_size() const { return tar_size_; }

 private:
  ShardPipeline& pipeline_;
  ProgressTask* progress_;
  bool hash_;
  uint64_t tar_size_ = 0;
  oci::Digester diff_;
  Bytes buf_;
};

Result<void> WriteEntries(const std::vector<oci::TarEntry>& entries,
                          const LayerBuildOptions& options, oci::Writer& out, BuiltLayer& layer) {
  oci::TarWriter tar(out, oci::TarOptions{options.mtime});
  for (const auto& e : entries) {
    MC_RETURN_IF_ERROR(CheckCancelled());
    if (e.type == oci::TarEntry::Type::kFile) {
      ++layer.files;
      layer.file_bytes += e.size;
    }
    if (e.type == oci::TarEntry::Type::kFile && e.source.empty()) {
      if (!options.content) {
        return oci::Fail(ErrorCode::kInternal, "no content for " + e.name);
      }
      MC_ASSIGN_OR_RETURN(auto reader, options.content(e));
      MC_RETURN_IF_ERROR(tar.Add(e, reader.get()));
    } else {
      MC_RETURN_IF_ERROR(tar.Add(e));
    }
  }
  return tar.Finish();
}

}  // namespace

Result<BuiltLayer> BuildLayer(const std::vector<oci::TarEntry>& entries,
                              const LayerBuildOptions& options, oci::BlobSink& sink) {
  MC_ASSIGN_OR_RETURN(auto codec,
                      oci::Codec::Create(options.compression, options.compression_level));
  oci::BlobHint hint;
  hint.media_type = std::string(oci::LayerMediaType(options.compression));
  hint.resume = options.resume;
  MC_ASSIGN_OR_RETURN(auto writer, sink.Begin(hint));

  const bool none = options.compression == oci::Compression::kNone;
  BuiltLayer layer;
  // Uncompressed: digest == diff_id, hashed once, on the writer thread, so the
  // tar thread only reads and the two cores split reading and hashing.
  ShardPipeline pipeline(*codec, DefaultJobs(options.jobs), *writer, /*hash_output=*/true);
  ShardingWriter sharder(pipeline, options.progress.get(), /*hash=*/!none);
  auto produced = WriteEntries(entries, options, sharder, layer);
  if (produced) produced = sharder.Close();
  // Interrupted: keep what the destination holds for the next run; any other
  // failure discards it.
  auto stop = [&](const Error& e) {
    if (e.code == ErrorCode::kCancelled) {
      writer->Suspend();
    } else {
      writer->Abort();
    }
    return std::unexpected(e);
  };
  if (!produced) {
    pipeline.Fail(produced.error());
    (void)pipeline.Finish();
    return stop(produced.error());
  }
  auto digest = pipeline.Finish();
  if (!digest) return stop(digest.error());
  layer.diff_id = none ? *digest : sharder.diff_id();
  layer.tar_size = sharder.tar_size();
  layer.descriptor.media_type = hint.media_type;
  layer.descriptor.digest = *digest;
  layer.descriptor.size = static_cast<int64_t>(pipeline.output_bytes());
  if (auto c = writer->Commit(layer.descriptor.digest, pipeline.output_bytes()); !c) {
    return stop(c.error());
  }
  if (options.progress) options.progress->Finish();
  return layer;
}

}  // namespace mc::engine
