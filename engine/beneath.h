// Writing beneath a directory without ever leaving it.
//
// `download` writes a Hub listing's paths into DIR. A directory inside DIR
// that is a symlink (DIR/sub → /elsewhere) would carry those writes outside
// DIR, so every component below DIR is opened with openat(O_NOFOLLOW |
// O_DIRECTORY) from the one before, and files are created, renamed and
// removed relative to those descriptors: a link where a directory is
// expected is an error naming it, never followed. DIR itself may be reached
// through links (that is the user's choice of DIR).
//
// Thread guarantee: a DirFd is immutable once opened and may be used from any
// thread; the functions are thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "oci/error.h"

namespace mc::engine {

// An open directory and the path it was opened as (for messages). Move-only.
class DirFd {
 public:
  DirFd() = default;
  DirFd(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~DirFd();
  DirFd(DirFd&& other) noexcept;
  DirFd& operator=(DirFd&& other) noexcept;
  DirFd(const DirFd&) = delete;
  DirFd& operator=(const DirFd&) = delete;

  int get() const { return fd_; }
  const std::string& path() const { return path_; }
  // path()/name, for messages.
  std::string Child(std::string_view name) const;

 private:
  int fd_ = -1;
  std::string path_;
};

// Opens `dir` itself, creating it (and its parents) when `create`.
// kNotFound when missing and !create; kInvalidInput when not a directory or
// not accessible.
oci::Result<DirFd> OpenRootDir(const std::filesystem::path& dir, bool create);

// Opens root/rel ("" = root again), one component at a time with
// openat(O_NOFOLLOW | O_DIRECTORY), creating missing directories (0755) when
// `create`. `rel` must be a relative path of plain names ("", ".", ".." and
// a leading "/" are kInvalidInput). A component that is a symlink or not a
// directory: kInvalidInput naming it; a missing one without `create`:
// kNotFound.
oci::Result<DirFd> OpenBeneath(const DirFd& root, std::string_view rel, bool create);

// A state directory (build cache, upload sessions): `root`, which the user
// chose and which may be reached through links, and `rel` below it, which we
// own and open without following any link (OpenBeneath).
struct StateDir {
  std::filesystem::path root;
  std::string rel;  // "" = root itself

  std::filesystem::path path() const { return rel.empty() ? root : root / rel; }
  // Opens it, creating what is missing when `create`.
  oci::Result<DirFd> Open(bool create) const;
};

// Reads dir/name (not following a link there), at most `max` bytes
// (kInvalidInput beyond). kNotFound when missing.
oci::Result<std::string> ReadFileAt(const DirFd& dir, const std::string& name,
                                    size_t max = 64 << 20);

// Replaces dir/name atomically: a new temporary file in dir (O_EXCL), the
// data, fsync when `sync`, renameat over name (a link at name is replaced,
// not followed). The temporary file is removed on failure. `mode` before the umask.
oci::Result<void> WriteFileAtomicAt(const DirFd& dir, const std::string& name,
                                    std::string_view data, bool sync = true, unsigned mode = 0644);

}  // namespace mc::engine
