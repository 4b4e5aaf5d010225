// Deterministic layer tars (design.md "Image produced", protocols.md 3.10).
//
// Two steps: ScanDirectory walks a model directory once, applies the symlink,
// hard link and file-type policy, and returns the sorted entry list with
// normalised metadata; TarWriter then streams any entry list into a Writer.
// Splitting them lets the layer planner group entries into several layers and
// lets a download stream file contents into the tar before they reach disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "oci/error.h"
#include "oci/io.h"

namespace mc::oci {

struct TarEntry {
  enum class Type { kDirectory, kFile, kSymlink, kHardlink };
  Type type = Type::kFile;
  // Name in the archive: relative, no leading "/" or "./", no trailing "/",
  // e.g. "models/config.json".
  std::string name;
  // For kFile: the file to read (a symlink that leaves DIR is resolved to its
  // target here). Empty when the caller supplies the content.
  std::filesystem::path source;
  uint64_t size = 0;     // kFile only
  uint32_t mode = 0644;  // already normalised: 0755 dirs and executables, else 0644
  // kSymlink: the link target as stored; kHardlink: the archive name of the
  // first entry with the same inode.
  std::string link_target;
};

struct ScanOptions {
  // Where DIR lands in the image, e.g. "/models" → entries "models", "models/...".
  std::string prefix = "/models";
};

// Walks `dir` and returns every entry, including the prefix directories, sorted
// bytewise by name with parents before children. Errors (kInvalidInput, with
// the offending path and what to do): DIR missing or not a directory, dangling
// symlinks, symlinks to directories outside DIR, FIFOs, sockets, devices,
// names starting with ".wh.", unreadable files.
Result<std::vector<TarEntry>> ScanDirectory(const std::filesystem::path& dir,
                                            const ScanOptions& options);

// Normalises a --prefix value ("/models", "models/", "/a/b") to "models" or
// "a/b". kInvalidInput for "", "/", "..", or components starting with ".wh.".
Result<std::string> NormalizePrefix(std::string_view prefix);

// SOURCE_DATE_EPOCH when set to a valid integer, else 0.
int64_t DefaultMtime();

struct TarOptions {
  int64_t mtime = 0;  // every entry's mtime
};

// Streams a POSIX pax (restricted) tar: plain ustar headers, a pax header only
// for long or non-ASCII names and sizes >= 8 GiB (the ustar size field then
// still carries the real size). uid/gid 0, empty uname/gname, no xattrs,
// no atime/ctime. One thread at a time.
class TarWriter {
 public:
  TarWriter(Writer& out, TarOptions options);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  // Appends one entry. For kFile the content is read from `content` when given,
  // else from entry.source; exactly entry.size bytes must arrive, otherwise
  // kIo ("changed while it was read") and the stream is unusable.
  Result<void> Add(const TarEntry& entry, Reader* content = nullptr);
  // Writes the end-of-archive blocks. The output ends there (no padding to 10 KiB
  // records beyond what the format needs).
  Result<void> Finish();
  uint64_t bytes_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits a sorted entry list into layers.
//  - max_layer_size > 0: files in path order, as few layers as possible, each
//    with at most max_layer_size bytes of file content (a larger single file
//    gets a layer of its own);
//  - layer_per_file: one layer per regular file, except that small files
//    (< small_file_limit) share one layer;
//  - neither: one layer with everything.
// Each layer repeats the parent directories of what it holds; a hard link whose
// target ends up in another layer is stored as a regular file instead.
std::vector<std::vector<TarEntry>> PlanLayers(const std::vector<TarEntry>& entries,
                                              uint64_t max_layer_size, bool layer_per_file,
                                              uint64_t small_file_limit = 16 << 20);

}  // namespace mc::oci
