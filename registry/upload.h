// One blob upload session of the distribution API (protocols.md 1.3, 1.9).
//
// The producer Write()s the blob stream (or hands over whole pooled buffers
// with WriteBuffer, which the session keeps instead of copying: a chunk is a
// list of buffers, sent as the parts of one PATCH body); the session buffers one chunk in
// memory and PATCHes it (`Content-Range: start-end`) from a sender thread
// while the producer fills the next chunk (so producing and uploading
// overlap: at most two chunks in memory), keeping it until the registry's 202, so a broken
// connection, a 416 or a 5xx is recovered by asking the registry how much it holds (GET on the
// upload URL) and resending from there, inside the kept chunk. A blob that ends before the first
// chunk is full goes up as one monolithic `PUT ?digest=`. 413 halves the PATCH size. Commit() sends
// the closing `PUT <url>?digest=` and checks the digest the registry reports.
//
// PATCH bodies go out without a length when UploadOptions::cancelled is set:
// on SIGINT/SIGTERM the chunk on the wire ends at once (not after its last
// byte), the registry keeps what arrived and says how much in the 202's
// Range, and that offset and the new URL are persisted (on_progress) for the
// next run. distribution checks Content-Range only together with a
// Content-Length; Quay reads the start and appends the stream (protocols.md 1.8).
//
// What cannot be recovered in-session (the registry forgot the session —
// distribution 2.8 cancels it when a PATCH broke after some bytes landed,
// see upload.cc — and the bytes before the kept chunk are gone) is kTransient
// "lost the upload session": the caller sends the blob again with a new
// session (a layer is regenerated, a copied blob re-read). While the whole
// blob so far still sits in the buffer the session restarts itself (new POST).
//
// Persisting: url() and committed() after each acknowledged chunk (also given
// to UploadOptions::on_progress) are what a later process needs to
// ResumeUpload(); the producer then writes the whole stream again and the
// session drops the first resume_offset() bytes.
//
// Write/Commit/Abort from one thread at a time; an error of a chunk in flight
// is returned by the next Write or Commit. Error codes: kNetwork when recovery
// attempts run out (naming the host and the request), kTransient (session
// lost: send the blob again), kCancelled (UploadOptions::cancelled said so),
// kUnauthorized, kInvalidInput (size refusal, bad request), kVerificationFailed (digest).
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "oci/buffer.h"
#include "oci/digest.h"
#include "oci/error.h"
#include "oci/io.h"
#include "registry/retry.h"
#include "registry/transport.h"

namespace mc::registry {

struct UploadState {
  std::string url;      // newest upload URL (carries distribution's _state)
  uint64_t offset = 0;  // bytes the registry acknowledged
};

struct UploadOptions {
  // Bytes buffered (and PATCHed) per chunk; blobs smaller go up in one PUT.
  // Two chunks are in memory per upload (one in flight, one filling); 32 MiB
  // measured as fast as 64 MiB against distribution and Quay accepts it.
  size_t chunk_size = 32 << 20;
  // 413 halves the PATCH size down to this, then gives up (size refusal).
  size_t min_chunk_size = 256 << 10;
  // Consecutive failed attempts (without progress) before giving up.
  int max_attempts = 6;
  // Recovery delays (retry.h, the one policy): full jitter over base·2^attempt
  // up to 10 s; a server's Retry-After wins. Tests inject a fake sleeper.
  BackoffPolicy backoff{std::chrono::milliseconds(500), std::chrono::milliseconds(10'000), {}, {}};
  // Called after every acknowledged chunk (for persisting the session).
  std::function<void(const UploadState&)> on_progress;
  // Polled before every request and recovery: true stops the session with
  // kCancelled (SIGINT/SIGTERM), leaving the registry's session as it is.
  std::function<bool()> cancelled;
};

// Where a session lives; shared by the client and the sessions it creates.
struct UploadTarget {
  std::shared_ptr<Transport> transport;
  std::string base_url;    // "https://host:port"
  std::string repository;  // "org/model"
  std::string registry;    // "host:port", for messages
  std::string describe;    // "docker://host/org/model", for messages
};

// Parsed `Range` of an upload status: the offset to continue at and, when
// the semantics are ambiguous, a lower offset to try after a 416.
struct UploadRange {
  uint64_t offset = 0;
  std::optional<uint64_t> fallback;
};
// "0-1023" (distribution: last index → 1024, fallback 1023 for Quay's count
// and distribution's "0-0" of an empty session), "bytes=0-1024" (Quay: count
// → 1024), "bytes=0--1" → 0. nullopt when unparsable.
std::optional<UploadRange> ParseUploadRange(std::string_view value);

// Resolves a Location header against the URL of the request that got it.
std::string ResolveLocation(std::string_view request_url, std::string_view location);
// Appends "key=value" with '?' or '&'.
std::string AppendQuery(std::string url, std::string_view key_value);

// An upload chunk: bytes of the blob held until the registry acknowledged
// them, as buffers handed over by WriteBuffer (kept, not copied) and
// session-owned segments that Write copies into. Slice() gives the parts of a
// request body.
class UploadChunk {
 public:
  uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Appends bytes [begin, buf.size()) of `buf` (handed over).
  void Append(oci::Buffer buf, size_t begin);
  // Copies as much of `data` as fits into the last own segment (starting a
  // new one, from `spare` or allocated, of `segment_size` bytes, when there
  // is none with room); returns the count copied.
  size_t Copy(std::span<const std::byte> data, size_t segment_size,
              std::vector<oci::Buffer>& spare);
  // The bytes [offset, offset + len) as parts.
  std::vector<std::span<const std::byte>> Slice(uint64_t offset, uint64_t len) const;
  // Lets go of every buffer: handed-over ones return to their pools, own
  // segments go to `spare` for reuse.
  void Clear(std::vector<oci::Buffer>& spare);

 private:
  struct Segment {
    oci::Buffer buf;
    size_t begin = 0;  // bytes [begin, buf.size()) are the chunk's
    bool own = false;
  };
  std::vector<Segment> segments_;
  uint64_t size_ = 0;
};

class UploadSession final : public oci::Writer {
 public:
  // A session at `url` (absolute), new (nothing uploaded).
  UploadSession(UploadTarget target, std::string url, UploadOptions options);
  // Starts a session (POST …/blobs/uploads/).
  static oci::Result<std::unique_ptr<UploadSession>> Start(UploadTarget target,
                                                           UploadOptions options);
  // Continues a persisted session: GET status; kNotFound when the registry
  // no longer knows it (start a new one).
  static oci::Result<std::unique_ptr<UploadSession>> Resume(UploadTarget target, std::string url,
                                                            UploadOptions options);
  ~UploadSession() override;

  oci::Result<void> Write(std::span<const std::byte> data) override;
  // Hands a whole buffer over: kept (not copied) until the registry
  // acknowledged its bytes, then returned to its pool. A buffer less than
  // half full is copied instead, so that the buffers a session keeps are
  // bounded by max_retained_bytes() (store.h RetainedBufferCount).
  oci::Result<void> WriteBuffer(oci::Buffer buffer);
  // Bytes of handed-over buffers kept after WriteBuffer returns: the chunk
  // in flight and the one filling.
  uint64_t max_retained_bytes() const { return 2 * static_cast<uint64_t>(options_.chunk_size); }
  // Sends what is buffered and the closing PUT ?digest=. `size` must equal
  // the bytes written (kInternal otherwise).
  oci::Result<void> Commit(const oci::Digest& digest, uint64_t size);
  // DELETE on the session (errors ignored). Idempotent; the destructor aborts
  // an uncommitted session.
  void Abort();

  // Forgets the session without DELETE: the caller persisted url() and will
  // Resume() it later (and tests simulate a crash). Waits for a chunk in flight.
  void Detach();

  const std::string& url() const { return url_; }
  uint64_t committed() const { return server_offset_; }
  // First stream byte this session needs (bytes before it are dropped).
  uint64_t resume_offset() const { return resume_offset_; }
  bool committed_blob() const { return done_; }

  struct Stats {
    int patches = 0;
    int puts = 0;
    int resyncs = 0;
    int restarts = 0;
    uint64_t bytes_sent = 0;  // body bytes of PATCH/PUT requests, resends included
  };
  const Stats& stats() const { return stats_; }

 private:
  uint64_t buffer_end() const { return buffer_start_ + buffer_.size(); }
  // Sends the filled chunk (after the one in flight was acknowledged) while
  // the producer fills the next.
  oci::Result<void> Rotate();
  // Waits for the chunk in flight (if any) and returns its outcome.
  oci::Result<void> WaitInFlight();
  // Makes the filled chunk the kept one (after WaitInFlight).
  void TakeFilled();
  oci::Result<void> Flush();
  // Lets go of the kept and filling chunks (buffers back to their pools).
  void ReleaseChunks();
  // DELETE on the session, without waiting for the sender.
  void Delete();
  // DELETE on `url` (an abandoned session), errors ignored; no state changes.
  void DeleteUrl(const std::string& url);
  oci::Result<void> CheckStop() const;
  oci::Result<void> SendPiece();
  oci::Result<void> Recover(const oci::Error& cause);
  oci::Result<void> Resync();
  oci::Result<void> RestartSession(const oci::Error& cause);
  oci::Result<bool> TryMonolithic(const oci::Digest& digest);
  oci::Result<void> ClosingPut(const oci::Digest& digest);
  // After a 201/204 that stored the blob: the Docker-Content-Digest it reports
  // must be ours (kVerificationFailed otherwise).
  oci::Result<void> CheckStored(HttpResponse& resp, const oci::Digest& digest);
  oci::Result<bool> BlobExists(const oci::Digest& digest);
  void TakeLocation(const HttpResponse& resp, const std::string& request_url);
  oci::Error Context(oci::Error e, std::string_view op) const;
  void Backoff(const oci::Error& cause);

  UploadTarget target_;
  std::string url_;
  UploadOptions options_;
  UploadChunk buffer_;              // kept (in flight) bytes [buffer_start_, buffer_end())
  UploadChunk filling_;             // the next chunk, stream bytes from buffer_end()
  std::vector<oci::Buffer> spare_;  // own segments for Write's copies, reused
  // The sender: one thread for the session's life, started by the first
  // chunk (a blob that fits one chunk goes up in one PUT and needs none).
  std::unique_ptr<boost::asio::thread_pool> sender_;
  std::future<oci::Result<void>> in_flight_;  // Flush() of buffer_ on the sender
  uint64_t buffer_start_ = 0;                 // stream offset of buffer_[0]
  uint64_t stream_pos_ = 0;                   // bytes the producer has written
  uint64_t server_offset_ = 0;                // bytes the registry holds
  uint64_t resume_offset_ = 0;
  std::optional<uint64_t> fallback_;  // lower offset to try after a 416
  size_t patch_size_;
  bool need_resync_ = false;
  bool any_patch_ = false;
  bool done_ = false;
  bool aborted_ = false;
  int attempts_ = 0;
  Stats stats_;
};

}  // namespace mc::registry
