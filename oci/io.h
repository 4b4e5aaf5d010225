// Byte streams: the one vocabulary every stage of mc-engine speaks.
//
// A Reader is pulled, a Writer is pushed; both move bytes in spans so that no
// stage owns another's buffers. Neither is safe for concurrent use: one thread
// at a time per object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "oci/error.h"

namespace mc::oci {

using Bytes = std::vector<std::byte>;

inline std::span<const std::byte> AsBytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}
inline std::string_view AsString(std::span<const std::byte> b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

class Reader {
 public:
  virtual ~Reader() = default;
  // Reads up to out.size() bytes; 0 means end of stream. Blocks until data or end.
  virtual Result<size_t> Read(std::span<std::byte> out) = 0;
};

class Writer {
 public:
  virtual ~Writer() = default;
  // Writes all of `data` or fails.
  virtual Result<void> Write(std::span<const std::byte> data) = 0;
  // Memory where the next Write's bytes may be produced in place: a producer
  // that fills memory anyway (a read(2), a decompressor) fills a prefix of
  // this span and passes that prefix to Write, which then takes the bytes
  // without copying them. Valid until the next call on this Writer. Empty
  // when the writer has no such memory (the default); Write always accepts
  // bytes from anywhere.
  virtual std::span<std::byte> WriteSpace() { return {}; }
  // Flushes and finishes the stream. Writing after Close is an error.
  virtual Result<void> Close() { return {}; }
};

// A source that can be opened again from the start (files, registry blobs,
// deterministic rebuilds): the unit of whole-blob retries.
using Opener = std::function<Result<std::unique_ptr<Reader>>()>;

// Reads from a span the caller keeps alive.
class SpanReader final : public Reader {
 public:
  explicit SpanReader(std::span<const std::byte> data) : data_(data) {}
  Result<size_t> Read(std::span<std::byte> out) override;

 private:
  std::span<const std::byte> data_;
  size_t pos_ = 0;
};

// Owns its bytes.
class StringReader final : public Reader {
 public:
  explicit StringReader(std::string data) : data_(std::move(data)) {}
  Result<size_t> Read(std::span<std::byte> out) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

// Collects everything written into a string.
class StringWriter final : public Writer {
 public:
  Result<void> Write(std::span<const std::byte> data) override {
    out_.append(AsString(data));
    return {};
  }
  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Counts and discards.
class NullWriter final : public Writer {
 public:
  Result<void> Write(std::span<const std::byte> data) override {
    bytes_ += data.size();
    return {};
  }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t bytes_ = 0;
};

// Reads a file descriptor it owns (or borrows when own_fd is false).
class FdReader final : public Reader {
 public:
  FdReader(int fd, std::string name, bool own_fd = true)
      : fd_(fd), name_(std::move(name)), own_(own_fd) {}
  ~FdReader() override;
  FdReader(const FdReader&) = delete;
  FdReader& operator=(const FdReader&) = delete;
  Result<size_t> Read(std::span<std::byte> out) override;

 private:
  int fd_;
  std::string name_;
  bool own_;
};

// Writes to a file descriptor it owns (or borrows).
class FdWriter final : public Writer {
 public:
  FdWriter(int fd, std::string name, bool own_fd = true)
      : fd_(fd), name_(std::move(name)), own_(own_fd) {}
  ~FdWriter() override;
  FdWriter(const FdWriter&) = delete;
  FdWriter& operator=(const FdWriter&) = delete;
  Result<void> Write(std::span<const std::byte> data) override;
  // fsyncs, then closes an owned descriptor.
  Result<void> Close() override;

 private:
  int fd_;
  std::string name_;
  bool own_;
};

// Opens a file for reading. kNotFound if missing, kInvalidInput if unreadable.
Result<std::unique_ptr<Reader>> OpenFile(const std::filesystem::path& path);

// Reads the whole file (for small JSON files). Refuses files over `limit`.
Result<std::string> ReadFileToString(const std::filesystem::path& path, size_t limit = 64 << 20);

// Writes `data` to `path` atomically: temp file in the same directory, fsync,
// rename. `mode` is applied with fchmod (not subject to the umask).
Result<void> WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                             unsigned mode = 0644);

// Copies until end of stream; returns the byte count. Does not Close `w`.
Result<uint64_t> Copy(Reader& r, Writer& w, size_t buffer_size = 1 << 20);

// Reads everything (at most `limit` bytes, else kInvalidInput).
Result<std::string> ReadAll(Reader& r, size_t limit = 64 << 20);

}  // namespace mc::oci
