// Files of 8 GiB and more (protocols.md 3.10): the ustar size field must carry
// the real size (older Clair ignores the pax size), and GNU tar and Python's
// tarfile must read the stream back. The file is sparse and lives on tmpfs
// when there is one (reading holes there costs no page cache); the tar is
// streamed into a digest or a pipe, never written to disk.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "tests/oci/tar_test_util.h"

namespace mc::oci {
namespace {

using namespace tartest;  // NOLINT

constexpr uint64_t kBigSize = (8ull << 30) + 1000;  // just over the ustar octal limit
const std::string kTail = "the entry after the big one\n";

// A scratch directory on tmpfs when /dev/shm is one, else under $TMPDIR.
class ScratchDir {
 public:
  ScratchDir() {
    struct statfs fs;
    std::string base = "/dev/shm";
    if (::statfs(base.c_str(), &fs) != 0 || fs.f_type != TMPFS_MAGIC ||
        ::access(base.c_str(), W_OK) != 0) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp && *tmp ? tmp : "/tmp";
    }
    std::string tmpl = base + "/mc-tar-big-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class TarBigFileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    fs::path m = dir_->path() / "m";
    fs::create_directories(m);
    int fd = ::open((m / "big.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(kBigSize)), 0);
    ASSERT_EQ(::pwrite(fd, "END", 3, static_cast<off_t>(kBigSize - 3)), 3);  // not all zeros
    ::close(fd);
    WriteFile(m / "z.txt", kTail);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::vector<TarEntry> Entries() { return ScanOk(dir_->path() / "m"); }

  // Streams the tar into `command`'s stdin; returns its exit status, its output in *out.
  static int StreamInto(const std::string& command, std::string* out) {
    fs::path log = dir_->path() / "stream.log";
    auto old = std::signal(SIGPIPE, SIG_IGN);
    FILE* p = ::popen((command + " > " + Quote(log.string()) + " 2>&1").c_str(), "w");
    if (p == nullptr) return -1;
    ::fcntl(::fileno(p), F_SETPIPE_SZ, 1 << 20);
    {
      FdWriter w(::fileno(p), "pipe", /*own_fd=*/false);
      TarWriter tar(w, TarOptions{});
      for (const TarEntry& e : Entries()) {
        auto r = tar.Add(e);
        EXPECT_TRUE(r) << r.error().message;
        if (!r) break;
      }
      EXPECT_TRUE(tar.Finish());
    }
    int status = ::pclose(p);
    std::signal(SIGPIPE, old);
    *out = ReadFile(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static ScratchDir* dir_;
};

ScratchDir* TarBigFileTest::dir_ = nullptr;

// Keeps the first bytes of the stream and counts the rest.
class HeadWriter final : public Writer {
 public:
  Result<void> Write(std::span<const std::byte> data) override {
    if (head_.size() < kKeep)
      head_.append(AsString(data.first(std::min(data.size(), kKeep - head_.size()))));
    bytes_ += data.size();
    return {};
  }
  static constexpr size_t kKeep = 64 * 1024;
  std::string head_;
  uint64_t bytes_ = 0;
};

uint64_t ParseOctal(std::string_view field) {
  uint64_t v = 0;
  for (char c : field) {
    if (c < '0' || c > '7') break;
    v = v * 8 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

// The header checksum: the sum of all bytes, with the checksum field as spaces.
bool ChecksumOk(std::string_view h) {
  uint64_t sum = 0;
  for (size_t i = 0; i < 512; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
  }
  return sum == ParseOctal(h.substr(148, 8));
}

TEST_F(TarBigFileTest, UstarHeaderCarriesTheRealSize) {
  auto entries = Entries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[1].size, kBigSize);
  HeadWriter w;
  TarWriter tar(w, TarOptions{});
  for (const TarEntry& e : entries) ASSERT_TRUE(tar.Add(e));
  ASSERT_TRUE(tar.Finish());
  const std::string& h = w.head_;
  // models/ (1 block), then the pax header of big.bin (header + 1 data block).
  std::string_view pax(h.data() + 512, 512);
  EXPECT_EQ(pax[156], 'x');
  EXPECT_EQ(std::string(pax.data()), "models/PaxHeader/big.bin");
  EXPECT_TRUE(ChecksumOk(pax));
  std::string record = "size=" + std::to_string(kBigSize) + "\n";
  std::string pax_data(h.data() + 1024, ParseOctal(pax.substr(124, 12)));
  EXPECT_NE(pax_data.find(record), std::string::npos) << pax_data;
  EXPECT_EQ(pax_data.find("time"), std::string::npos) << pax_data;  // no atime/ctime/mtime
  // The ustar header itself: real size as 12 octal digits, no terminator.
  std::string_view main(h.data() + 1536, 512);
  EXPECT_EQ(std::string(main.data()), "models/big.bin");
  EXPECT_EQ(main[156], '0');
  char want[32];
  std::snprintf(want, sizeof want, "%012llo", static_cast<unsigned long long>(kBigSize));
  EXPECT_EQ(main.substr(124, 12), want);
  EXPECT_EQ(ParseOctal(main.substr(124, 12)), kBigSize);
  EXPECT_EQ(main.substr(257, 8), std::string_view("ustar\0"
                                                  "00",
                                                  8));
  EXPECT_TRUE(ChecksumOk(main));
  // Length: headers, data rounded to blocks, two end blocks; nothing else.
  uint64_t data_blocks = (kBigSize + 511) / 512;
  uint64_t want_size = 512 * (1 + 2 + 1 + data_blocks + 1 + 1 + 2);
  EXPECT_EQ(tar.bytes_written(), want_size);
  EXPECT_EQ(w.bytes_, want_size);
}

TEST_F(TarBigFileTest, GnuTarListsTheStream) {
  std::string out;
  ASSERT_EQ(StreamInto("tar -b 2048 -tvf -", &out), 0) << out;
  auto big = out.find(std::to_string(kBigSize) + " ");
  ASSERT_NE(big, std::string::npos) << out;
  EXPECT_NE(out.find("models/big.bin", big), std::string::npos) << out;
  EXPECT_NE(out.find("models/z.txt", big), std::string::npos) << out;  // found after the data
}

TEST_F(TarBigFileTest, PythonTarfileReadsTheStream) {
  std::string script = (mc::testing::SourceDir() / "tests/support/tar_inspect.py").string();
  std::string out;
  ASSERT_EQ(StreamInto("python3 " + Quote(script) + " -", &out), 0) << out;
  std::vector<nlohmann::json> members;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) members.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(members.size(), 3u) << out;
  EXPECT_EQ(members[1]["name"], "models/big.bin");
  EXPECT_EQ(members[1]["size"].get<uint64_t>(), kBigSize);
  EXPECT_EQ(members[1]["pax"], std::vector<std::string>{"size"});
  EXPECT_EQ(members[2]["name"], "models/z.txt");
  EXPECT_EQ(members[2]["sha256"], Sha256Hex(kTail));
}

}  // namespace
}  // namespace mc::oci
