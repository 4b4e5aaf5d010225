// ScanDirectory: ordering, prefix, modes, hard links, the symlink policy and
// every refused file type (design.md "Image produced", protocols.md 3.10).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "tests/oci/tar_test_util.h"

namespace mc::oci {
namespace {

using namespace tartest;  // NOLINT

TEST(TarNameOrderTest, ComponentWiseBytewise) {
  std::vector<std::string> names = {"a-b",   "a/b", "a",        "B", "a/b/c",
                                    "a.txt", "a/a", "\xc3\xa9", "ab"};
  std::sort(names.begin(), names.end(), [](auto& x, auto& y) { return TarNameLess(x, y); });
  EXPECT_EQ(names, (std::vector<std::string>{"B", "a", "a/a", "a/b", "a/b/c", "a-b", "a.txt", "ab",
                                             "\xc3\xa9"}));
  EXPECT_FALSE(TarNameLess("a", "a"));
  EXPECT_TRUE(TarNameLess("a/z", "a0"));  // '/' below every byte
  EXPECT_TRUE(TarNameLess("a/\x01", "a\x01"));
}

TEST(TarScanTest, SortedWithParentsFirstAndPrefixChain) {
  TempDir t;
  WriteFile(t / "m/b.txt", "b");
  WriteFile(t / "m/a-b", "x");
  WriteFile(t / "m/a/z.bin", "z");
  WriteFile(t / "m/a/b/c", "c");
  fs::create_directories(t / "m/empty");
  auto entries = ScanOk(t / "m", "/opt/models/");
  EXPECT_EQ(Names(entries),
            (std::vector<std::string>{"opt", "opt/models", "opt/models/a", "opt/models/a/b",
                                      "opt/models/a/b/c", "opt/models/a/z.bin", "opt/models/a-b",
                                      "opt/models/b.txt", "opt/models/empty"}));
  for (size_t i = 0; i < entries.size(); ++i) {
    // Every parent is listed, and before the entry.
    auto slash = entries[i].name.rfind('/');
    if (slash == std::string::npos) continue;
    std::string parent = entries[i].name.substr(0, slash);
    EXPECT_NE(Find(entries, parent), nullptr) << entries[i].name;
    EXPECT_TRUE(TarNameLess(parent, entries[i].name));
  }
  EXPECT_EQ(Find(entries, "opt/models/a/z.bin")->source, fs::canonical(t / "m/a/z.bin"));
  EXPECT_EQ(Find(entries, "opt/models/a/z.bin")->size, 1u);
  EXPECT_EQ(Find(entries, "opt")->type, TarEntry::Type::kDirectory);
}

TEST(TarScanTest, NormalisesModes) {
  TempDir t;
  WriteFile(t / "m/exec", "#!/bin/sh\n");
  WriteFile(t / "m/group-exec", "x");
  WriteFile(t / "m/private", "p");
  WriteFile(t / "m/plain", "p");
  fs::create_directories(t / "m/closed");
  ::chmod((t / "m/exec").c_str(), 0700);
  ::chmod((t / "m/group-exec").c_str(), 0610);
  ::chmod((t / "m/private").c_str(), 0600);
  ::chmod((t / "m/plain").c_str(), 0664);
  ::chmod((t / "m/closed").c_str(), 0700);
  auto entries = ScanOk(t / "m");
  EXPECT_EQ(Find(entries, "models")->mode, 0755u);
  EXPECT_EQ(Find(entries, "models/exec")->mode, 0755u);
  EXPECT_EQ(Find(entries, "models/group-exec")->mode, 0755u);
  EXPECT_EQ(Find(entries, "models/private")->mode, 0644u);
  EXPECT_EQ(Find(entries, "models/plain")->mode, 0644u);
  EXPECT_EQ(Find(entries, "models/closed")->mode, 0755u);
}

TEST(TarScanTest, HardLinksFirstIsFileOthersLinks) {
  TempDir t;
  WriteFile(t / "m/z/orig", "same inode");
  fs::create_hard_link(t / "m/z/orig", t / "m/b");
  fs::create_hard_link(t / "m/z/orig", t / "m/c");
  WriteFile(t / "m/single", "one link");
  auto entries = ScanOk(t / "m");
  const TarEntry* b = Find(entries, "models/b");
  const TarEntry* c = Find(entries, "models/c");
  const TarEntry* orig = Find(entries, "models/z/orig");
  ASSERT_TRUE(b && c && orig);
  EXPECT_EQ(b->type, TarEntry::Type::kFile);  // first in archive order
  EXPECT_EQ(c->type, TarEntry::Type::kHardlink);
  EXPECT_EQ(c->link_target, "models/b");
  EXPECT_EQ(orig->type, TarEntry::Type::kHardlink);
  EXPECT_EQ(orig->link_target, "models/b");
  EXPECT_EQ(orig->size, 10u);  // kept so PlanLayers can make it a file again
  EXPECT_EQ(Find(entries, "models/single")->type, TarEntry::Type::kFile);
}

TEST(TarScanTest, SymlinksInsideAreKept) {
  TempDir t;
  WriteFile(t / "m/weights/a.bin", "A");
  Symlink("weights/a.bin", t / "m/rel");                           // relative, inside
  Symlink((t / "m/weights/a.bin").string(), t / "m/sub/abs");      // absolute, inside
  Symlink("../../m/weights/a.bin", t / "m/sub/escapes-and-back");  // lexically leaves DIR
  Symlink("weights", t / "m/dirlink");                             // directory inside
  Symlink(".", t / "m/self");
  // Lexically inside, but "self/.." is DIR's parent on disk: rewritten.
  Symlink("self/../m/config", t / "m/via-parent");
  Symlink("../weights/./a.bin", t / "m/sub/dotdot");
  WriteFile(t / "m/config", "c");
  auto entries = ScanOk(t / "m");
  auto target = [&](const std::string& n) {
    const TarEntry* e = Find(entries, "models/" + n);
    EXPECT_NE(e, nullptr) << n;
    EXPECT_EQ(e->type, TarEntry::Type::kSymlink) << n;
    EXPECT_EQ(e->mode, 0777u);
    return e->link_target;
  };
  EXPECT_EQ(target("rel"), "weights/a.bin");
  EXPECT_EQ(target("sub/abs"), "../weights/a.bin");
  EXPECT_EQ(target("sub/escapes-and-back"), "../weights/a.bin");
  EXPECT_EQ(target("dirlink"), "weights");
  EXPECT_EQ(target("self"), ".");
  EXPECT_EQ(target("via-parent"), "config");
  EXPECT_EQ(target("sub/dotdot"), "../weights/a.bin");
  // Nothing under the directory link is walked.
  EXPECT_EQ(Find(entries, "models/dirlink/a.bin"), nullptr);
}

// A Hugging Face cache: snapshots/<rev>/* are links into ../../blobs/.
TEST(TarScanTest, HuggingFaceSnapshotPacksTheFiles) {
  TempDir t;
  fs::path repo = t / "models--org--name";
  std::string config = "{\"model_type\": \"llama\"}";
  std::string weights(100000, 'w');
  WriteFile(repo / "blobs" / Sha256Hex(config), config);
  WriteFile(repo / "blobs" / Sha256Hex(weights), weights);
  ::chmod((repo / "blobs" / Sha256Hex(weights)).c_str(), 0600);  // the cache's own mode
  fs::path snap = repo / "snapshots/0123abcd";
  Symlink("../../blobs/" + Sha256Hex(config), snap / "config.json");
  Symlink("../../../blobs/" + Sha256Hex(weights), snap / "sub/model.safetensors");
  WriteFile(repo / "refs/main", "0123abcd");
  auto entries = ScanOk(snap);
  EXPECT_EQ(Names(entries), (std::vector<std::string>{"models", "models/config.json", "models/sub",
                                                      "models/sub/model.safetensors"}));
  const TarEntry* w = Find(entries, "models/sub/model.safetensors");
  EXPECT_EQ(w->type, TarEntry::Type::kFile);
  EXPECT_EQ(w->source, fs::canonical(repo / "blobs" / Sha256Hex(weights)));
  EXPECT_EQ(w->size, weights.size());
  EXPECT_EQ(w->mode, 0644u);

  // The tar holds the content, as GNU tar extracts it.
  fs::path tar = t / "layer.tar";
  WriteFile(tar, TarString(entries));
  ASSERT_EQ(GnuExtract(tar, t / "out"), 0);
  EXPECT_FALSE(fs::is_symlink(t / "out/models/config.json"));
  EXPECT_EQ(ReadFile(t / "out/models/config.json"), config);
  EXPECT_EQ(ReadFile(t / "out/models/sub/model.safetensors"), weights);
}

void ExpectScanError(const fs::path& dir, ErrorCode code, std::vector<std::string> fragments,
                     bool follow = false) {
  auto r = ScanDirectory(dir, ScanOptions{"/models", follow});
  ASSERT_FALSE(r) << "scan of " << dir << " should fail";
  EXPECT_EQ(r.error().code, code) << r.error().message;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  for (const std::string& f : fragments) {
    EXPECT_NE(r.error().message.find(f), std::string::npos)
        << "'" << f << "' not in: " << r.error().message;
  }
}

TEST(TarScanTest, MissingOrNotADirectory) {
  TempDir t;
  ExpectScanError(t / "nope", ErrorCode::kNotFound, {(t / "nope").string(), "does not exist"});
  WriteFile(t / "file", "x");
  ExpectScanError(t / "file", ErrorCode::kInvalidInput, {(t / "file").string(), "not a directory"});
}

TEST(TarScanTest, DanglingSymlinkIsAnError) {
  TempDir t;
  WriteFile(t / "m/ok", "x");
  Symlink("../../blobs/missing", t / "m/sub/dangling");
  ExpectScanError(t / "m", ErrorCode::kInvalidInput,
                  {(t / "m/sub/dangling").string(), "../../blobs/missing", "dangling"});
}

TEST(TarScanTest, SymlinkLoopIsAnError) {
  TempDir t;
  Symlink("b", t / "m/a");
  Symlink("a", t / "m/b");
  // Names are visited in archive order, so the error names "a" whatever readdir says.
  ExpectScanError(t / "m", ErrorCode::kInvalidInput, {(t / "m/a").string(), "loop"});
}

TEST(TarScanTest, FifoIsAnError) {
  TempDir t;
  fs::create_directories(t / "m/d");
  ASSERT_EQ(::mkfifo((t / "m/d/pipe").c_str(), 0644), 0);
  ExpectScanError(t / "m", ErrorCode::kInvalidInput, {(t / "m/d/pipe").string(), "FIFO"});
}

TEST(TarScanTest, SymlinkToOutsideFifoIsAnError) {
  TempDir t;
  ASSERT_EQ(::mkfifo((t / "pipe").c_str(), 0644), 0);
  Symlink("../pipe", t / "m/link");
  ExpectScanError(t / "m", ErrorCode::kInvalidInput,
                  {(t / "m/link").string(), "leaves the model directory"});
  ExpectScanError(t / "m", ErrorCode::kInvalidInput,
                  {(t / "m/link").string(), "not a regular file"}, /*follow=*/true);
}

TEST(TarScanTest, SocketIsAnError) {
  TempDir t;
  fs::create_directories(t / "m");
  std::string path = (t / "m/sock").string();
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::copy(path.begin(), path.end(), addr.sun_path);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
  ExpectScanError(t / "m", ErrorCode::kInvalidInput, {path, "socket"});
}

TEST(TarScanTest, DeviceIsAnError) {
  TempDir t;
  fs::create_directories(t / "m");
  if (::mknod((t / "m/null").c_str(), S_IFCHR | 0644, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "cannot create a device node here";
  }
  ExpectScanError(t / "m", ErrorCode::kInvalidInput, {(t / "m/null").string(), "character device"});
}

TEST(TarScanTest, WhiteoutNamesAreErrors) {
  for (std::string name : {".wh.config.json", ".wh..wh..opq", "sub/.wh.x", ".wh.dir/f"}) {
    TempDir t;
    WriteFile(t / "m/ok", "x");
    WriteFile(t / "m" / name, "x");
    std::string bad = name.starts_with(".wh.dir") ? ".wh.dir" : name;
    ExpectScanError(t / "m", ErrorCode::kInvalidInput, {(t / "m" / bad).string(), ".wh."});
  }
}

// Runs ScanDirectory as an unprivileged user in a child process (root reads
// everything); returns "code|message" or "ok".
std::string ScanAsNobody(const fs::path& dir) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
      out = "cannot drop privileges";
    } else {
      auto r = ScanDirectory(dir, ScanOptions{});
      out = r ? "ok" : std::to_string(static_cast<int>(r.error().code)) + "|" + r.error().message;
    }
    [[maybe_unused]] ssize_t n = ::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

std::string ScanResult(const fs::path& dir) {
  if (::geteuid() == 0) return ScanAsNobody(dir);
  auto r = ScanDirectory(dir, ScanOptions{});
  return r ? "ok" : std::to_string(static_cast<int>(r.error().code)) + "|" + r.error().message;
}

TEST(TarScanTest, UnreadableFileIsAnErrorNamingChmod) {
  TempDir t;
  ::chmod(t.path().c_str(), 0755);
  WriteFile(t / "m/readable", "x");
  WriteFile(t / "m/sub/secret.bin", "x");
  ::chmod((t / "m").c_str(), 0755);
  ::chmod((t / "m/sub").c_str(), 0755);
  ::chmod((t / "m/readable").c_str(), 0644);
  ::chmod((t / "m/sub/secret.bin").c_str(), 0600);
  std::string r = ScanResult(t / "m");
  if (r == "cannot drop privileges") GTEST_SKIP() << r;
  std::string want = std::to_string(static_cast<int>(ErrorCode::kInvalidInput)) + "|";
  EXPECT_TRUE(r.starts_with(want)) << r;
  EXPECT_NE(r.find((t / "m/sub/secret.bin").string()), std::string::npos) << r;
  EXPECT_NE(r.find("chmod a+r"), std::string::npos) << r;

  ::chmod((t / "m/sub/secret.bin").c_str(), 0644);
  EXPECT_EQ(ScanResult(t / "m"), "ok");
  ::chmod((t / "m/sub").c_str(), 0700);
  r = ScanResult(t / "m");
  EXPECT_NE(r.find((t / "m/sub").string()), std::string::npos) << r;
  EXPECT_NE(r.find("chmod a+rx"), std::string::npos) << r;
}

// The symlink policy (issue 12): a link that leaves DIR is refused unless it
// is a Hugging Face cache link into its repository's blobs/ or the user passes
// --follow-symlinks; the error names the link, its target and the flag.
std::vector<TarEntry> ScanFollowOk(const fs::path& dir) {
  auto r = ScanDirectory(dir, ScanOptions{"/models", /*follow_symlinks=*/true});
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : std::vector<TarEntry>{};
}

TEST(TarScanSymlinkPolicyTest, AbsoluteLinkToOutsideFileIsRefused) {
  TempDir t;
  WriteFile(t / "secret/shadow", "root:x:");
  WriteFile(t / "m/config.json", "{}");
  std::string target = (t / "secret/shadow").string();
  Symlink(target, t / "m/shadow");
  ExpectScanError(
      t / "m", ErrorCode::kInvalidInput,
      {(t / "m/shadow").string(), target, "leaves the model directory", "--follow-symlinks"});
  auto entries = ScanFollowOk(t / "m");
  const TarEntry* e = Find(entries, "models/shadow");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, TarEntry::Type::kFile);
  EXPECT_EQ(e->source, fs::canonical(t / "secret/shadow"));
  EXPECT_EQ(e->size, 7u);
}

TEST(TarScanSymlinkPolicyTest, RelativeDotDotLinkIsRefused) {
  TempDir t;
  WriteFile(t / "etc/passwd", "root:x:0:0");
  Symlink("../../../etc/passwd", t / "m/a/b/passwd");
  ExpectScanError(t / "m", ErrorCode::kInvalidInput,
                  {(t / "m/a/b/passwd").string(), "../../../etc/passwd",
                   fs::canonical(t / "etc/passwd").string(), "--follow-symlinks"});
  auto entries = ScanFollowOk(t / "m");
  const TarEntry* e = Find(entries, "models/a/b/passwd");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, TarEntry::Type::kFile);
}

TEST(TarScanSymlinkPolicyTest, LinkToOutsideDirectoryIsRefusedOrWalked) {
  TempDir t;
  WriteFile(t / "elsewhere/f", "x");
  WriteFile(t / "elsewhere/sub/g", "gg");
  Symlink("../f", t / "elsewhere/sub/to-f");  // dereferenced below a followed link
  Symlink("..", t / "elsewhere/sub/up");      // a loop once followed: refused
  Symlink("../elsewhere", t / "m/link");
  ExpectScanError(t / "m", ErrorCode::kInvalidInput,
                  {(t / "m/link").string(), "../elsewhere", "--follow-symlinks"});
  fs::remove(t / "elsewhere/sub/up");
  auto entries = ScanFollowOk(t / "m");
  EXPECT_EQ(Names(entries),
            (std::vector<std::string>{"models", "models/link", "models/link/f", "models/link/sub",
                                      "models/link/sub/g", "models/link/sub/to-f"}));
  EXPECT_EQ(Find(entries, "models/link")->type, TarEntry::Type::kDirectory);
  EXPECT_EQ(Find(entries, "models/link/sub/to-f")->type, TarEntry::Type::kFile);
  EXPECT_EQ(Find(entries, "models/link/sub/to-f")->source, fs::canonical(t / "elsewhere/f"));
  Symlink("..", t / "elsewhere/sub/up");
  ExpectScanError(t / "m", ErrorCode::kInvalidInput, {(t / "elsewhere/sub/up").string(), "loop"},
                  /*follow=*/true);
}

TEST(TarScanSymlinkPolicyTest, ChainThatLeavesAndComesBackIsRefused) {
  TempDir t;
  WriteFile(t / "m/c.bin", "C");
  Symlink("../m/c.bin", t / "out/b");  // outside DIR, pointing back in
  Symlink("../out/b", t / "m/a");
  ExpectScanError(
      t / "m", ErrorCode::kInvalidInput,
      {(t / "m/a").string(), "../out/b", "leaves the model directory", "--follow-symlinks"});
  auto entries = ScanFollowOk(t / "m");
  const TarEntry* e = Find(entries, "models/a");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, TarEntry::Type::kFile);
  EXPECT_EQ(e->source, fs::canonical(t / "m/c.bin"));
}

// A snapshot-like tree whose links point elsewhere than the repository's
// blobs/ gets no exception: the names alone do not make it a cache.
TEST(TarScanSymlinkPolicyTest, HuggingFaceLayoutOnlyCoversItsBlobs) {
  TempDir t;
  fs::path repo = t / "models--org--name";
  WriteFile(repo / "blobs/abc", "blob");
  WriteFile(repo / "refs/main", "0123");
  WriteFile(t / "secret", "s");
  fs::path snap = repo / "snapshots/0123";
  Symlink("../../blobs/abc", snap / "ok.bin");
  Symlink("../../refs/main", snap / "ref");  // in the repo, not under blobs/
  ExpectScanError(snap, ErrorCode::kInvalidInput, {(snap / "ref").string(), "--follow-symlinks"});
  fs::remove(snap / "ref");
  Symlink("../../../secret", snap / "secret");  // leaves the repository folder
  ExpectScanError(snap, ErrorCode::kInvalidInput,
                  {(snap / "secret").string(), "--follow-symlinks"});
  fs::remove(snap / "secret");
  // A link into blobs/ by way of a link outside the repository folder.
  Symlink((repo / "blobs/abc").string(), t / "hop");
  Symlink("../../../hop", snap / "via-hop");
  ExpectScanError(snap, ErrorCode::kInvalidInput,
                  {(snap / "via-hop").string(), "--follow-symlinks"});
  fs::remove(snap / "via-hop");
  auto entries = ScanOk(snap);
  EXPECT_EQ(Find(entries, "models/ok.bin")->type, TarEntry::Type::kFile);

  // Without a real blobs/ directory there is no cache.
  fs::path fake = t / "models--x--y";
  WriteFile(t / "store/abc", "blob");
  fs::create_directories(fake);
  Symlink("../store", fake / "blobs");
  Symlink("../../blobs/abc", fake / "snapshots/r/f");
  ExpectScanError(fake / "snapshots/r", ErrorCode::kInvalidInput,
                  {(fake / "snapshots/r/f").string(), "--follow-symlinks"});
}

TEST(TarPrefixTest, Normalises) {
  EXPECT_EQ(NormalizePrefix("/models").value(), "models");
  EXPECT_EQ(NormalizePrefix("models/").value(), "models");
  EXPECT_EQ(NormalizePrefix("/a/b").value(), "a/b");
  EXPECT_EQ(NormalizePrefix("//a/./b//").value(), "a/b");
  for (std::string_view bad :
       std::vector<std::string_view>{"", "/", "//", ".", "..", "/a/../b", "/.wh.x",
                                     "/a/.wh..wh..opq", std::string_view("a\0b", 3)}) {
    auto r = NormalizePrefix(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message.find("prefix"), std::string::npos);
  }
  TempDir t;
  fs::create_directories(t / "m");
  auto r = ScanDirectory(t / "m", ScanOptions{"/../x"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
}

}  // namespace
}  // namespace mc::oci
