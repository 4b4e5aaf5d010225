// `mc-engine download hf://ORG/NAME[@REV] DIR`: a verified, resumable snapshot.
//
// Files are fetched by `jobs` worker threads; a file larger than one segment
// is split into ranged segments fetched in parallel. Bytes land in
// DIR/.mc-download/<key>.part and are hashed in file order as they arrive
// (sha256 + size for LFS files, git blob sha1 otherwise); the file is renamed
// to its final name only when the hash matches, so nothing unverified ever
// has a final name. A mismatch deletes the part file (kVerificationFailed).
//
// Resume state, all in DIR/.mc-download/:
//   manifest.json   the source, commit, and every file verified so far (path,
//                   size, oid): a re-run skips them without re-hashing;
//   <key>.json      per partial file: size, oid, segment size and the bytes
//                   done in each segment; a re-run rehashes the done bytes
//                   from disk and fetches only the rest.
// When everything is verified the per-file state is removed; manifest.json
// stays (it is what makes a re-run free).
//
// Blocking; uses its own worker threads; safe to call from one thread at a
// time per DIR (two processes on one DIR are not coordinated).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/hf_hub.h"
#include "engine/progress.h"
#include "oci/error.h"
#include "registry/transport.h"

namespace mc::engine {

inline constexpr std::string_view kDownloadStateDir = ".mc-download";

struct DownloadOptions {
  std::string source;  // hf://ORG/NAME[@REV]
  std::filesystem::path dir;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  int jobs = 8;
  uint64_t segment_size = 64ull << 20;
  HfClientOptions hub;
};

struct DownloadResult {
  std::string source;  // "hf://org/name"
  std::string repo_id;
  std::string revision;            // what was asked for ("main")
  std::string commit;              // what it resolved to
  size_t files = 0;                // files in the snapshot (after filtering)
  uint64_t bytes = 0;              // their total size
  size_t files_skipped = 0;        // already verified by an earlier run
  uint64_t bytes_transferred = 0;  // fetched over the network in this run
};

// Errors: kInvalidInput (bad source, DIR not writable, no file matches the
// filters), kUnauthorized / kNotFound (Hub errors, with what to do),
// kVerificationFailed (a file's bytes or size do not match: its part file is
// deleted), kNetwork (after retries), kIo, kCancelled (state kept for resume).
oci::Result<DownloadResult> Download(std::shared_ptr<registry::Transport> transport,
                                     const DownloadOptions& options, Progress* progress = nullptr);

// Streaming hash for verification: SHA-256 or git blob SHA-1
// ("blob <size>\0" + content). One thread at a time.
class FileHasher {
 public:
  // LFS files hash their content with sha256; others the git blob sha1.
  explicit FileHasher(const HfFile& file);
  ~FileHasher();
  FileHasher(const FileHasher&) = delete;
  FileHasher& operator=(const FileHasher&) = delete;
  void Update(std::span<const std::byte> data);
  // Lower-case hex of the digest of everything so far.
  std::string HexDigest() const;
  // The expected hex digest (lfs sha256 or git oid); "" = size only.
  const std::string& expected() const { return expected_; }

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  std::string expected_;
};

// Verifies `inner` (the whole file) against the listing on the way through,
// failing at end of stream with kVerificationFailed.
std::unique_ptr<oci::Reader> NewHfVerifyingReader(std::unique_ptr<oci::Reader> inner,
                                                  const HfFile& file, std::string what);

}  // namespace mc::engine
