// Where images come from and go to.
//
// Every destination (an OCI layout on disk, a registry) implements
// ImageDestination and every source implements ImageSource, so build, push,
// copy and mirror speak one set of types (like ggcr's Layer interface).
//
// The lazy-digest contract: a streamed blob's digest is known only when the
// stream ends, so the producer hashes what it writes and hands the digest to
// Commit. Sinks never rehash on the hot path.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "oci/buffer.h"
#include "oci/digest.h"
#include "oci/error.h"
#include "oci/image.h"
#include "oci/io.h"

namespace mc::oci {

// Where a resumable writer keeps what a later run needs to continue an
// interrupted blob (a registry upload session's URL and acknowledged offset).
// The state is opaque to the caller and advisory: a writer that cannot use
// what Load() returns (stale, unreadable, from another version) starts the
// blob afresh. Thread guarantee: one writer uses a slot at a time.
class ResumeSlot {
 public:
  virtual ~ResumeSlot() = default;
  // What an earlier Save() stored; nullopt when there is nothing (or it is unreadable).
  virtual std::optional<std::string> Load() = 0;
  // Replaces the stored state (atomically: a crash leaves the old or the new one).
  virtual void Save(std::string_view state) = 0;
  // Forgets the state (the blob was committed or abandoned for good).
  virtual void Clear() = 0;
};

struct BlobHint {
  std::optional<Digest> digest;  // known up front when copying
  int64_t size = -1;             // -1: unknown (streamed layer)
  std::string media_type;
  // Registry sinks: repository on the same host to try a cross-repository mount from.
  std::optional<std::string> mount_from;
  // The caller has just asked Exists(digest) and got false: the sink skips its
  // own existence check (one HEAD less per copied blob).
  bool checked_absent = false;
  // Set when the producer can write the same stream again in a later run (a
  // deterministic layer, a copied blob): a writer that supports resuming
  // continues the session found in the slot, keeps the slot up to date after
  // every acknowledged piece, and clears it on Commit and Abort (not on Suspend).
  std::shared_ptr<ResumeSlot> resume;
};

// One blob being written. One thread at a time. Destroying an uncommitted
// writer aborts it: nothing of it becomes visible.
class BlobWriter : public Writer {
 public:
  // Makes the blob visible under `digest` after checking the byte count.
  // kVerificationFailed when the destination computes another digest.
  virtual Result<void> Commit(const Digest& digest, uint64_t size) = 0;
  // Discards what was written. Safe to call more than once.
  virtual void Abort() = 0;
  // Stops without discarding what the destination holds (SIGINT/SIGTERM): a
  // resumable writer lets the piece on the wire finish, keeps the session and
  // its resume slot, so a later run continues where this one stopped. The
  // default is Abort(). Safe to call more than once; the writer is finished after it.
  virtual void Suspend() { Abort(); }
  // Writes a whole buffer, handing it over: a writer that keeps bytes until
  // they are acknowledged (a registry upload) keeps the buffer itself instead
  // of copying it, and releases it to its pool when done. The default writes
  // the bytes and releases the buffer at once.
  virtual Result<void> WriteBuffer(Buffer buffer) { return Write(buffer.bytes()); }
  // The most bytes of handed-over buffers this writer keeps after
  // WriteBuffer returns (a registry upload: the chunk in flight and the one
  // filling). A producer sizes its buffer pool with it: buffers the writer
  // keeps are not free for the producer, and a pool without room for them
  // would wait forever. 0: the writer keeps none (it copies or writes through).
  // A writer keeps only buffers at least half full (it copies emptier ones);
  // RetainedBufferCount turns this into a buffer count.
  virtual uint64_t max_retained_bytes() const { return 0; }
  // Bytes the destination already holds from an earlier, interrupted attempt.
  // The producer still writes the whole stream; the writer drops the prefix.
  virtual uint64_t resume_offset() const { return 0; }
  // True when Begin found nothing to do (mounted, or already present):
  // the caller may skip writing and Commit with the known digest.
  virtual bool done() const { return false; }
};

// Thread guarantee: safe for concurrent use (blobs are written in parallel).
class BlobSink {
 public:
  virtual ~BlobSink() = default;
  virtual Result<bool> Exists(const Digest& digest) = 0;
  virtual Result<std::unique_ptr<BlobWriter>> Begin(const BlobHint& hint) = 0;
};

// Thread guarantee: safe for concurrent use.
class ImageDestination : public BlobSink {
 public:
  // Stores the exact bytes; tags them with `tag` when given (else by digest only).
  virtual Result<void> PutManifest(const RawManifest& manifest,
                                   const std::optional<std::string>& tag) = 0;
  // Stores a manifest that an index will reference (pushed by digest). Layouts
  // keep it as a blob only, so index.json lists just the top-level image.
  virtual Result<void> PutChildManifest(const RawManifest& manifest) {
    return PutManifest(manifest, std::nullopt);
  }
  // The digest of the manifest `tag_or_digest` names here; nullopt when it
  // names nothing or the destination cannot tell cheaply (the default). A
  // destination stores a manifest only once everything it references is
  // present (registries check; copies and builds go bottom-up), so a manifest
  // present by digest means its whole tree is.
  virtual Result<std::optional<Digest>> ManifestDigest(const std::string& tag_or_digest) {
    (void)tag_or_digest;
    return std::optional<Digest>{};
  }
  // "oci:/path:tag" or "docker://host/repo:tag", for messages.
  virtual std::string Describe() const = 0;
};

// Thread guarantee: safe for concurrent use.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // By tag or "sha256:..." digest; an empty string means the reference's own.
  virtual Result<RawManifest> GetManifest(const std::string& tag_or_digest) = 0;
  // Raw stream of a blob, not verified (wrap it in VerifyingReader).
  virtual Result<std::unique_ptr<Reader>> OpenBlob(const Descriptor& desc) = 0;
  // Raw stream of bytes [offset, offset + length) of a blob, not verified; the
  // reader yields exactly `length` bytes or fails. Lets a copy fetch a large
  // blob over several connections and resume a broken read where it stopped.
  // kRangeNotSatisfiable when this source cannot serve ranges (the default;
  // a registry that answers 200 instead of 206): callers fall back to OpenBlob.
  virtual Result<std::unique_ptr<Reader>> OpenBlobRange(const Descriptor& desc, uint64_t offset,
                                                        uint64_t length);
  // Hands bytes [offset, offset + length) of a blob to `sink` in order as
  // they arrive (each span valid during the call), not verified. An error
  // from the sink stops the transfer and is returned; so is a transfer that
  // breaks or ends early (kTransient) — the sink has counted what arrived,
  // so the caller resumes after it. kRangeNotSatisfiable as OpenBlobRange.
  // The default reads OpenBlobRange's stream through a per-thread buffer; a
  // registry source hands libcurl's receive buffer to the sink (no copy).
  using ByteSink = std::function<Result<void>(std::span<const std::byte>)>;
  virtual Result<void> StreamBlobRange(const Descriptor& desc, uint64_t offset, uint64_t length,
                                       const ByteSink& sink);
  // Appends bytes [offset, offset + length) of a blob to `out` (length ≤ its
  // free space) through StreamBlobRange. On failure `out` keeps the bytes
  // that did arrive, so the caller resumes after them.
  Result<void> ReadBlobRange(const Descriptor& desc, uint64_t offset, uint64_t length, Buffer& out);
  virtual std::string Describe() const = 0;
  // A small blob (config), read whole and verified against desc.
  Result<std::string> ReadBlob(const Descriptor& desc, size_t limit = 64 << 20);
};

// Reads `length` bytes of `r` (at most out's free space) into `out`. A stream
// that ends early is kTransient; `out` keeps what arrived either way.
Result<void> ReadFull(Reader& r, Buffer& out, uint64_t length);

// Buffers of `buffer_size` bytes a writer may keep when it keeps at most
// `retained_bytes` (BlobWriter::max_retained_bytes) in buffers at least half
// full, with room for one oversized or partial buffer per chunk.
inline size_t RetainedBufferCount(uint64_t retained_bytes, size_t buffer_size) {
  if (retained_bytes == 0) return 0;
  const uint64_t half = std::max<uint64_t>(buffer_size / 2, 1);
  return static_cast<size_t>((retained_bytes + half - 1) / half) + 2;
}

}  // namespace mc::oci
