// Scanning a model directory into tar entries (design.md "Image produced",
// protocols.md 3.10).
//
// Why a walker of our own instead of archive_read_disk: libarchive's disk
// reader captures xattrs (security.selinux), ACLs and file flags by default,
// and its symlink modes are all-or-nothing, while we need one policy per link:
//  - a link whose resolved target lies inside DIR stays a link, so the image
//    holds the same tree (its text is rewritten only when, read literally from
//    the image, it would leave DIR: absolute, or ".." above DIR);
//  - a link leaving DIR is refused: publishing what it points to would put
//    files the user never meant to ship (/etc/shadow, ~/.docker/config.json)
//    into a world-readable image, and buildah, docker and GNU tar all store
//    the link instead. "Leaving" is decided on the way, not only at the end:
//    we resolve the link one component at a time, and a chain that reads a
//    link outside DIR leaves DIR even if it ends up inside again (what it
//    points to is then decided by a file we do not pack);
//  - the one exception is a Hugging Face cache snapshot, a tree of links into
//    ../../blobs/: packing it must give the model, not dangling links. We
//    detect it from the layout (an ancestor of DIR inside `snapshots/` of a
//    `models--ORG--NAME` folder that has a real `blobs/` directory) and
//    follow a link only when it resolves to a regular file under that
//    `blobs/`, through links inside the repository folder only;
//  - --follow-symlinks is the explicit opt-in for everything else: escaping
//    links are packed as what they point to (files as files, directories
//    walked with every link in them dereferenced, loops refused);
//  - dangling links, FIFOs, sockets and devices have no meaning in a model
//    image and are refused, as are `.wh.*` names, which an unpacker would take
//    for whiteouts.
// We lstat every name once, never follow directory links inside DIR while
// walking (so the walk cannot loop), and sort at the end, so the result does
// not depend on readdir order. Unreadable files are reported here rather than
// halfway through an 80 GB upload.
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

bool Under(std::string_view real, std::string_view dir) {
  return real == dir || (real.starts_with(dir) && real.size() > dir.size() &&
                         (dir == "/" || real[dir.size()] == '/'));
}

std::string ParentOf(const std::string& p) {
  size_t slash = p.rfind('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return p.substr(0, slash);
}

std::string BaseOf(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Where a link chain ends and what it went through.
struct Resolved {
  std::string real;           // the final path, every link resolved
  bool read_outside = false;  // some link of the chain lies outside DIR
  bool outside_repo = false;  // some link of the chain lies outside the HF repo folder
  int err = 0;                // errno when the chain cannot be resolved
};

class Scanner {
 public:
  Scanner(std::string root, std::string prefix, bool follow)
      : root_(std::move(root)), prefix_(std::move(prefix)), follow_(follow) {
    DetectHfRepo();
  }

  Result<std::vector<TarEntry>> Run();

 private:
  // rel: the name under DIR; src: where it is on disk (not DIR/rel below a
  // followed link); followed: below a followed link, where every link is
  // dereferenced.
  Result<void> WalkDir(const std::string& rel, const std::string& src, bool followed);
  Result<void> AddName(const std::string& rel, const std::string& src, bool followed);
  Result<void> AddSymlink(const std::string& rel, const std::string& src);
  // Packs what a followed link points to: a file, or a directory walked.
  Result<void> AddTarget(const std::string& rel, const std::string& link, const std::string& text,
                         const std::string& real);
  Resolved Resolve(const std::string& link) const;
  void DetectHfRepo();
  Result<void> CheckReadable(const std::string& path, bool dir) const;
  void Push(const std::string& rel, TarEntry entry, const struct stat* st = nullptr);
  std::string ArchiveName(const std::string& rel) const { return JoinName(prefix_, rel); }
  bool Inside(std::string_view real) const { return Under(real, root_); }

  std::string root_;     // realpath of DIR
  std::string prefix_;   // normalised, e.g. "models"
  bool follow_;          // --follow-symlinks
  std::string hf_repo_;  // realpath of models--ORG--NAME when DIR is in its snapshots/, else ""
  std::vector<Scanned> found_;
  std::vector<std::pair<dev_t, ino_t>> walking_;  // directories being walked (loop check)
};

// A Hugging Face cache repository folder: <cache>/models--ORG--NAME holding
// blobs/, refs/ and snapshots/<rev>/. We walk up from DIR to an ancestor
// whose parent is named "snapshots" and whose grandparent is named like a
// repository folder and has a real blobs/ directory.
void Scanner::DetectHfRepo() {
  for (std::string a = root_; a != "/"; a = ParentOf(a)) {
    std::string snapshots = ParentOf(a);
    if (BaseOf(snapshots) != "snapshots") continue;
    std::string repo = ParentOf(snapshots);
    std::string name = BaseOf(repo);
    if (!name.starts_with("models--") && !name.starts_with("datasets--") &&
        !name.starts_with("spaces--")) {
      continue;
    }
    struct stat st;
    if (::lstat((repo + "/blobs").c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      hf_repo_ = repo;
      return;
    }
  }
}

// Resolves `link` (an absolute path whose parent directories are real) one
// component at a time, as the kernel would, noting where the links read lie.
Resolved Scanner::Resolve(const std::string& link) const {
  Resolved r;
  std::vector<std::string> todo;  // components left, last one first
  auto push_text = [&](const std::string& text, std::string& cur) {
    if (!text.empty() && text[0] == '/') cur = "/";
    std::vector<std::string> parts;
    for (const auto& c : fs::path(text)) {
      std::string s = c.string();
      if (!s.empty() && s != "/") parts.push_back(s);
    }
    todo.insert(todo.end(), parts.rbegin(), parts.rend());
  };
  std::string cur = ParentOf(link);
  todo.push_back(BaseOf(link));
  int links = 0;
  while (!todo.empty()) {
    const std::string c = todo.back();
    todo.pop_back();
    if (c == ".") continue;
    if (c == "..") {
      cur = ParentOf(cur);
      continue;
    }
    std::string next = cur == "/" ? "/" + c : cur + "/" + c;
    struct stat st;
    if (::lstat(next.c_str(), &st) != 0) {
      r.err = errno;
      return r;
    }
    if (!S_ISLNK(st.st_mode)) {
      if (!todo.empty() && !S_ISDIR(st.st_mode)) {
        r.err = ENOTDIR;
        return r;
      }
      cur = std::move(next);
      continue;
    }
    if (++links > 40) {
      r.err = ELOOP;
      return r;
    }
    if (!Inside(next)) r.read_outside = true;
    if (hf_repo_.empty() || !Under(next, hf_repo_)) r.outside_repo = true;
    std::string text(PATH_MAX, '\0');
    ssize_t n = ::readlink(next.c_str(), text.data(), text.size());
    if (n < 0) {
      r.err = errno;
      return r;
    }
    text.resize(static_cast<size_t>(n));
    push_text(text, cur);
  }
  r.real = cur;
  return r;
}

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

Result<void> Scanner::WalkDir(const std::string& rel, const std::string& src, bool followed) {
  MC_RETURN_IF_ERROR(CheckReadable(src, /*dir=*/true));
  struct stat dst;
  if (::stat(src.c_str(), &dst) != 0) {
    return Fail(ErrorCode::kIo, "cannot stat " + src + ": " + ErrnoMessage(errno));
  }
  DIR* d = ::opendir(src.c_str());
  if (d == nullptr) {
    return Fail(ErrorCode::kInvalidInput,
                "cannot read directory " + src + ": " + ErrnoMessage(errno));
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
    return Fail(ErrorCode::kIo, "reading directory " + src + ": " + ErrnoMessage(err));
  }
  walking_.emplace_back(dst.st_dev, dst.st_ino);
  // Visited in archive order, so the first error reported does not depend on readdir.
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::string child_src = src == "/" ? "/" + n : src + "/" + n;
    if (n.starts_with(".wh.")) {
      return Fail(ErrorCode::kInvalidInput,
                  child_src +
                      ": names starting with \".wh.\" are OCI whiteouts and cannot be in a "
                      "model image; rename or remove it");
    }
    MC_RETURN_IF_ERROR(AddName(JoinName(rel, n), child_src, followed));
  }
  walking_.pop_back();
  return {};
}

Result<void> Scanner::AddName(const std::string& rel, const std::string& src, bool followed) {
  struct stat st;
  if (::lstat(src.c_str(), &st) != 0) {
    return Fail(ErrorCode::kIo, "cannot stat " + src + ": " + ErrnoMessage(errno));
  }
  TarEntry e;
  if (S_ISDIR(st.st_mode)) {
    e.type = TarEntry::Type::kDirectory;
    e.mode = 0755;
    Push(rel, std::move(e));
    return WalkDir(rel, src, followed);
  }
  if (S_ISREG(st.st_mode)) {
    MC_RETURN_IF_ERROR(CheckReadable(src, /*dir=*/false));
    e.type = TarEntry::Type::kFile;
    e.source = src;
    e.size = static_cast<uint64_t>(st.st_size);
    e.mode = NormalMode(st.st_mode);
    Push(rel, std::move(e), &st);
    return {};
  }
  if (S_ISLNK(st.st_mode)) {
    if (!followed) return AddSymlink(rel, src);
    // Below a followed link every link is dereferenced (as `tar -h` does).
    char* resolved = ::realpath(src.c_str(), nullptr);
    if (resolved == nullptr) {
      int err = errno;
      return Fail(ErrorCode::kInvalidInput,
                  "symlink " + src + " (followed with --follow-symlinks) " +
                      (err == ENOENT  ? std::string("is dangling")
                       : err == ELOOP ? std::string("is part of a symlink loop")
                                      : "cannot be resolved: " + ErrnoMessage(err)) +
                      "; fix or remove it");
    }
    std::string real = resolved;
    std::free(resolved);
    return AddTarget(rel, src, real, real);
  }
  const char* what = S_ISFIFO(st.st_mode)   ? "a FIFO"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                                            : "of an unknown file type";
  return Fail(ErrorCode::kInvalidInput, src + " is " + what +
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

Result<void> Scanner::AddTarget(const std::string& rel, const std::string& link,
                                const std::string& text, const std::string& real) {
  struct stat st;
  if (::stat(real.c_str(), &st) != 0) {
    return Fail(ErrorCode::kIo,
                "cannot stat " + real + " (target of " + link + "): " + ErrnoMessage(errno));
  }
  TarEntry e;
  if (S_ISDIR(st.st_mode)) {
    for (const auto& [dev, ino] : walking_) {
      if (dev == st.st_dev && ino == st.st_ino) {
        return Fail(ErrorCode::kInvalidInput, "symlink " + link + " -> " + text +
                                                  " points to a directory that contains it (a "
                                                  "loop); remove the link");
      }
    }
    e.type = TarEntry::Type::kDirectory;
    e.mode = 0755;
    Push(rel, std::move(e));
    return WalkDir(rel, real, /*followed=*/true);
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(ErrorCode::kInvalidInput, "symlink " + link + " points to " + real +
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

Result<void> Scanner::AddSymlink(const std::string& rel, const std::string& full) {
  std::string text(PATH_MAX, '\0');
  ssize_t n = ::readlink(full.c_str(), text.data(), text.size());
  if (n < 0)
    return Fail(ErrorCode::kIo, "cannot read symlink " + full + ": " + ErrnoMessage(errno));
  text.resize(static_cast<size_t>(n));
  Resolved r = Resolve(full);
  if (r.err != 0) {
    std::string what = r.err == ENOENT  ? "is dangling (its target does not exist)"
                       : r.err == ELOOP ? "is part of a symlink loop"
                                        : "cannot be resolved: " + ErrnoMessage(r.err);
    return Fail(ErrorCode::kInvalidInput,
                "symlink " + full + " -> " + text + " " + what + "; fix or remove it");
  }
  if (Inside(r.real) && !r.read_outside) {
    TarEntry e;
    e.type = TarEntry::Type::kSymlink;
    e.mode = 0777;
    e.link_target = InsideLinkText(rel, text, root_, r.real);
    Push(rel, std::move(e));
    return {};
  }
  if (!hf_repo_.empty() && !r.outside_repo && Under(r.real, hf_repo_ + "/blobs")) {
    struct stat st;
    if (::stat(r.real.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      return AddTarget(rel, full, text, r.real);
    }
  }
  if (follow_) return AddTarget(rel, full, text, r.real);
  return Fail(ErrorCode::kInvalidInput,
              "symlink " + full + " -> " + text + " leaves the model directory " + root_ +
                  (r.real == text ? "" : " (resolves to " + r.real + ")") +
                  "; refusing to publish what it points to: copy the content in, remove the "
                  "link, or pass --follow-symlinks to pack its target");
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
  MC_RETURN_IF_ERROR(WalkDir("", root_, /*followed=*/false));
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
  return Scanner(std::move(root), std::move(prefix), options.follow_symlinks).Run();
}

}  // namespace mc::oci
