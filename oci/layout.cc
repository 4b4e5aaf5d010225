// OCI image layout reader and writer.
//
// We follow go-containerregistry's layout/write.go: a blob goes to a temp file
// in the blob directory (same filesystem, so rename is atomic), is synced, and
// is renamed to its digest once the producer tells us the digest. The digest
// comes from the producer (lazy-digest contract in store.h), so the layout
// never hashes a layer twice; a copy verifies on the way in (VerifyingReader).
//
// index.json is updated by read-modify-write under an flock on
// DIR/.index.json.lock, then replaced by rename: concurrent writers of the
// same layout (two builds tagging one layout) cannot lose each other's tags.
//
// A writer holds an flock on its temp blob until it is renamed or removed.
// A run that dies without unwinding (SIGKILL, power loss) leaves its
// `.tmp-*` behind; the next Open removes every temp blob nobody holds (and
// nobody wrote to for a minute), so
// the leftovers of failed runs do not pile up, while a concurrent writer's
// file is left alone. Complete blobs of a failed run (a layer or config whose
// manifest was never written) keep their digest name and are reused by the
// next build that produces them.
//
// Writes never go through links inside the layout: blobs/, blobs/sha256/,
// index.json and oci-layout must not be symlinks (DIR itself may be).
#include "oci/layout.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "oci/media_types.h"

namespace mc::oci {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kLayoutFile = R"({"imageLayoutVersion":"1.0.0"})";

Error IoError(const std::string& what, int err) {
  return Error{ErrorCode::kIo, what + ": " + ErrnoMessage(err), 0, std::nullopt};
}

class LayoutBlobWriter final : public BlobWriter {
 public:
  LayoutBlobWriter(LayoutDestination* dest, std::string tmp, int fd)
      : dest_(dest), tmp_(std::move(tmp)), out_(fd, tmp_) {}
  ~LayoutBlobWriter() override { Abort(); }

  Result<void> Write(std::span<const std::byte> data) override {
    if (finished_) return Fail(ErrorCode::kInternal, "write after commit");
    auto r = out_.Write(data);
    if (!r) {
      return std::unexpected(r.error().Wrap("writing blob into " + dest_->Describe()));
    }
    written_ += data.size();
    return {};
  }

  Result<void> Commit(const Digest& digest, uint64_t size) override {
    if (finished_) return Fail(ErrorCode::kInternal, "blob committed twice");
    if (size != written_) {
      Abort();
      return Fail(ErrorCode::kVerificationFailed, "blob " + digest.Short() + ": wrote " +
                                                      std::to_string(written_) +
                                                      " bytes, expected " + std::to_string(size));
    }
    if (auto r = out_.Close(); !r) {
      Abort();
      return std::unexpected(r.error());
    }
    fs::path final_path = dest_->BlobPath(digest);
    struct stat st;
    if (::stat(final_path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == size) {
      ::unlink(tmp_.c_str());  // already there: never rewrite an existing blob
    } else if (::rename(tmp_.c_str(), final_path.c_str()) != 0) {
      int err = errno;
      Abort();
      return std::unexpected(IoError("renaming blob to " + final_path.string(), err));
    }
    finished_ = true;
    return {};
  }

  void Abort() override {
    if (finished_) return;
    finished_ = true;
    ::unlink(tmp_.c_str());
  }

 private:
  LayoutDestination* dest_;
  std::string tmp_;
  FdWriter out_;
  uint64_t written_ = 0;
  bool finished_ = false;
};

// Holds an flock for the lifetime of the object.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Bytes [offset, offset + length) of a file, read with pread.
class FileRangeReader final : public Reader {
 public:
  FileRangeReader(int fd, std::string name, uint64_t offset, uint64_t length)
      : fd_(fd), name_(std::move(name)), pos_(offset), end_(offset + length) {}
  ~FileRangeReader() override { ::close(fd_); }
  FileRangeReader(const FileRangeReader&) = delete;
  FileRangeReader& operator=(const FileRangeReader&) = delete;

  Result<size_t> Read(std::span<std::byte> out) override {
    if (pos_ >= end_ || out.empty()) return 0;
    size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), end_ - pos_));
    ssize_t n;
    do {
      n = ::pread(fd_, out.data(), want, static_cast<off_t>(pos_));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return std::unexpected(IoError("reading " + name_, errno));
    if (n == 0) {
      return Fail(ErrorCode::kVerificationFailed,
                  name_ + " ends at byte " + std::to_string(pos_) + ", before the requested range");
    }
    pos_ += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }

 private:
  int fd_;
  std::string name_;
  uint64_t pos_;
  uint64_t end_;
};

Result<void> EnsureDir(const fs::path& p) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec) {
    return Fail(ErrorCode::kIo, "cannot create directory " + p.string() + ": " + ec.message());
  }
  return {};
}

// kInvalidInput when `p` is a symlink: the layout writes only beneath DIR.
Result<void> NotALink(const fs::path& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    return Fail(ErrorCode::kInvalidInput,
                p.string() +
                    " is a symlink; an oci: layout is written only through real "
                    "directories and files: replace it or choose another layout");
  }
  return {};
}

// Removes the temp blobs of runs that are gone: no flock held on them and
// untouched for a minute (a writer closes its file, dropping the lock, just
// before renaming it; the age keeps us out of that window).
void RemoveStaleTempBlobs(const fs::path& blob_dir) {
  const time_t cutoff = ::time(nullptr) - 60;
  DIR* d = ::opendir(blob_dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (struct dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n.starts_with(".tmp-")) stale.emplace_back(n);
  }
  ::closedir(d);
  for (const std::string& n : stale) {
    fs::path p = blob_dir / n;
    int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < cutoff &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      ::unlink(p.c_str());
    }
    ::close(fd);
  }
}

}  // namespace

Result<Index> ReadLayoutIndex(const fs::path& dir) {
  auto bytes = ReadFileToString(dir / "index.json");
  if (!bytes) {
    if (bytes.error().code == ErrorCode::kNotFound) {
      return Fail(ErrorCode::kNotFound,
                  "no OCI layout at " + dir.string() + " (index.json missing)");
    }
    return std::unexpected(bytes.error());
  }
  return ParseIndex(*bytes, dir.string() + "/index.json");
}

Result<std::unique_ptr<LayoutDestination>> LayoutDestination::Open(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return Fail(ErrorCode::kInvalidInput,
                "destination " + dir.string() + " exists and is not a directory");
  }
  for (const char* part : {"blobs", "blobs/sha256", "index.json", "oci-layout"}) {
    MC_RETURN_IF_ERROR(NotALink(dir / part));
  }
  if (fs::exists(dir / "index.json", ec) && !fs::exists(dir / "oci-layout", ec)) {
    return Fail(ErrorCode::kInvalidInput,
                dir.string() + " has an index.json but no oci-layout file: not an OCI layout");
  }
  MC_RETURN_IF_ERROR(EnsureDir(dir / "blobs" / "sha256"));
  RemoveStaleTempBlobs(dir / "blobs" / "sha256");
  if (!fs::exists(dir / "oci-layout", ec)) {
    MC_RETURN_IF_ERROR(WriteFileAtomic(dir / "oci-layout", kLayoutFile));
  }
  if (!fs::exists(dir / "index.json", ec)) {
    Index empty;
    MC_RETURN_IF_ERROR(WriteFileAtomic(dir / "index.json", SerializeIndex(empty)));
  }
  return std::unique_ptr<LayoutDestination>(new LayoutDestination(dir));
}

fs::path LayoutDestination::BlobPath(const Digest& d) const {
  return dir_ / "blobs" / "sha256" / d.hex();
}

Result<bool> LayoutDestination::Exists(const Digest& digest) {
  struct stat st;
  if (::stat(BlobPath(digest).c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return std::unexpected(IoError("stat " + BlobPath(digest).string(), errno));
}

Result<std::unique_ptr<BlobWriter>> LayoutDestination::Begin(const BlobHint& /*hint*/) {
  std::string tmpl = (dir_ / "blobs" / "sha256" / ".tmp-XXXXXX").string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return std::unexpected(IoError("creating a temp blob in " + dir_.string(), errno));
  ::fchmod(fd, 0644);
  // Held until the writer closes the file: marks it as in use (see Open).
  while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
  }
  return std::make_unique<LayoutBlobWriter>(this, tmpl, fd);
}

Result<void> LayoutDestination::PutChildManifest(const RawManifest& manifest) {
  MC_ASSIGN_OR_RETURN(bool have, Exists(manifest.digest));
  if (have) return {};
  MC_ASSIGN_OR_RETURN(auto w, Begin(BlobHint{}));
  MC_RETURN_IF_ERROR(w->Write(AsBytes(manifest.bytes)));
  return w->Commit(manifest.digest, manifest.bytes.size());
}

Result<void> LayoutDestination::PutManifest(const RawManifest& manifest,
                                            const std::optional<std::string>& tag) {
  // The manifest blob first: index.json must never name a missing blob.
  MC_RETURN_IF_ERROR(PutChildManifest(manifest));
  std::lock_guard guard(index_mu_);
  FileLock lock(dir_ / ".index.json.lock");
  if (!lock.ok())
    return std::unexpected(IoError("locking " + dir_.string() + "/index.json", errno));
  MC_ASSIGN_OR_RETURN(Index index, ReadLayoutIndex(dir_));
  Descriptor desc = manifest.ToDescriptor();
  // An artifact's type goes on its index.json entry too (image-spec
  // descriptor.md "artifactType"), so that tools listing a layout can tell a
  // ModelPack artifact from an image without opening it.
  if (manifest.media_type == media::kOciManifest) {
    if (auto m = ParseManifest(manifest.bytes); m && m->artifact_type)
      desc.artifact_type = m->artifact_type;
  }
  std::vector<Descriptor> kept;
  for (auto& d : index.manifests) {
    auto name = d.annotations.find(std::string(kRefNameAnnotation));
    bool same_tag = tag && name != d.annotations.end() && name->second == *tag;
    bool same_untagged = !tag && name == d.annotations.end() && d.digest == desc.digest;
    if (!same_tag && !same_untagged) kept.push_back(std::move(d));
  }
  if (tag) desc.annotations[std::string(kRefNameAnnotation)] = *tag;
  kept.push_back(desc);
  index.manifests = std::move(kept);
  return WriteFileAtomic(dir_ / "index.json", SerializeIndex(index));
}

Result<std::unique_ptr<LayoutSource>> LayoutSource::Open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Fail(ErrorCode::kNotFound, "no OCI layout at " + dir.string());
  }
  if (!fs::exists(dir / "oci-layout", ec)) {
    return Fail(ErrorCode::kInvalidInput,
                dir.string() + " is not an OCI layout (no oci-layout file)");
  }
  MC_RETURN_IF_ERROR(ReadLayoutIndex(dir));
  return std::unique_ptr<LayoutSource>(new LayoutSource(dir));
}

Result<RawManifest> LayoutSource::GetManifest(const std::string& tag_or_digest) {
  Descriptor desc;
  if (tag_or_digest.starts_with("sha256:")) {
    MC_ASSIGN_OR_RETURN(desc.digest, Digest::Parse(tag_or_digest));
    desc.size = -1;
  } else {
    MC_ASSIGN_OR_RETURN(Index index, ReadLayoutIndex(dir_));
    const Descriptor* found = nullptr;
    if (tag_or_digest.empty() && index.manifests.size() == 1) {
      found = &index.manifests[0];
    } else {
      std::string want = tag_or_digest.empty() ? "latest" : tag_or_digest;
      for (const auto& d : index.manifests) {
        auto it = d.annotations.find(std::string(kRefNameAnnotation));
        if (it != d.annotations.end() && it->second == want) found = &d;
      }
    }
    if (!found) {
      if (tag_or_digest.empty() && index.manifests.size() > 1) {
        return Fail(ErrorCode::kInvalidInput,
                    Describe() + " holds several images: name one as oci:DIR:TAG");
      }
      return Fail(ErrorCode::kNotFound, "no image tagged \"" +
                                            (tag_or_digest.empty() ? "latest" : tag_or_digest) +
                                            "\" in " + Describe());
    }
    desc = *found;
  }
  MC_ASSIGN_OR_RETURN(auto reader, OpenBlob(desc));
  MC_ASSIGN_OR_RETURN(std::string bytes, ReadAll(*reader, 8 << 20));
  RawManifest raw;
  raw.bytes = std::move(bytes);
  raw.digest = Digest::Of(raw.bytes);
  if (raw.digest != desc.digest) {
    return Fail(ErrorCode::kVerificationFailed, "manifest " + desc.digest.Short() + " in " +
                                                    Describe() + " does not match its digest");
  }
  if (!desc.media_type.empty()) {
    raw.media_type = desc.media_type;
  } else {
    MC_ASSIGN_OR_RETURN(raw.media_type, DetectManifestMediaType(raw.bytes));
  }
  return raw;
}

Result<std::unique_ptr<Reader>> LayoutSource::OpenBlob(const Descriptor& desc) {
  fs::path p = dir_ / "blobs" / "sha256" / desc.digest.hex();
  auto r = OpenFile(p);
  if (!r && r.error().code == ErrorCode::kNotFound) {
    return Fail(ErrorCode::kNotFound,
                "blob " + desc.digest.Short() + " missing from " + Describe());
  }
  return r;
}

Result<std::unique_ptr<Reader>> LayoutSource::OpenBlobRange(const Descriptor& desc, uint64_t offset,
                                                            uint64_t length) {
  fs::path p = dir_ / "blobs" / "sha256" / desc.digest.hex();
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Fail(ErrorCode::kNotFound,
                  "blob " + desc.digest.Short() + " missing from " + Describe());
    }
    return std::unexpected(IoError("opening " + p.string(), errno));
  }
  return std::make_unique<FileRangeReader>(fd, p.string(), offset, length);
}

}  // namespace mc::oci
