#include "oci/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace mc::oci {

Result<size_t> SpanReader::Read(std::span<std::byte> out) {
  size_t n = std::min(out.size(), data_.size() - pos_);
  std::memcpy(out.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

Result<size_t> StringReader::Read(std::span<std::byte> out) {
  size_t n = std::min(out.size(), data_.size() - pos_);
  std::memcpy(out.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

FdReader::~FdReader() {
  if (own_ && fd_ >= 0) ::close(fd_);
}

Result<size_t> FdReader::Read(std::span<std::byte> out) {
  for (;;) {
    ssize_t n = ::read(fd_, out.data(), out.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    return Fail(ErrorCode::kIo, "reading " + name_ + ": " + ErrnoMessage(errno));
  }
}

FdWriter::~FdWriter() {
  if (own_ && fd_ >= 0) ::close(fd_);
}

Result<void> FdWriter::Write(std::span<const std::byte> data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrorCode::kIo, "writing " + name_ + ": " + ErrnoMessage(errno));
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return {};
}

Result<void> FdWriter::Close() {
  if (fd_ < 0) return {};
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) {
    return Fail(ErrorCode::kIo, "syncing " + name_ + ": " + ErrnoMessage(errno));
  }
  if (own_) {
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return Fail(ErrorCode::kIo, "closing " + name_ + ": " + ErrnoMessage(errno));
  }
  return {};
}

Result<std::unique_ptr<Reader>> OpenFile(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    ErrorCode code = err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidInput;
    return Fail(code, "cannot open " + path.string() + ": " + ErrnoMessage(err));
  }
  return std::make_unique<FdReader>(fd, path.string());
}

Result<std::string> ReadFileToString(const std::filesystem::path& path, size_t limit) {
  MC_ASSIGN_OR_RETURN(auto reader, OpenFile(path));
  auto data = ReadAll(*reader, limit);
  if (!data) return Wrap(data.error(), path.string());
  return data;
}

Result<void> WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                             unsigned mode) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    return Fail(ErrorCode::kIo, "creating a temp file in " + dir.string() + ": " +
                                    ErrnoMessage(errno));
  }
  FdWriter w(fd, tmpl);
  auto fail = [&](const Error& e) {
    ::unlink(tmpl.c_str());
    return std::unexpected(e);
  };
  if (::fchmod(fd, mode) != 0) {
    return fail(Error{ErrorCode::kIo, "chmod " + tmpl + ": " + ErrnoMessage(errno)});
  }
  if (auto r = w.Write(AsBytes(data)); !r) return fail(r.error());
  if (auto r = w.Close(); !r) return fail(r.error());
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    return fail(Error{ErrorCode::kIo, "renaming " + tmpl + " to " + path.string() + ": " +
                                          ErrnoMessage(errno)});
  }
  // Make the rename itself durable.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

Result<uint64_t> Copy(Reader& r, Writer& w, size_t buffer_size) {
  std::vector<std::byte> buf(buffer_size);
  uint64_t total = 0;
  for (;;) {
    MC_ASSIGN_OR_RETURN(size_t n, r.Read(buf));
    if (n == 0) return total;
    MC_RETURN_IF_ERROR(w.Write(std::span(buf.data(), n)));
    total += n;
  }
}

Result<std::string> ReadAll(Reader& r, size_t limit) {
  std::string out;
  std::vector<std::byte> buf(64 << 10);
  for (;;) {
    MC_ASSIGN_OR_RETURN(size_t n, r.Read(buf));
    if (n == 0) return out;
    if (out.size() + n > limit) {
      return Fail(ErrorCode::kInvalidInput,
                  "content larger than the limit of " + std::to_string(limit) + " bytes");
    }
    out.append(AsString(std::span(buf.data(), n)));
  }
}

}  // namespace mc::oci
