// Writes beneath a directory (see beneath.h).
//
// Why component by component rather than openat2(RESOLVE_BENEATH): openat2
// needs Linux 5.6 and is filtered by some container seccomp profiles, and
// RESOLVE_BENEATH still follows links that stay beneath, while we want a
// link where a directory is expected to be an error the user sees. The walk
// below gives the same guarantee everywhere: each step is relative to a
// descriptor of a directory we already checked, and O_NOFOLLOW makes the
// kernel refuse a link as the last component of each step (ELOOP), which we
// turn into a message naming it.
#include "engine/beneath.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <utility>

namespace mc::engine {

using oci::ErrorCode;
using oci::Fail;

DirFd::~DirFd() {
  if (fd_ >= 0) ::close(fd_);
}

DirFd::DirFd(DirFd&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

DirFd& DirFd::operator=(DirFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

std::string DirFd::Child(std::string_view name) const {
  if (path_.empty() || path_.back() == '/') return path_ + std::string(name);
  return path_ + "/" + std::string(name);
}

oci::Result<DirFd> OpenRootDir(const std::filesystem::path& dir, bool create) {
  if (create) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return Fail(ErrorCode::kInvalidInput, "cannot create " + dir.string() + ": " + ec.message());
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Fail(ErrorCode::kNotFound, dir.string() + " does not exist");
    return Fail(ErrorCode::kInvalidInput,
                "cannot open directory " + dir.string() + ": " + oci::ErrnoMessage(err));
  }
  return DirFd(fd, dir.string());
}

oci::Result<DirFd> OpenBeneath(const DirFd& root, std::string_view rel, bool create) {
  if (!rel.empty() && rel.front() == '/') {
    return Fail(ErrorCode::kInvalidInput, "\"" + std::string(rel) + "\" is not a relative path");
  }
  int cur = ::dup(root.get());
  if (cur < 0) return Fail(ErrorCode::kIo, "dup: " + oci::ErrnoMessage(errno));
  std::string shown = root.path();
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t slash = rel.find('/', pos);
    std::string name(
        rel.substr(pos, slash == std::string_view::npos ? rel.size() - pos : slash - pos));
    pos = slash == std::string_view::npos ? rel.size() : slash + 1;
    if (name.empty() && pos < rel.size()) continue;  // "a//b"
    if (name.empty()) break;                         // trailing "/"
    if (name == "." || name == "..") {
      ::close(cur);
      return Fail(ErrorCode::kInvalidInput,
                  "\"" + std::string(rel) + "\" has a \"" + name + "\" component");
    }
    shown = shown.empty() || shown.back() == '/' ? shown + name : shown + "/" + name;
    int next = ::openat(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur, name.c_str(), 0755) != 0 && errno != EEXIST) {
        int err = errno;
        ::close(cur);
        return Fail(ErrorCode::kIo, "cannot create " + shown + ": " + oci::ErrnoMessage(err));
      }
      next = ::openat(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      int err = errno;
      struct stat st;
      bool is_link =
          ::fstatat(cur, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
      ::close(cur);
      if (is_link) {
        return Fail(ErrorCode::kInvalidInput,
                    shown +
                        " is a symlink where a directory is expected; nothing is written "
                        "through links below " +
                        root.path() +
                        ": replace it with a real directory or choose another directory");
      }
      if (err == ENOENT) return Fail(ErrorCode::kNotFound, shown + " does not exist");
      if (err == ENOTDIR) {
        return Fail(ErrorCode::kInvalidInput,
                    shown + " is not a directory; remove it or choose another directory");
      }
      return Fail(ErrorCode::kInvalidInput, "cannot open " + shown + ": " + oci::ErrnoMessage(err));
    }
    ::close(cur);
    cur = next;
  }
  return DirFd(cur, shown);
}

oci::Result<DirFd> StateDir::Open(bool create) const {
  MC_ASSIGN_OR_RETURN(DirFd top, OpenRootDir(root, create));
  if (rel.empty()) return top;
  return OpenBeneath(top, rel, create);
}

oci::Result<std::string> ReadFileAt(const DirFd& dir, const std::string& name, size_t max) {
  // O_NONBLOCK: a FIFO planted there must not hang the run.
  int fd = ::openat(dir.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Fail(ErrorCode::kNotFound, dir.Child(name) + " does not exist");
    if (err == ELOOP) {
      return Fail(ErrorCode::kInvalidInput,
                  dir.Child(name) + " is a symbolic link; it is not followed");
    }
    return Fail(ErrorCode::kInvalidInput,
                "cannot open " + dir.Child(name) + ": " + oci::ErrnoMessage(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(ErrorCode::kInvalidInput, dir.Child(name) + " is not a regular file");
  }
  std::string out;
  char buf[64 << 10];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Fail(ErrorCode::kIo, "reading " + dir.Child(name) + ": " + oci::ErrnoMessage(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max) {
      ::close(fd);
      return Fail(ErrorCode::kInvalidInput, dir.Child(name) + " is larger than expected");
    }
  }
  ::close(fd);
  return out;
}

oci::Result<void> WriteFileAtomicAt(const DirFd& dir, const std::string& name,
                                    std::string_view data, bool sync, unsigned mode) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp = "." + name + ".tmp-" + std::to_string(::getpid()) + "-" +
                    std::to_string(counter.fetch_add(1));
  int fd = ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    static_cast<mode_t>(mode));
  if (fd < 0) {
    return Fail(ErrorCode::kIo,
                "cannot create " + dir.Child(tmp) + ": " + oci::ErrnoMessage(errno));
  }
  auto fail = [&](const std::string& what) {
    int err = errno;
    ::close(fd);
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    return Fail(ErrorCode::kIo, what + " " + dir.Child(name) + ": " + oci::ErrnoMessage(err));
  };
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("writing");
    done += static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0) return fail("syncing");
  if (::close(fd) != 0) {
    fd = -1;
    int err = errno;
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    return Fail(ErrorCode::kIo, "writing " + dir.Child(name) + ": " + oci::ErrnoMessage(err));
  }
  if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
    int err = errno;
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    return Fail(ErrorCode::kIo, "renaming into " + dir.Child(name) + ": " + oci::ErrnoMessage(err));
  }
  return {};
}

}  // namespace mc::engine
