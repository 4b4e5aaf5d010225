// The layer pipeline: files → tar → shards → compress → reorder → sink.
//
//   tar thread ──raw shards──▶ compress executor (jobs) ──▶ window ──▶ writer task ──▶ BlobWriter
//      │ diff_id = sha256(tar)                                         │ digest = sha256(output)
//
// The tar thread (the caller's) runs TarWriter into a ShardingWriter that
// hashes the tar stream for the diff_id and cuts it straight into pooled
// kShardSize buffers; file contents are read(2) directly into the shard
// (Writer::WriteSpace), so the kernel's copy out of the page cache is the
// only one before compression. For each full shard it claims the next index of an
// oci::OrderedWindow and posts the compression to the executor; the worker
// compresses into a pooled output buffer (Codec::CompressShardInto, sized for
// the worst case) and puts it in the window. The writer task takes outputs in
// order, frames them (gzip header/trailer), hashes the output for the layer
// digest and hands each buffer to the sink whole (BlobWriter::WriteBuffer).
// With no compression the raw shard buffer itself goes to the sink.
//
// Memory: the window holds at most 2 × jobs shards; the pools hold what the
// window, the tar thread, the writer task and the sink (max_retained_bytes)
// can hold at once, allocated once per layer and never zero-filled, so the
// kernel clears each page once per layer, not once per shard. Small outputs
// (well-compressing shards, the header and trailer) are gathered into one
// buffer before they go to the sink, so a sink that keeps N bytes keeps few
// buffers and the pool bound holds.
//
// Shard size is a constant of the output format, never derived from `jobs`, so
// the bytes (and digests) are the same for any thread count. With no
// compression the digest equals the diff_id and we hash once.
#include <algorithm>
#include <optional>

#include "engine/build.h"
#include "engine/cancel.h"
#include "engine/executor.h"
#include "oci/buffer.h"
#include "oci/digest.h"
#include "oci/ordered_window.h"

namespace mc::engine {
namespace {

using oci::Buffer;
using oci::Error;
using oci::ErrorCode;
using oci::Result;

struct Compressed {
  Buffer data;
  oci::ShardOutput shard;  // framing record; shard.data unused
};

// Compresses shards on an executor and writes them, in order, to the sink.
// Submit is called from one thread (the tar thread).
class ShardPipeline {
 public:
  ShardPipeline(const oci::Codec& codec, int jobs, oci::BlobWriter& out)
      : codec_(codec),
        out_(out),
        framer_(codec.NewFramer()),
        passthrough_(codec.kind() == oci::Compression::kNone),
        window_(static_cast<size_t>(2 * std::max(jobs, 1)), std::nullopt, &CancelFlag()),
        sink_buffers_(oci::RetainedBufferCount(out.max_retained_bytes(),
                                               codec.MaxOutputSize(oci::kShardSize))),
        // Raw: one per window slot, the one the tar thread fills; without
        // compression raw buffers also go to the writer task and the sink.
        raw_pool_(oci::kShardSize, window_.capacity() + 1 + (passthrough_ ? 1 + sink_buffers_ : 0)),
        // Output: one per window slot, the writer task's gathering buffer and
        // the one it holds, and what the sink keeps.
        out_pool_(codec.MaxOutputSize(oci::kShardSize),
                  (passthrough_ ? 0 : window_.capacity()) + 2 + sink_buffers_),
        // A task that throws fails the window like any error (executor.h).
        // Background priority: the writer, the sink and a registry on this
        // machine must not wait behind compression (executor.h).
        compress_(
            passthrough_ ? 1 : std::max(jobs, 1), "compress", [this](const Error& e) { Fail(e); },
            WorkerPriority::kBackground),
        writer_(1, "layer writer", [this](const Error& e) { Fail(e); }) {
    writer_.Post([this] { WriterLoop(); });
  }

  ~ShardPipeline() { Stop(); }

  // A raw shard buffer to fill. Blocks while all are in use.
  Result<Buffer> AcquireRaw() {
    auto b = raw_pool_.Acquire();
    if (!b) return std::unexpected(window_.error().value_or(b.error()));
    return b;
  }

  // Hands one shard over; blocks while the window is full.
  Result<void> Submit(Buffer raw, bool last) {
    MC_ASSIGN_OR_RETURN(auto claim, window_.Claim());
    if (!claim) return oci::Fail(ErrorCode::kInternal, "shard submitted after the last one");
    const uint64_t i = *claim;
    if (last) window_.SetTotal(i + 1);
    if (passthrough_) {
      Compressed c;
      c.shard.raw_size = raw.size();
      c.data = std::move(raw);
      window_.Put(i, std::move(c));
      return {};
    }
    compress_.Post([this, i, last, raw = std::move(raw)]() mutable {
      auto out = out_pool_.Acquire();
      if (!out) return Fail(out.error());
      auto shard = codec_.CompressShardInto(raw.bytes(), last, *out);
      raw.Release();
      if (!shard) return Fail(shard.error());
      window_.Put(i, Compressed{std::move(*out), std::move(*shard)});
    });
    return {};
  }

  // Waits until every shard is written (or an error); returns the output digest.
  Result<oci::Digest> Finish() {
    writer_.Join();
    std::optional<Error> e = window_.error();
    Stop();
    if (e) return std::unexpected(*e);
    if (!written_) return std::unexpected(written_.error());
    return digester_.Finish();
  }

  uint64_t output_bytes() const { return output_bytes_; }

  // Stops every stage with `e` (the first error wins).
  void Fail(const Error& e) {
    window_.Fail(e);
    raw_pool_.Shutdown();
    out_pool_.Shutdown();
  }

 private:
  void Stop() {
    if (!window_.failed()) window_.Cancel();  // no-op once the writer took the last shard
    raw_pool_.Shutdown();
    out_pool_.Shutdown();
    compress_.Join();
    writer_.Join();
  }

  // Hashes and counts `bytes`, which go to the sink next.
  void Account(std::span<const std::byte> bytes) {
    digester_.Update(bytes);
    output_bytes_ += bytes.size();
  }

  // Small pieces are gathered into one buffer (see the top of the file).
  Result<void> EmitSmall(std::span<const std::byte> bytes) {
    if (bytes.empty()) return {};
    Account(bytes);
    while (!bytes.empty()) {
      if (!gather_) {
        MC_ASSIGN_OR_RETURN(gather_, out_pool_.Acquire());
      }
      bytes = bytes.subspan(gather_.Append(bytes));
      if (gather_.full()) MC_RETURN_IF_ERROR(out_.WriteBuffer(std::move(gather_)));
    }
    return {};
  }

  Result<void> Emit(Buffer b) {
    if (b.size() < b.capacity() / 2) {
      if (gather_ && gather_.free_space().size() < b.size()) MC_RETURN_IF_ERROR(Flush());
      return EmitSmall(b.bytes());
    }
    MC_RETURN_IF_ERROR(Flush());
    Account(b.bytes());
    return out_.WriteBuffer(std::move(b));
  }

  Result<void> Flush() {
    if (gather_ && !gather_.empty()) MC_RETURN_IF_ERROR(out_.WriteBuffer(std::move(gather_)));
    gather_.Release();
    return {};
  }

  void WriterLoop() {
    written_ = [&]() -> Result<void> {
      MC_RETURN_IF_ERROR(EmitSmall(framer_->Header()));
      for (;;) {
        MC_ASSIGN_OR_RETURN(auto next, window_.Take());
        if (!next) break;
        framer_->Add(next->shard);
        MC_RETURN_IF_ERROR(Emit(std::move(next->data)));
      }
      MC_RETURN_IF_ERROR(EmitSmall(framer_->Trailer()));
      return Flush();
    }();
    gather_.Release();
    if (!written_) Fail(written_.error());
  }

  const oci::Codec& codec_;
  oci::BlobWriter& out_;
  std::unique_ptr<oci::Framer> framer_;  // writer task only
  const bool passthrough_;
  oci::OrderedWindow<Compressed> window_;
  const size_t sink_buffers_;
  oci::BufferPool raw_pool_;
  oci::BufferPool out_pool_;
  oci::Digester digester_;     // writer task only; read after it ended
  uint64_t output_bytes_ = 0;  // writer task only; read after it ended
  Buffer gather_;              // writer task only
  Result<void> written_;       // writer task only; read after it ended
  Executor compress_;          // last two: their tasks use everything above
  Executor writer_;
};

// Receives the tar stream: hashes it (diff_id) and cuts it into pooled shards.
class ShardingWriter final : public oci::Writer {
 public:
  // hash: compute the diff_id here (off when the writer task hashes the same bytes).
  ShardingWriter(ShardPipeline& pipeline, ProgressTask* progress, bool hash)
      : pipeline_(pipeline), progress_(progress), hash_(hash) {}

  Result<void> Write(std::span<const std::byte> data) override {
    if (hash_) diff_.Update(data);
    tar_size_ += data.size();
    if (progress_) progress_->Add(data.size());
    if (buf_ && !data.empty() && data.data() == buf_.free_space().data() &&
        data.size() <= buf_.free_space().size()) {
      // Produced in place (WriteSpace): the file bytes were read straight
      // into the shard, nothing to copy.
      buf_.Commit(data.size());
      if (buf_.full()) MC_RETURN_IF_ERROR(pipeline_.Submit(std::move(buf_), false));
      return {};
    }
    while (!data.empty()) {
      if (!buf_) {
        MC_ASSIGN_OR_RETURN(buf_, pipeline_.AcquireRaw());
      }
      data = data.subspan(buf_.Append(data));
      if (buf_.full()) MC_RETURN_IF_ERROR(pipeline_.Submit(std::move(buf_), false));
    }
    return {};
  }

  // The rest of the shard being filled (a new one when there is none), so
  // that TarWriter reads file contents straight into it.
  std::span<std::byte> WriteSpace() override {
    if (!buf_) {
      auto b = pipeline_.AcquireRaw();
      if (!b) return {};  // the pipeline failed; the next Write reports it
      buf_ = std::move(*b);
    }
    return buf_.free_space();
  }

  // The final (possibly empty) shard.
  Result<void> Close() override {
    if (!buf_) {
      MC_ASSIGN_OR_RETURN(buf_, pipeline_.AcquireRaw());
    }
    return pipeline_.Submit(std::move(buf_), true);
  }

  oci::Digest diff_id() const { return diff_.Finish(); }
  uint64_t tar_size() const { return tar_size_; }

 private:
  ShardPipeline& pipeline_;
  ProgressTask* progress_;
  bool hash_;
  uint64_t tar_size_ = 0;
  oci::Digester diff_;
  Buffer buf_;
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
  hint.media_type = options.media_type.empty()
                        ? std::string(oci::LayerMediaType(options.compression))
                        : options.media_type;
  hint.resume = options.resume;
  MC_ASSIGN_OR_RETURN(auto writer, sink.Begin(hint));

  const bool none = options.compression == oci::Compression::kNone;
  BuiltLayer layer;
  // Uncompressed: digest == diff_id, hashed once, on the writer thread, so the
  // tar thread only reads and the two cores split reading and hashing.
  ShardPipeline pipeline(*codec, DefaultJobs(options.jobs), *writer);
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
