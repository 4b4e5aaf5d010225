// Deterministic layer tars on libarchive (design.md "Image produced",
// protocols.md 3.10).
//
// Why pax_restricted: it writes plain ustar headers and adds a pax extended
// header only when ustar cannot say something (names over 100/155 bytes or
// non-ASCII, sizes >= 8 GiB). For big files its ustar size field still holds
// the real size (unterminated octal below 64 GiB, base-256 above), which older
// scanners such as Clair's tarfs need: they ignore the pax size and choke on a
// zero. Pax header names are "<dir>/PaxHeader/<base>" with no PID, so the
// output is a pure function of the entries.
//
// Determinism is ours to keep: we never hand libarchive a struct stat (no
// atime/ctime/birthtime, no uid or user names, no xattrs), we set the mtime
// from TarOptions, and we switch the calling thread to a UTF-8 locale around
// libarchive calls. Without that, libarchive converts names from the process
// locale, and in the "C" locale a non-ASCII name gets an extra
// "hdrcharset=BINARY" record: the same model would give different layers on
// differently configured machines.
//
// Speed: this is the hot path for 80 GB models. libarchive gets
// bytes_per_block 0, which makes it pass our buffers straight to the write
// callback (no re-blocking copy into 10 KiB records, and no padding of the last
// record: the archive ends after its two zero blocks). File contents are read
// with large read(2) calls into one reused, page-aligned buffer, with
// POSIX_FADV_SEQUENTIAL for a larger readahead window, straight into the
// Writer's memory when it offers some (Writer::WriteSpace: the layer
// pipeline's shard buffer; libarchive hands that pointer back to OnWrite
// unchanged) and otherwise into one reused buffer; the only copy is the
// kernel's.
//
// A file that changes while it is read would give a layer whose header size
// does not match its content, or content that matches no moment of the file.
// We compare the size at open with the scanned one, count the bytes, probe for
// more at the end, and compare size and mtime after reading: any difference is
// kIo, and the stream is marked unusable so no complete-looking tar follows.
#include "oci/tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace mc::oci {
namespace {

constexpr size_t kReadBlock = 1 << 20;  // 1, 2, 4 MiB measured alike; 1 MiB stays in L2

// Switches the calling thread to a UTF-8 LC_CTYPE for its lifetime.
class Utf8LocaleScope {
 public:
  Utf8LocaleScope() {
    static const locale_t utf8 = [] {
      locale_t l = ::newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t{});
      if (l == locale_t{}) l = ::newlocale(LC_CTYPE_MASK, "en_US.UTF-8", locale_t{});
      return l;
    }();
    if (utf8 != locale_t{}) old_ = ::uselocale(utf8);
  }
  ~Utf8LocaleScope() {
    if (old_ != locale_t{}) ::uselocale(old_);
  }
  Utf8LocaleScope(const Utf8LocaleScope&) = delete;
  Utf8LocaleScope& operator=(const Utf8LocaleScope&) = delete;

 private:
  locale_t old_{};
};

std::string ChangedMessage(const TarEntry& entry, std::string_view detail) {
  std::string where = entry.source.empty() ? "content of " + entry.name : entry.source.string();
  return where + " changed while it was read (" + std::string(detail) +
         "); make sure nothing modifies the model while it is packed";
}

// An open source file with its stat at open time.
struct SourceFile {
  int fd = -1;
  struct stat st {};
  ~SourceFile() {
    if (fd >= 0) ::close(fd);
  }
};

Result<void> OpenSource(const TarEntry& entry, SourceFile& f) {
  f.fd = ::open(entry.source.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    int err = errno;
    if (err == EACCES) {
      return Fail(ErrorCode::kInvalidInput, "file " + entry.source.string() +
                                                " is not readable by this user; run `chmod a+r " +
                                                entry.source.string() + "`");
    }
    return Fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                "cannot open " + entry.source.string() + ": " + ErrnoMessage(err));
  }
  if (::fstat(f.fd, &f.st) != 0) {
    return Fail(ErrorCode::kIo,
                "cannot stat " + entry.source.string() + ": " + ErrnoMessage(errno));
  }
  if (!S_ISREG(f.st.st_mode)) {
    return Fail(ErrorCode::kInvalidInput, entry.source.string() + " is no longer a regular file");
  }
  if (static_cast<uint64_t>(f.st.st_size) != entry.size) {
    return Fail(ErrorCode::kIo, entry.source.string() + " changed since it was scanned (" +
                                    std::to_string(entry.size) + " bytes then, " +
                                    std::to_string(f.st.st_size) + " now); retry the build");
  }
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return {};
}

Result<size_t> ReadFd(int fd, std::span<std::byte> out, const TarEntry& entry) {
  for (;;) {
    ssize_t n = ::read(fd, out.data(), out.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) {
      return Fail(ErrorCode::kIo, "reading " + entry.source.string() + ": " + ErrnoMessage(errno));
    }
  }
}

}  // namespace

struct TarWriter::Impl {
  Writer& out;
  TarOptions options;
  struct archive* a = nullptr;
  struct archive_entry* e = nullptr;
  uint64_t bytes = 0;
  std::optional<Error> error;  // the first failure; later calls return it
  bool discard = false;  // destroying without Finish, or the Writer failed: write nothing more
  bool finished = false;
  std::byte* buffer = nullptr;

  Impl(Writer& w, TarOptions o) : out(w), options(o) {}
  ~Impl() {
    if (a != nullptr) {
      discard = true;
      archive_write_free(a);
    }
    if (e != nullptr) archive_entry_free(e);
    std::free(buffer);
  }

  // A Writer failure is recorded and the rest of the stream discarded, but
  // libarchive is told the write succeeded: an archive in its FATAL state
  // skips its close on free and leaks its output state (libarchive 3.6).
  // Every call into libarchive checks `error` afterwards (Check).
  static la_ssize_t OnWrite(struct archive*, void* self, const void* data, size_t n) {
    auto* impl = static_cast<Impl*>(self);
    if (impl->discard) return static_cast<la_ssize_t>(n);
    auto r = impl->out.Write({static_cast<const std::byte*>(data), n});
    if (!r) {
      if (!impl->error) impl->error = r.error();
      impl->discard = true;
      return static_cast<la_ssize_t>(n);
    }
    impl->bytes += n;
    return static_cast<la_ssize_t>(n);
  }

  // The Writer's failure, if one happened during the last libarchive call.
  Result<void> Check() const {
    if (error) return std::unexpected(*error);
    return {};
  }

  // Records a failure that leaves the stream unusable and returns it.
  std::unexpected<Error> Break(Error err) {
    if (!error) error = std::move(err);
    return std::unexpected(*error);
  }
  std::unexpected<Error> ArchiveFailure(std::string_view what) {
    // A Writer failure is the real cause; libarchive's message only echoes it.
    if (error) return std::unexpected(*error);
    const char* msg = archive_error_string(a);
    return Break(Error{ErrorCode::kInternal,
                       std::string(what) + ": libarchive: " + (msg ? msg : "unknown error")});
  }

  Result<void> Open();
  Result<void> WriteHeader(const TarEntry& entry);
  Result<void> WriteData(std::span<const std::byte> data);
  Result<void> CopyFile(const TarEntry& entry, SourceFile& f);
  Result<void> CopyReader(const TarEntry& entry, Reader& r);
  std::span<std::byte> Buffer() { return {buffer, kReadBlock}; }
  // Where to read the next at most `left` content bytes: the Writer's own
  // memory when it offers some (no copy in OnWrite), else Buffer(). Never
  // more than kReadBlock, so the bytes are still in cache when the Writer
  // hashes them.
  std::span<std::byte> ReadTarget(uint64_t left) {
    std::span<std::byte> target = discard ? std::span<std::byte>{} : out.WriteSpace();
    if (target.empty()) target = Buffer();
    return target.first(
        static_cast<size_t>(std::min<uint64_t>({left, target.size(), uint64_t{kReadBlock}})));
  }
};

Result<void> TarWriter::Impl::Open() {
  a = archive_write_new();
  e = archive_entry_new();
  buffer = static_cast<std::byte*>(std::aligned_alloc(4096, kReadBlock));
  if (a == nullptr || e == nullptr || buffer == nullptr) {
    return Break(Error{ErrorCode::kInternal, "out of memory for the tar writer"});
  }
  if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      archive_write_add_filter_none(a) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
      archive_write_open(a, this, nullptr, &Impl::OnWrite, nullptr) != ARCHIVE_OK) {
    return ArchiveFailure("setting up the tar writer");
  }
  return {};
}

Result<void> TarWriter::Impl::WriteHeader(const TarEntry& entry) {
  Utf8LocaleScope utf8;
  archive_entry_clear(e);
  archive_entry_copy_pathname(e, entry.name.c_str());
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  archive_entry_set_mtime(e, options.mtime, 0);
  archive_entry_set_perm(e, entry.mode & 07777);
  switch (entry.type) {
    case TarEntry::Type::kDirectory:
      archive_entry_set_filetype(e, AE_IFDIR);
      break;
    case TarEntry::Type::kFile:
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_size(e, static_cast<la_int64_t>(entry.size));
      break;
    case TarEntry::Type::kSymlink:
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_copy_symlink(e, entry.link_target.c_str());
      break;
    case TarEntry::Type::kHardlink:
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_copy_hardlink(e, entry.link_target.c_str());
      break;
  }
  // ARCHIVE_WARN: a name that is not valid UTF-8, stored as raw bytes
  // (hdrcharset=BINARY) — still deterministic.
  if (archive_write_header(a, e) < ARCHIVE_WARN)
    return ArchiveFailure("writing tar header of " + entry.name);
  return Check();
}

Result<void> TarWriter::Impl::WriteData(std::span<const std::byte> data) {
  la_ssize_t n = archive_write_data(a, data.data(), data.size());
  if (n < 0 || static_cast<size_t>(n) != data.size()) return ArchiveFailure("writing tar data");
  return Check();
}

Result<void> TarWriter::Impl::CopyFile(const TarEntry& entry, SourceFile& f) {
  std::span<std::byte> buf = Buffer();
  uint64_t left = entry.size;
  while (left > 0) {
    auto chunk = ReadTarget(left);
    auto n = ReadFd(f.fd, chunk, entry);
    if (!n) return Break(n.error());
    if (*n == 0) {
      return Break(Error{ErrorCode::kIo, ChangedMessage(entry, "it ended " + std::to_string(left) +
                                                                   " bytes early")});
    }
    MC_RETURN_IF_ERROR(WriteData(chunk.first(*n)));
    left -= *n;
  }
  auto more = ReadFd(f.fd, buf.first(1), entry);
  if (!more) return Break(more.error());
  struct stat after;
  if (*more != 0 || ::fstat(f.fd, &after) != 0 || after.st_size != f.st.st_size ||
      after.st_mtim.tv_sec != f.st.st_mtim.tv_sec ||
      after.st_mtim.tv_nsec != f.st.st_mtim.tv_nsec) {
    return Break(Error{ErrorCode::kIo, ChangedMessage(entry, "its size or mtime differs")});
  }
  return {};
}

Result<void> TarWriter::Impl::CopyReader(const TarEntry& entry, Reader& r) {
  std::span<std::byte> buf = Buffer();
  uint64_t left = entry.size;
  while (left > 0) {
    auto chunk = ReadTarget(left);
    auto n = r.Read(chunk);
    if (!n) return Break(n.error());
    if (*n == 0) {
      return Break(Error{ErrorCode::kIo, ChangedMessage(entry, "it ended " + std::to_string(left) +
                                                                   " bytes early")});
    }
    MC_RETURN_IF_ERROR(WriteData(chunk.first(*n)));
    left -= *n;
  }
  auto more = r.Read(buf.first(1));
  if (!more) return Break(more.error());
  if (*more != 0) {
    return Break(
        Error{ErrorCode::kIo,
              ChangedMessage(entry, "it has more than " + std::to_string(entry.size) + " bytes")});
  }
  return {};
}

TarWriter::TarWriter(Writer& out, TarOptions options)
    : impl_(std::make_unique<Impl>(out, options)) {
  (void)impl_->Open();  // a failure is kept in impl_->error and returned by Add/Finish
}

TarWriter::~TarWriter() = default;

uint64_t TarWriter::bytes_written() const { return impl_->bytes; }

Result<void> TarWriter::Add(const TarEntry& entry, Reader* content) {
  Impl& m = *impl_;
  if (m.error) return std::unexpected(*m.error);
  if (m.finished) return Fail(ErrorCode::kInternal, "TarWriter::Add after Finish");
  if (entry.name.empty() || entry.name.front() == '/' || entry.name.back() == '/') {
    return Fail(ErrorCode::kInternal, "bad tar entry name \"" + entry.name + "\"");
  }
  SourceFile file;
  bool from_file = entry.type == TarEntry::Type::kFile && content == nullptr;
  if (from_file) {
    if (entry.source.empty()) {
      return Fail(ErrorCode::kInternal, "tar entry " + entry.name + " has no content");
    }
    // Opened before the header is written: a failure here leaves the stream usable.
    MC_RETURN_IF_ERROR(OpenSource(entry, file));
  }
  MC_RETURN_IF_ERROR(m.WriteHeader(entry));
  if (entry.type == TarEntry::Type::kFile) {
    MC_RETURN_IF_ERROR(from_file ? m.CopyFile(entry, file) : m.CopyReader(entry, *content));
  }
  if (archive_write_finish_entry(m.a) != ARCHIVE_OK) {
    return m.ArchiveFailure("finishing tar entry " + entry.name);
  }
  return m.Check();
}

Result<void> TarWriter::Finish() {
  Impl& m = *impl_;
  if (m.error) return std::unexpected(*m.error);
  if (m.finished) return {};
  if (archive_write_close(m.a) != ARCHIVE_OK) return m.ArchiveFailure("finishing the tar");
  MC_RETURN_IF_ERROR(m.Check());
  m.finished = true;
  return {};
}

Result<std::string> NormalizePrefix(std::string_view prefix) {
  std::string out;
  size_t pos = 0;
  while (pos <= prefix.size()) {
    size_t slash = std::min(prefix.find('/', pos), prefix.size());
    std::string_view part = prefix.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == ".." || part.starts_with(".wh.") || part.find('\0') != std::string_view::npos) {
      return Fail(ErrorCode::kInvalidInput, "invalid --prefix \"" + std::string(prefix) +
                                                "\": component \"" + std::string(part) +
                                                "\" is not allowed; use a path such as /models");
    }
    if (!out.empty()) out += '/';
    out += part;
  }
  if (out.empty()) {
    return Fail(ErrorCode::kInvalidInput, "invalid --prefix \"" + std::string(prefix) +
                                              "\": it must name a directory such as /models");
  }
  return out;
}

int64_t DefaultMtime() {
  const char* v = std::getenv("SOURCE_DATE_EPOCH");
  if (v == nullptr || *v == '\0') return 0;
  int64_t t = 0;
  const char* end = v + std::strlen(v);
  auto [p, ec] = std::from_chars(v, end, t);
  if (ec != std::errc() || p != end || t < 0) return 0;
  return t;
}

}  // namespace mc::oci
