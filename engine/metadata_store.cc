// publish-metadata.json, written safely by many UIDs.
//
// The seed pipeline broke when its tasks ran as different UIDs over one
// workspace: the first task wrote the file 0644 under its umask, and the next
// task could not update it. Tekton/OpenShift give every task of a run the same
// fsGroup (protocols.md 7.4), so the fix is to make everything group-owned and
// group-writable and never depend on who created what:
//
//  - The directory is 2775: group-writable, so any member may create the temp
//    file and rename it over the old one (rename needs write permission on the
//    directory, not on the file it replaces); setgid, so new files inherit the
//    group. We create it under a temp name, set mode and group, and rename it
//    into place, so no other writer ever sees it with the wrong mode.
//  - Files get their mode with fchmod, because the umask of whoever runs us
//    (022 in most images) would otherwise strip the group write bit, and their
//    group with fchown (a no-op when the setgid directory already gave it).
//  - The lock is a separate file that is never renamed: a flock on the data
//    file itself would be lost by the rename. Whoever finds the lock file
//    read-only still locks it through a read-only descriptor (flock does not
//    care about the open mode).
//  - We write the whole document to a temp file, fsync it, rename it, fsync the
//    directory: a crash leaves the old or the new document, never half of one.
#include "engine/metadata_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>

#include "oci/io.h"
#include "registry/log.h"

namespace mc::engine {
namespace {

using oci::ErrnoMessage;
using oci::Error;
using oci::ErrorCode;
using oci::Fail;
using oci::Result;

constexpr mode_t kDirMode = 02775;
constexpr mode_t kFileMode = 0664;
constexpr size_t kMaxDocument = 64 << 20;
constexpr char kNotSharedHint[] =
    " (the directory must be writable by every task's group: mode 2775 with the pod's fsGroup "
    "as its group; fix it with chgrp and chmod 2775)";

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Error IoError(const std::string& what, int err) {
  return Error{ErrorCode::kIo, what + ": " + ErrnoMessage(err), 0, std::nullopt};
}

// Gives `fd` group `gid` unless it has it already. A failure when the change
// is needed is an error: a file in the wrong group is the bug we exist to fix.
Result<void> SetGroup(int fd, const std::string& name, gid_t gid) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return std::unexpected(IoError("stat " + name, errno));
  if (st.st_gid == gid) return {};
  if (::fchown(fd, static_cast<uid_t>(-1), gid) != 0) {
    int err = errno;
    return Fail(ErrorCode::kIo, "cannot give " + name + " group " + std::to_string(gid) + ": " +
                                    ErrnoMessage(err) +
                                    " (run as a member of that group, or pass --group with one)");
  }
  return {};
}

// Creates `dir` (mode 2775, group `group` if set) unless it exists. Missing
// parents are created with the default mode (subject to the umask).
Result<void> EnsureDirectory(const std::filesystem::path& dir, std::optional<gid_t> group) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return {};
    return Fail(ErrorCode::kInvalidInput, dir.string() + " exists and is not a directory");
  }
  if (errno != ENOENT) return std::unexpected(IoError("stat " + dir.string(), errno));
  std::filesystem::path parent = dir.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return Fail(ErrorCode::kIo, "creating " + parent.string() + ": " + ec.message());

  std::string tmp = (parent / ("." + dir.filename().string() + ".tmp-XXXXXX")).string();
  if (!::mkdtemp(tmp.data())) {
    return std::unexpected(IoError("creating a directory in " + parent.string(), errno));
  }
  auto fail = [&](Error e) {
    ::rmdir(tmp.c_str());
    return std::unexpected(std::move(e));
  };
  // chown before chmod: the kernel may clear the setgid bit when the group changes.
  if (group && ::chown(tmp.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return fail(IoError("cannot give " + dir.string() + " group " + std::to_string(*group), errno));
  }
  if (::chmod(tmp.c_str(), kDirMode) != 0) return fail(IoError("chmod " + tmp, errno));
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    int err = errno;
    ::rmdir(tmp.c_str());
    // Another writer created it first: use theirs.
    if ((err == EEXIST || err == ENOTEMPTY) && std::filesystem::is_directory(dir, ec)) return {};
    return std::unexpected(IoError("creating " + dir.string(), err));
  }
  return {};
}

// Opens (creating if needed) and exclusively locks the lock file.
Result<Fd> LockDirectory(const std::filesystem::path& lock_path, gid_t gid) {
  int raw = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  int err = errno;
  if (raw < 0 && err == EACCES) {
    // Someone else's lock file we may only read (flock works on any descriptor).
    raw = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0 && errno != ENOENT) err = errno;
  }
  if (raw < 0) {
    Error e = IoError("opening lock file " + lock_path.string(), err);
    if (err == EACCES) e.message += kNotSharedHint;
    return std::unexpected(std::move(e));
  }
  Fd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return std::unexpected(IoError("stat " + lock_path.string(), errno));
  if (st.st_uid == ::geteuid()) {
    // Ours (just created, most likely): make it openable by the group.
    // Failures are tolerated: we can still lock it, and the data file's own
    // group and mode are enforced strictly in ReplaceFile.
    if (st.st_gid != gid && ::fchown(fd.get(), static_cast<uid_t>(-1), gid) != 0) {
      registry::Log()->debug("cannot give {} group {}", lock_path.string(), gid);
    }
    if ((st.st_mode & 07777) != kFileMode && ::fchmod(fd.get(), kFileMode) != 0) {
      registry::Log()->debug("cannot chmod {}", lock_path.string());
    }
  }
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return std::unexpected(IoError("locking " + lock_path.string(), errno));
  }
  return fd;
}

// Checks a parsed document: an object whose schemaVersion we understand.
Result<void> Validate(const nlohmann::json& doc, const std::filesystem::path& file) {
  if (!doc.is_object()) {
    return Fail(ErrorCode::kInvalidInput,
                file.string() + " is not a JSON object; fix or remove the file");
  }
  auto it = doc.find("schemaVersion");
  if (it == doc.end()) return {};
  if (!it->is_number_integer()) {
    return Fail(ErrorCode::kInvalidInput, file.string() + ": schemaVersion is not an integer");
  }
  if (it->get<int64_t>() > kMetadataSchemaVersion) {
    return Fail(ErrorCode::kInvalidInput, file.string() + ": schemaVersion " + it->dump() +
                                              " is newer than this mc-engine (" +
                                              std::to_string(kMetadataSchemaVersion) +
                                              "); use a newer mc-engine");
  }
  return {};
}

// Reads and validates the document; nullopt when the file does not exist.
Result<std::optional<nlohmann::json>> ReadDocument(const std::filesystem::path& file) {
  int raw = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return std::optional<nlohmann::json>();
    return std::unexpected(IoError("opening " + file.string(), errno));
  }
  oci::FdReader reader(raw, file.string());
  MC_ASSIGN_OR_RETURN(std::string text, oci::ReadAll(reader, kMaxDocument));
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return Fail(ErrorCode::kInvalidInput,
                file.string() + " is not valid JSON; fix or remove the file");
  }
  MC_RETURN_IF_ERROR(Validate(doc, file));
  return std::optional<nlohmann::json>(std::move(doc));
}

// Writes `text` to a temp file beside `file` (0664, group `gid`, fsync) and
// renames it over `file`. The temp file is removed on every failure.
Result<void> ReplaceFile(const std::filesystem::path& file, std::string_view text, gid_t gid) {
  std::filesystem::path dir = file.parent_path();
  std::string tmp = (dir / ("." + file.filename().string() + ".tmp-XXXXXX")).string();
  int raw = ::mkstemp(tmp.data());
  if (raw < 0) {
    int err = errno;
    Error e = IoError("creating a temp file in " + dir.string(), err);
    if (err == EACCES) e.message += kNotSharedHint;
    return std::unexpected(std::move(e));
  }
  oci::FdWriter writer(raw, tmp);
  auto fail = [&](Error e) {
    ::unlink(tmp.c_str());
    return std::unexpected(std::move(e));
  };
  if (auto r = SetGroup(raw, file.string(), gid); !r) return fail(r.error());
  if (::fchmod(raw, kFileMode) != 0) return fail(IoError("chmod " + tmp, errno));
  if (auto r = writer.Write(oci::AsBytes(text)); !r) return fail(r.error());
  if (auto r = writer.Close(); !r) return fail(r.error());  // fsync + close
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    return fail(IoError("renaming " + tmp + " to " + file.string(), errno));
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

// Splits "a.b.c" into segments; empty segments are invalid.
Result<std::vector<std::string>> SplitKey(std::string_view key) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = key.find('.', start);
    std::string_view part =
        key.substr(start, dot == std::string_view::npos ? key.npos : dot - start);
    if (part.empty()) {
      return Fail(ErrorCode::kInvalidInput, "invalid key \"" + std::string(key) +
                                                "\": use dotted names such as image.digest");
    }
    parts.emplace_back(part);
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

std::optional<size_t> ParseIndex(std::string_view s) {
  size_t n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return n;
}

// Walks to the node at `key`, creating objects on the way.
Result<nlohmann::json*> WalkCreating(nlohmann::json& doc, std::string_view key) {
  MC_ASSIGN_OR_RETURN(auto parts, SplitKey(key));
  nlohmann::json* node = &doc;
  for (const std::string& part : parts) {
    if (node->is_null()) *node = nlohmann::json::object();
    if (node->is_array()) {
      auto index = ParseIndex(part);
      if (!index || *index >= node->size()) {
        return Fail(ErrorCode::kInvalidInput, "key \"" + std::string(key) + "\": \"" + part +
                                                  "\" is not an index of the array there");
      }
      node = &(*node)[*index];
    } else if (node->is_object()) {
      node = &(*node)[part];
    } else {
      return Fail(
          ErrorCode::kInvalidInput,
          "key \"" + std::string(key) + "\": the value before \"" + part + "\" is not an object");
    }
  }
  return node;
}

}  // namespace

Result<MetadataStore> MetadataStore::Open(std::filesystem::path file, std::optional<gid_t> group) {
  if (file.empty() || !file.has_filename()) {
    return Fail(ErrorCode::kInvalidInput,
                "metadata file path \"" + file.string() + "\" does not name a file");
  }
  if (file.parent_path().empty()) file = std::filesystem::path(".") / file;
  return MetadataStore(std::move(file), group);
}

Result<nlohmann::json> MetadataStore::Get() const {
  MC_ASSIGN_OR_RETURN(auto doc, ReadDocument(file_));
  if (!doc)
    return Fail(ErrorCode::kNotFound, "metadata file " + file_.string() + " does not exist");
  return std::move(*doc);
}

Result<nlohmann::json> MetadataStore::Update(const Mutator& mutate) {
  std::filesystem::path dir = file_.parent_path();
  MC_RETURN_IF_ERROR(EnsureDirectory(dir, group_));
  gid_t gid;
  if (group_) {
    gid = *group_;
  } else {
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0)
      return std::unexpected(IoError("stat " + dir.string(), errno));
    gid = st.st_gid;
  }
  MC_ASSIGN_OR_RETURN(Fd lock,
                      LockDirectory(dir / ("." + file_.filename().string() + ".lock"), gid));
  MC_ASSIGN_OR_RETURN(auto existing, ReadDocument(file_));
  nlohmann::json doc = existing ? std::move(*existing) : nlohmann::json::object();
  if (auto r = mutate(doc); !r) return std::unexpected(r.error());
  MC_RETURN_IF_ERROR(Validate(doc, file_));
  doc["schemaVersion"] = kMetadataSchemaVersion;
  std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  MC_RETURN_IF_ERROR(ReplaceFile(file_, text, gid));
  return doc;  // the lock is released when `lock` closes
}

Result<void> MetadataStore::SetSection(std::string_view key, nlohmann::json value) {
  auto r = Update([&](nlohmann::json& doc) { return SetPath(doc, key, std::move(value)); });
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> MetadataStore::MergeSection(std::string_view key, const nlohmann::json& value) {
  auto r = Update([&](nlohmann::json& doc) -> Result<void> {
    MC_ASSIGN_OR_RETURN(nlohmann::json * node, WalkCreating(doc, key));
    if (node->is_null()) *node = nlohmann::json::object();
    if (!node->is_object() || !value.is_object()) {
      return Fail(ErrorCode::kInvalidInput, "cannot merge into \"" + std::string(key) +
                                                "\": both it and the value must be objects");
    }
    node->update(value);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> MetadataStore::Append(std::string_view key, nlohmann::json value) {
  auto r = Update([&](nlohmann::json& doc) { return AppendPath(doc, key, std::move(value)); });
  if (!r) return std::unexpected(r.error());
  return {};
}

const nlohmann::json* GetPath(const nlohmann::json& doc, std::string_view key) {
  auto parts = SplitKey(key);
  if (!parts) return nullptr;
  const nlohmann::json* node = &doc;
  for (const std::string& part : *parts) {
    if (node->is_object()) {
      auto it = node->find(part);
      if (it == node->end()) return nullptr;
      node = &*it;
    } else if (node->is_array()) {
      // "-1" is the last element, "-2" the one before (reading only).
      bool from_end = part.size() > 1 && part[0] == '-';
      auto index = ParseIndex(from_end ? std::string_view(part).substr(1) : part);
      if (!index || *index >= node->size() + (from_end ? 1 : 0) || (from_end && *index == 0)) {
        return nullptr;
      }
      node = &(*node)[from_end ? node->size() - *index : *index];
    } else {
      return nullptr;
    }
  }
  return node;
}

Result<void> SetPath(nlohmann::json& doc, std::string_view key, nlohmann::json value) {
  MC_ASSIGN_OR_RETURN(nlohmann::json * node, WalkCreating(doc, key));
  *node = std::move(value);
  return {};
}

Result<void> AppendPath(nlohmann::json& doc, std::string_view key, nlohmann::json value) {
  MC_ASSIGN_OR_RETURN(nlohmann::json * node, WalkCreating(doc, key));
  if (node->is_null()) *node = nlohmann::json::array();
  if (!node->is_array()) {
    return Fail(ErrorCode::kInvalidInput,
                "cannot append to \"" + std::string(key) + "\": it exists and is not an array");
  }
  node->push_back(std::move(value));
  return {};
}

nlohmann::json ParseLooseValue(std::string_view value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::string(value);
  return j;
}

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace mc::engine
