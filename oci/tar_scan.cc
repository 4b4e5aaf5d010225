// Scanning a model directory into tar entries (design.md "Image produced",
// protocols.md 3.10).
//
// Why a walker of our own instead of archive_read_disk: libarchive's disk
// reader captures xattrs (security.selinux), ACLs and file flags by default,
// and its symlink modes are all-or-nothing, while we need one policy per link:
//  - a link whose resolved target lies inside DIR stays a link, so the image
//    holds the same tree (its text is rewritten only when, read literally from
//    the image, it would leave DIR: absolute, or ".." above DIR);
//  - a link leaving DIR to a regular file is stored as that file's content:
//    a Hugging Face cache snapshot is a tree of links into ../../blobs/, and
//    packing it must give the model, not a tree of dangling links;
//  - everything else (dangling links, links to outside directories, FIFOs,
//    sockets, devices) has no meaning in a model image and is refused, as are
//    `.wh.*` names, which an unpacker would take for whiteouts.
// We lstat every name once, never follow directory links while walking (so
// the walk cannot loop), and sort at the end, so the result does not depend on
// readdir order. Unreadable files are reported here rather than halfway
// through an 80 GB upload.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <map>
#include <utility>

#include "oci/tar.h"

namespace mc::oci {
namespace {

namespace fs = std::filesystem;

struct Scanned {
  TarEntry entry;
  dev_t dev = 0;
  ino_t ino = 0;
  bool maybe_linked = false;  // a regular file (not a resolved symlink) with nlink > 1
};

uint32_t NormalMode(mode_t mode) { return (mode & 0111) != 0 ? 0755 : 0644; }

std::string JoinName(std::string_view parent, std::string_view child) {
  if (parent.empty()) return std::string(child);
  std::string out(parent);
  out += '/';
  out += child;
  return out;
}

class Scanner {
 public:
  Scanner(std::string root, std::string prefix)
      : root_(std::move(root)), prefix_(std::move(prefix)) {}

  Result<std::vector<TarEntry>> Run();

 private:
  Result<void> WalkDir(const std::string& rel);
  Result<void> AddName(const std::string& rel);
  Result<void> AddSymlink(const std::string& rel, const std::string& full);
  Result<void> CheckReadable(const std::string& path, bool dir) const;
  void Push(const std::string& rel, TarEntry entry, const struct stat* st = nullptr);
  std::string Full(const std::string& rel) const {
    if (rel.empty()) return root_;
    return root_ == "/" ? "/" + rel : root_ + "/" + rel;
  }
  std::string ArchiveName(const std::string& rel) const { return JoinName(prefix_, rel); }
  bool Inside(std::string_view real) const {
    return real == root_ || (real.starts_with(root_) && real.size() > root_.size() &&
                             (root_ == "/" || real[root_.size()] == '/'));
  }

  std::string root_;    // realpath of DIR
  std::string prefix_;  // normalised, e.g. "models"
  std::vector<Scanned> found_;
};

Result<void> Scanner::CheckReadable(const std::string& path, bool dir) const {
  int want = dir ? (R_OK | X_OK) : R_OK;
  if (::faccessat(AT_FDCWD, path.c_str(), want, AT_EACCESS) == 0) return {};
  int err = errno;
  if (err == EACCES) {
    return Fail(ErrorCode::kInvalidInput, std::string(dir ? "directory " : "file ") + path +
                                              " is not readable by this user; run `chmod a+r" +
                                              (dir ? "x " : " ") + path +
                                              "` (images must be readable by any UID)");
  }
  return Fail(ErrorCode::kInvalidInput, "cannot access " + path + ": " + ErrnoMessage(err));
}

void Scanner::Push(const std::string& rel, TarEntry entry, const struct stat* st) {
  entry.name = ArchiveName(rel);
  Scanned s{std::move(entry)};
  if (st != nullptr && st->st_nlink > 1) {
    s.dev = st->st_dev;
    s.ino = st->st_ino;
    s.maybe_linked = true;
  }
  found_.push_back(std::move(s));
}

Result<void> Scanner::WalkDir(const std::string& rel) {
  std::string full = Full(rel);
  MC_RETURN_IF_ERROR(CheckReadable(full, /*dir=*/true));
  DIR* d = ::opendir(full.c_str());
  if (d == nullptr) {
    return Fail(ErrorCode::kInvalidInput,
                "cannot read directory " + full + ": " + ErrnoMessage(errno));
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) {
    return Fail(ErrorCode::kIo, "reading directory " + full + ": " + ErrnoMessage(err));
  }
  // Visited in archive order, so the first error reported does not depend on readdir.
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    if (n.starts_with(".wh.")) {
      return Fail(ErrorCode::kInvalidInput,
                  Full(JoinName(rel, n)) +
                      ": names starting with \".wh.\" are OCI whiteouts and cannot be in a "
                      "model image; rename or remove it");
    }
    MC_RETURN_IF_ERROR(AddName(JoinName(rel, n)));
  }
  return {};
}

Result<void> Scanner::AddName(const std::string& rel) {
  std::string full = Full(rel);
  struct stat st;
  if (::lstat(full.c_str(), &st) != 0) {
    return Fail(ErrorCode::kIo, "cannot stat " + full + ": " + ErrnoMessage(errno));
  }
  TarEntry e;
  if (S_ISDIR(st.st_mode)) {
    e.type = TarEntry::Type::kDirectory;
    e.mode = 0755;
    Push(rel, std::move(e));
    return WalkDir(rel);
  }
  if (S_ISREG(st.st_mode)) {
    MC_RETURN_IF_ERROR(CheckReadable(full, /*dir=*/false));
    e.type = TarEntry::Type::kFile;
    e.source = full;
    e.size = static_cast<uint64_t>(st.st_size);
    e.mode = NormalMode(st.st_mode);
    Push(rel, std::move(e), &st);
    return {};
  }
  if (S_ISLNK(st.st_mode)) return AddSymlink(rel, full);
  const char* what = S_ISFIFO(st.st_mode)   ? "a FIFO"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                                            : "of an unknown file type";
  return Fail(ErrorCode::kInvalidInput, full + " is " + what +
                                            ", which cannot go into a model image; remove it "
                                            "from the model directory");
}

// The link text to store for a link at `rel` whose real target `real` is inside
// DIR: the original when it is relative and has no ".." (it then only descends
// through DIR, whose links the image keeps or rejects, so it resolves there as
// here); otherwise the path from the link's directory to the real target (the
// walked directories are real, so this resolves the same way in the image,
// where ".." above DIR or an absolute path would not).
std::string InsideLinkText(const std::string& rel, const std::string& text, const std::string& root,
                           const std::string& real) {
  fs::path parent = fs::path(rel).parent_path();
  if (!text.empty() && text[0] != '/') {
    fs::path p(text);
    if (std::find(p.begin(), p.end(), fs::path("..")) == p.end()) return text;
  }
  fs::path from = parent.empty() ? fs::path(root) : fs::path(root) / parent;
  std::string out = fs::path(real).lexically_relative(from).string();
  return out.empty() ? "." : out;
}

Result<void> Scanner::AddSymlink(const std::string& rel, const std::string& full) {
  std::string text(PATH_MAX, '\0');
  ssize_t n = ::readlink(full.c_str(), text.data(), text.size());
  if (n < 0)
    return Fail(ErrorCode::kIo, "cannot read symlink " + full + ": " + ErrnoMessage(errno));
  text.resize(static_cast<size_t>(n));
  char* resolved = ::realpath(full.c_str(), nullptr);
  if (resolved == nullptr) {
    int err = errno;
    std::string what = err == ENOENT  ? "is dangling (its target does not exist)"
                       : err == ELOOP ? "is part of a symlink loop"
                                      : "cannot be resolved: " + ErrnoMessage(err);
    return Fail(ErrorCode::kInvalidInput,
                "symlink " + full + " -> " + text + " " + what + "; fix or remove it");
  }
  std::string real = resolved;
  std::free(resolved);
  struct stat st;
  if (::stat(real.c_str(), &st) != 0) {
    return Fail(ErrorCode::kIo,
                "cannot stat " + real + " (target of " + full + "): " + ErrnoMessage(errno));
  }
  TarEntry e;
  if (Inside(real)) {
    e.type = TarEntry::Type::kSymlink;
    e.mode = 0777;
    e.link_target = InsideLinkText(rel, text, root_, real);
    Push(rel, std::move(e));
    return {};
  }
  if (S_ISDIR(st.st_mode)) {
    return Fail(ErrorCode::kInvalidInput,
                "symlink " + full + " points to the directory " + real +
                    " outside the model directory; copy that directory in or remove the link");
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(ErrorCode::kInvalidInput, "symlink " + full + " points to " + real +
                                              ", which is not a regular file; remove the link");
  }
  MC_RETURN_IF_ERROR(CheckReadable(real, /*dir=*/false));
  e.type = TarEntry::Type::kFile;
  e.source = real;
  e.size = static_cast<uint64_t>(st.st_size);
  e.mode = NormalMode(st.st_mode);
  Push(rel, std::move(e));
  return {};
}

Result<std::vector<TarEntry>> Scanner::Run() {
  // The prefix chain: "opt", "opt/models" (the last one is DIR itself).
  for (size_t pos = 0;;) {
    size_t slash = prefix_.find('/', pos);
    TarEntry d;
    d.type = TarEntry::Type::kDirectory;
    d.mode = 0755;
    d.name = prefix_.substr(0, slash);
    found_.push_back(Scanned{std::move(d)});
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  MC_RETURN_IF_ERROR(WalkDir(""));
  std::sort(found_.begin(), found_.end(), [](const Scanned& a, const Scanned& b) {
    return TarNameLess(a.entry.name, b.entry.name);
  });
  std::map<std::pair<dev_t, ino_t>, std::string> first;
  std::vector<TarEntry> out;
  out.reserve(found_.size());
  for (Scanned& s : found_) {
    if (s.maybe_linked) {
      auto [it, inserted] = first.try_emplace({s.dev, s.ino}, s.entry.name);
      if (!inserted) {
        s.entry.type = TarEntry::Type::kHardlink;
        s.entry.link_target = it->second;
      }
    }
    out.push_back(std::move(s.entry));
  }
  return out;
}

}  // namespace

bool TarNameLess(std::string_view a, std::string_view b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned ca = a[i] == '/' ? 0 : static_cast<unsigned char>(a[i]) + 1u;
    unsigned cb = b[i] == '/' ? 0 : static_cast<unsigned char>(b[i]) + 1u;
    if (ca != cb) return ca < cb;
  }
  return a.size() < b.size();
}

void SortTarEntries(std::vector<TarEntry>& entries) {
  std::sort(entries.begin(), entries.end(),
            [](const TarEntry& a, const TarEntry& b) { return TarNameLess(a.name, b.name); });
}

Result<std::vector<TarEntry>> ScanDirectory(const std::filesystem::path& dir,
                                            const ScanOptions& options) {
  MC_ASSIGN_OR_RETURN(std::string prefix, NormalizePrefix(options.prefix));
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return Fail(ErrorCode::kNotFound, "model directory " + dir.string() + " does not exist");
    }
    return Fail(ErrorCode::kInvalidInput,
                "cannot access model directory " + dir.string() + ": " + ErrnoMessage(err));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Fail(ErrorCode::kInvalidInput, dir.string() + " is not a directory");
  }
  char* resolved = ::realpath(dir.c_str(), nullptr);
  if (resolved == nullptr) {
    return Fail(ErrorCode::kInvalidInput,
                "cannot resolve model directory " + dir.string() + ": " + ErrnoMessage(errno));
  }
  std::string root = resolved;
  std::free(resolved);
  return Scanner(std::move(root), std::move(prefix)).Run();
}

}  // namespace mc::oci
