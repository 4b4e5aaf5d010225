// skopeo's dir: transport, read and written the way containers/image's
// directory transport does (version 1.1: blobs named by hex digest only).
#include "oci/dir_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "oci/media_types.h"

namespace mc::oci {
namespace fs = std::filesystem;

namespace {

Error IoError(const std::string& what, int err) {
  return Error{ErrorCode::kIo, what + ": " + ErrnoMessage(err), 0, std::nullopt};
}

class DirBlobWriter final : public BlobWriter {
 public:
  DirBlobWriter(fs::path dir, std::string tmp, int fd)
      : dir_(std::move(dir)), tmp_(std::move(tmp)), out_(fd, tmp_) {}
  ~DirBlobWriter() override { Abort(); }

  Result<void> Write(std::span<const std::byte> data) override {
    if (finished_) return Fail(ErrorCode::kInternal, "write after commit");
    auto r = out_.Write(data);
    if (!r) return std::unexpected(r.error().Wrap("writing blob into dir:" + dir_.string()));
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
    fs::path final_path = dir_ / digest.hex();
    if (::rename(tmp_.c_str(), final_path.c_str()) != 0) {
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
  fs::path dir_;
  std::string tmp_;
  FdWriter out_;
  uint64_t written_ = 0;
  bool finished_ = false;
};

bool HasVersionFile(const fs::path& dir) {
  auto v = ReadFileToString(dir / "version", 4096);
  return v && v->starts_with("Directory Transport Version: 1.");
}

}  // namespace

Result<std::unique_ptr<DirDestination>> DirDestination::Open(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) {
      return Fail(ErrorCode::kInvalidInput, "dir:" + dir.string() + " is not a directory");
    }
    if (!fs::is_empty(dir, ec)) {
      if (!HasVersionFile(dir)) {
        return Fail(ErrorCode::kInvalidInput,
                    "dir:" + dir.string() +
                        " is not empty and is not a dir: image (no version file); give an empty "
                        "or new directory");
      }
      // Another image's files would mix with this one's (skopeo empties it too).
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        fs::remove_all(e.path(), ec);
        if (ec) return std::unexpected(IoError("emptying " + dir.string(), ec.value()));
      }
    }
  } else {
    fs::create_directories(dir, ec);
    if (ec) return std::unexpected(IoError("creating " + dir.string(), ec.value()));
  }
  MC_RETURN_IF_ERROR(WriteFileAtomic(dir / "version", kDirVersion));
  return std::unique_ptr<DirDestination>(new DirDestination(dir));
}

Result<bool> DirDestination::Exists(const Digest& digest) {
  struct stat st;
  return ::stat((dir_ / digest.hex()).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::unique_ptr<BlobWriter>> DirDestination::Begin(const BlobHint& /*hint*/) {
  std::string tmpl = (dir_ / ".tmp-XXXXXX").string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return std::unexpected(IoError("creating a blob in " + dir_.string(), errno));
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return std::make_unique<DirBlobWriter>(dir_, tmpl, fd);
}

Result<void> DirDestination::PutManifest(const RawManifest& manifest,
                                         const std::optional<std::string>& /*tag*/) {
  return WriteFileAtomic(dir_ / "manifest.json", manifest.bytes);
}

Result<void> DirDestination::PutChildManifest(const RawManifest& manifest) {
  return WriteFileAtomic(dir_ / (manifest.digest.hex() + ".manifest.json"), manifest.bytes);
}

Result<std::unique_ptr<DirSource>> DirSource::Open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Fail(ErrorCode::kNotFound, "dir:" + dir.string() + " does not exist");
  }
  if (!HasVersionFile(dir)) {
    return Fail(ErrorCode::kInvalidInput,
                "dir:" + dir.string() + " is not a dir: image (no version file)");
  }
  return std::unique_ptr<DirSource>(new DirSource(dir));
}

Result<RawManifest> DirSource::GetManifest(const std::string& tag_or_digest) {
  fs::path path = dir_ / "manifest.json";
  std::optional<Digest> want;
  if (!tag_or_digest.empty()) {
    if (!tag_or_digest.starts_with("sha256:")) {
      return Fail(ErrorCode::kInvalidInput,
                  Describe() + " has no tags (asked for \"" + tag_or_digest + "\")");
    }
    MC_ASSIGN_OR_RETURN(want, Digest::Parse(tag_or_digest));
    fs::path child = dir_ / (want->hex() + ".manifest.json");
    std::error_code ec;
    if (fs::exists(child, ec)) path = child;
  }
  auto bytes = ReadFileToString(path, 8 << 20);
  if (!bytes) {
    if (bytes.error().code == ErrorCode::kNotFound) {
      return Fail(ErrorCode::kNotFound, Describe() + " has no " + path.filename().string());
    }
    return std::unexpected(bytes.error());
  }
  RawManifest raw;
  raw.bytes = std::move(*bytes);
  raw.digest = Digest::Of(raw.bytes);
  if (want && raw.digest != *want) {
    return Fail(ErrorCode::kNotFound, "no manifest " + want->Short() + " in " + Describe());
  }
  MC_ASSIGN_OR_RETURN(raw.media_type, DetectManifestMediaType(raw.bytes));
  return raw;
}

Result<std::unique_ptr<Reader>> DirSource::OpenBlob(const Descriptor& desc) {
  auto r = OpenFile(dir_ / desc.digest.hex());
  if (!r && r.error().code == ErrorCode::kNotFound) {
    return Fail(ErrorCode::kNotFound,
                "blob " + desc.digest.Short() + " missing from " + Describe());
  }
  return r;
}

}  // namespace mc::oci
