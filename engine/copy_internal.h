// Pieces of the copy engine shared by copy.cc and copy_range.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "oci/buffer.h"
#include "oci/store.h"

namespace mc::engine {

// kTransient and kNetwork: a new attempt may succeed.
bool IsRetryable(const oci::Error& e);
// 100 ms × 2^attempt, capped at 3.2 s.
void SleepBackoff(int attempt);

// One sequential stream of a whole blob that, when the stream breaks with a
// retryable error, continues with a ranged read from the byte it reached (up
// to `retry_times` times). Sources without ranges report the original error.
// One thread at a time.
class ResumingReader final : public oci::Reader {
 public:
  ResumingReader(oci::ImageSource& src, oci::Descriptor desc, int retry_times,
                 std::unique_ptr<oci::Reader> first);
  oci::Result<size_t> Read(std::span<std::byte> out) override;

 private:
  oci::ImageSource& src_;
  const oci::Descriptor desc_;
  const int retry_times_;
  std::unique_ptr<oci::Reader> r_;
  uint64_t pos_ = 0;
  int attempts_ = 0;
  oci::Error last_;
};

// A blob as a sequence of pooled buffers, in order: what the copy's consumer
// hashes and hands to BlobWriter::WriteBuffer. One consumer thread. The
// stream owns its buffer pool; buffers handed out may outlive the stream.
class BufferStream {
 public:
  virtual ~BufferStream() = default;
  // The next piece (never empty), or nullopt after the last one.
  virtual oci::Result<std::optional<oci::Buffer>> Next() = 0;
  // The pool behind the stream (for tests and statistics).
  virtual const oci::BufferPool& pool() const = 0;
  // Connections reading at once, at most (1 for a sequential stream).
  virtual int streams() const { return 1; }
};

// The whole blob `desc` as parallel ranged reads of `chunk` bytes by
// `streams` workers, into pooled buffers of `chunk` bytes; at most `streams`
// chunks are claimed and not yet taken (the window). The pool has
// streams + 1 + `reserve` buffers: one per window slot, the one the consumer
// holds, and `reserve` for buffers the consumer handed on and a writer keeps
// (BlobWriter::max_retained_bytes). A broken range read resumes from the
// byte where it broke (up to `retry_times` times per chunk).
// kRangeNotSatisfiable when `src` cannot serve ranges. desc.size must be known.
//
// `fan_out_below` (bytes/s; 0: fan out at once): one worker reads chunk after
// chunk first, and the others join only when it reads slower than this (its
// rate measured over the chunks after the first). Several connections beat
// a single one whose TCP window is capped by latency, but a near registry
// serves one stream as fast and pays CPU for every extra one (a tmpfs
// distribution used twice the CPU for four ranged streams as for one).
oci::Result<std::unique_ptr<BufferStream>> OpenParallelRangeStream(oci::ImageSource& src,
                                                                   const oci::Descriptor& desc,
                                                                   uint64_t chunk, int streams,
                                                                   int retry_times, size_t reserve,
                                                                   uint64_t fan_out_below = 0);

// `reader` cut into pooled buffers of `buffer_size` bytes (each filled
// whole but the last); the pool has 1 + `reserve` buffers.
std::unique_ptr<BufferStream> NewReaderStream(std::unique_ptr<oci::Reader> reader,
                                              size_t buffer_size, size_t reserve);

}  // namespace mc::engine
