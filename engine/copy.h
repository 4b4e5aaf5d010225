// The copy engine: one image (or index) from any ImageSource to any
// ImageDestination — oci:↔oci:, oci:↔docker:// and the registry-to-registry
// mirror all go through CopyImage.
//
// For every manifest reached from the top (all children of an index, or the
// one child matching a platform), every blob is made present at the
// destination: already there → skip; the writer reports done() → mounted;
// else streamed through a VerifyingReader. Manifests are stored bottom-up with
// their exact bytes (children by digest, the top one last under the tag), so
// the destination's digests equal the source's, and a manifest is stored only
// after every blob it references has been verified present.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/progress.h"
#include "oci/image.h"
#include "oci/store.h"

namespace mc::engine {

struct CopyOptions {
  // nullopt: every child of an index. Set: only the matching child, which
  // becomes the top manifest (kNotFound naming the platforms there are otherwise).
  std::optional<oci::Platform> platform;
  // Blobs transferred at once over the whole copy (children of an index run in
  // parallel and share this budget). 0 = 4.
  int jobs = 0;
  // Repository on the destination's registry to mount blobs from; set by the
  // caller only when source and destination are on the same registry host.
  std::optional<std::string> mount_from;
  Progress* progress = nullptr;
  // A whole blob is retried this many times after a kTransient/kNetwork failure
  // (the source can always be reopened); a verification failure is never retried.
  int retry_times = 3;
  // Large blobs: read with `range_streams` parallel ranged reads of
  // `range_chunk` bytes each, reordered in front of the sequential upload.
  // At most `range_streams` chunks per blob and `max_ranged_blobs` such blobs
  // are in flight (plus the one being consumed), which bounds memory
  // (default 2 × 5 × 8 MiB; the destination's upload buffers a chunk too).
  // Directory for per-blob upload state (resume_slot.h): a copy interrupted by
  // SIGINT/SIGTERM, kill -9 or a lost connection continues its blob uploads
  // where the destination registry says they stopped ("" = no cross-run resume).
  std::string resume_dir;
  uint64_t range_threshold = 64ull << 20;
  uint64_t range_chunk = 8ull << 20;
  int range_streams = 4;
  // Bytes/s below which one stream is too slow and the others join (0: all
  // streams from the start). 256 MiB/s: what a near registry gives one
  // connection; a far one (latency-capped TCP window) gives far less.
  uint64_t range_fan_out_below = 256ull << 20;
  int max_ranged_blobs = 2;
};

struct CopyResult {
  oci::RawManifest manifest;     // the top manifest as stored at the destination
  size_t blobs_present = 0;      // already at the destination
  size_t blobs_mounted = 0;      // made present without a byte sent (mount)
  size_t blobs_copied = 0;       // streamed
  uint64_t bytes_copied = 0;     // bytes streamed
  size_t manifests = 0;          // manifests stored (children + top)
  bool already_present = false;  // the destination held the whole image
  bool tagged_existing = false;  // ... and the copy put the tag on it
};

// Copies `tag_or_digest` of `src` to `dest`, tagging the top manifest with
// `tag` (nullopt: by digest only). Blocks until done; spawns its own threads
// and joins them before returning. Errors: those of the source and
// destination, wrapped with which side and which blob failed;
// kVerificationFailed when a blob's bytes do not match its descriptor (that
// blob is aborted and no manifest referencing it is stored); kNotFound when
// no child matches the platform; kCancelled on SIGINT/SIGTERM.
oci::Result<CopyResult> CopyImage(oci::ImageSource& src, const std::string& tag_or_digest,
                                  oci::ImageDestination& dest,
                                  const std::optional<std::string>& tag,
                                  const CopyOptions& options = {});

// Makes one blob of `src` present at `dest` exactly as CopyImage does for
// each blob of an image: already there → nothing; options.mount_from → a
// mount when the registry allows it; else streamed through the same ranged,
// resuming and verifying reader, retried after transient failures. `build`
// uses it for the layers of its base image. Errors as CopyImage's.
oci::Result<void> CopyBlob(oci::ImageSource& src, const oci::Descriptor& desc,
                           oci::ImageDestination& dest, const CopyOptions& options = {});

// A Reader yielding the whole blob `desc` of `src` in order, fetched as
// parallel ranged reads of `chunk` bytes by `streams` workers into pooled
// buffers (streams + 1 of them: copy_range.cc); a broken range read is resumed from where it
// stopped (up to `retry_times` times per chunk). Not verified (wrap it in a
// VerifyingReader). Returns kRangeNotSatisfiable when `src` cannot serve
// ranges (the caller falls back to OpenBlob). desc.size must be known.
// The reader is for one thread; its worker threads stop when it is destroyed.
oci::Result<std::unique_ptr<oci::Reader>> OpenParallelRangeReader(oci::ImageSource& src,
                                                                  const oci::Descriptor& desc,
                                                                  uint64_t chunk, int streams,
                                                                  int retry_times = 3);

}  // namespace mc::engine
