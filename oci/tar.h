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
#include <memory>
#include <string>
#include <string_view>
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
  // For kFile: the file to read (a followed symlink is resolved to its target
  // here). Empty when the caller supplies the content.
  std::filesystem::path source;
  uint64_t size = 0;     // kFile only
  uint32_t mode = 0644;  // already normalised: 0755 dirs and executables, else 0644
  // kSymlink: the link target as stored; kHardlink: the archive name of the
  // first entry with the same inode. A kHardlink keeps `source` and `size` of
  // the file it links to (the tar header carries size 0), so that PlanLayers can
  // turn it back into a kFile.
  std::string link_target;
};

// The archive order: bytewise, except that '/' sorts below every other byte,
// i.e. names compare component by component ("a" < "a/b" < "a-b"). Parents
// come before their children and every directory's subtree is contiguous (the
// order of a depth-first walk with sorted directory listings, as
// `tar --sort=name` gives).
bool TarNameLess(std::string_view a, std::string_view b);
// Sorts entries by TarNameLess on their names.
void SortTarEntries(std::vector<TarEntry>& entries);

struct ScanOptions {
  // Where DIR lands in the image, e.g. "/models" → entries "models", "models/...".
  std::string prefix = "/models";
  // --follow-symlinks: pack what links leaving DIR point to instead of
  // refusing them (see ScanDirectory).
  bool follow_symlinks = false;
};

// Walks `dir` and returns every entry, including the prefix directories, sorted
// by TarNameLess. Errors (kInvalidInput, with the offending path and what to
// do): DIR not a directory (kNotFound when missing), dangling symlinks, symlink
// loops, symlinks leaving DIR (below), FIFOs, sockets, devices, names
// starting with ".wh.", unreadable files or directories.
// Symlinks are resolved one component at a time:
//  - one whose chain reads no link outside DIR and ends inside DIR is kept as
//    a symlink (its text as is when relative and without "..", else
//    rewritten relative to the link's directory);
//  - one that leaves DIR (ends outside, or passes through a link outside DIR
//    even if it comes back) is refused, naming the link, its target and
//    --follow-symlinks, except when DIR is (inside) a Hugging Face cache
//    snapshot, <cache>/models--ORG--NAME/snapshots/<rev>, and the link
//    resolves, through links inside models--ORG--NAME only, to a regular file
//    under models--ORG--NAME/blobs/: that becomes a kFile whose `source` is
//    the blob;
//  - with follow_symlinks, a leaving link becomes what it points to: a kFile
//    (source = the resolved file) or a directory walked with every link below
//    it dereferenced (a link to a directory being walked: a loop, refused).
// Regular files with the same device and inode: the first in archive order
// is a kFile, the others kHardlink.
// Blocking (filesystem); thread-safe (no shared state).
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
// no atime/ctime; the bytes do not depend on the process locale. Entries are
// written in the order given (sorting is the caller's job: ScanDirectory and
// PlanLayers return sorted lists). Blocking (reads files, calls the Writer);
// one thread at a time.
class TarWriter {
 public:
  TarWriter(Writer& out, TarOptions options);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  // Appends one entry. For kFile the content is read from `content` when given,
  // else from entry.source (opened before the header is written: a missing
  // file, kNotFound, an unreadable one, kInvalidInput, or one whose size is no
  // longer entry.size, kIo, fails with the stream still usable). Exactly
  // entry.size bytes must arrive and the file's size and mtime must not change
  // while it is read, otherwise kIo ("changed while it was read"), and the
  // stream is unusable: every later call returns that error and nothing more
  // is written (no end-of-archive blocks, even from the destructor). Errors of
  // the Writer are returned as they are. kHardlink entries get size 0 in the
  // tar. Content is read in 1 MiB blocks and passed to the Writer without a
  // further copy.
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
// Each layer is sorted by TarNameLess and repeats the parent directories of
// what it holds (a directory goes only where something under it goes; an
// empty one stays in path order). With max_layer_size, symlinks stay in path
// order with the files; in per-file mode they go to the shared layer, which
// comes first and is left out when empty. A hard link goes to the layer of its
// target (costing no bytes), so it never ends up apart from it; one whose
// target is not a kFile of the list is stored as a regular file instead.
// Returns at least one layer.
std::vector<std::vector<TarEntry>> PlanLayers(const std::vector<TarEntry>& entries,
                                              uint64_t max_layer_size, bool layer_per_file,
                                              uint64_t small_file_limit = 16 << 20);

}  // namespace mc::oci
