// TarWriter: the bytes it writes, read back by GNU tar and Python's tarfile
// (design.md "Image produced", protocols.md 3.10).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <clocale>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>

#include "tests/oci/tar_test_util.h"

namespace mc::oci {
namespace {

using namespace tartest;  // NOLINT

// 75 two-byte characters: a 150-byte UTF-8 base name.
const std::string kUtf8Name = [] {
  std::string s;
  for (int i = 0; i < 75; ++i) s += "\xc3\xa9";
  return s;
}();

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Whether ustar's name (100) and prefix (155) fields can hold `path`, split at a '/'.
bool UstarFits(const std::string& path) {
  if (path.size() <= 100) return true;
  for (size_t i = 1; i < path.size(); ++i) {
    if (path[i] == '/' && i <= 155 && path.size() - i - 1 <= 100 && i + 1 < path.size()) {
      return true;
    }
  }
  return false;
}

// A model with every kind of entry the policy keeps.
void MakeModel(const fs::path& m) {
  WriteFile(m / "config.json", "{\"a\": 1}\n");
  WriteFile(m / "weights/model-00001.safetensors", RandomBytes(3 * 1024 * 1024 + 17, 1));
  WriteFile(m / "weights/empty.bin", "");
  WriteFile(m / "run.sh", "#!/bin/sh\necho hi\n");
  ::chmod((m / "run.sh").c_str(), 0700);
  WriteFile(m / kUtf8Name, "utf-8 name\n");
  std::string deep = "d" + std::string(90, 'x') + "/e" + std::string(90, 'y') + "/f" +
                     std::string(90, 'z');  // > 255 bytes with the prefix: needs a pax path
  WriteFile(m / deep / "leaf.txt", "deep\n");
  fs::create_directories(m / "empty-dir");
  Symlink("weights/model-00001.safetensors", m / "latest.safetensors");
  fs::create_hard_link(m / "config.json", m / "weights/config-link.json");
}

TEST(TarWriterTest, GnuTarExtractsTheModelByteForByte) {
  TempDir t;
  MakeModel(t / "m");
  auto entries = ScanOk(t / "m");
  fs::path tar = t / "layer.tar";
  WriteFile(tar, TarString(entries));
  std::string log;
  ASSERT_EQ(GnuExtract(tar, t / "out", &log), 0) << log;
  EXPECT_EQ(DiffTrees(t / "m", t / "out/models", &log), 0) << log;
  // Hard links come back as links, symlinks as symlinks, modes normalised.
  EXPECT_TRUE(
      fs::equivalent(t / "out/models/config.json", t / "out/models/weights/config-link.json"));
  EXPECT_EQ(fs::read_symlink(t / "out/models/latest.safetensors"),
            "weights/model-00001.safetensors");
  struct stat st;
  ASSERT_EQ(::stat((t / "out/models/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((t / "out/models/config.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST(TarWriterTest, PythonTarfileSeesNormalisedHeaders) {
  TempDir t;
  MakeModel(t / "m");
  auto entries = ScanOk(t / "m");
  fs::path tar = t / "layer.tar";
  WriteFile(tar, TarString(entries, /*mtime=*/1234567890));
  auto members = PyList(tar);
  ASSERT_EQ(members.size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const TarEntry& e = entries[i];
    const auto& m = members[i];
    SCOPED_TRACE(e.name);
    EXPECT_EQ(m["name"].get<std::string>(), e.name);  // same order, same bytes
    EXPECT_EQ(m["uid"], 0);
    EXPECT_EQ(m["gid"], 0);
    EXPECT_EQ(m["uname"], "");
    EXPECT_EQ(m["gname"], "");
    EXPECT_EQ(m["mtime"], 1234567890);
    EXPECT_EQ(m["mode"].get<uint32_t>(), e.mode);
    const char* type = e.type == TarEntry::Type::kDirectory ? "5"
                       : e.type == TarEntry::Type::kFile    ? "0"
                       : e.type == TarEntry::Type::kSymlink ? "2"
                                                            : "1";
    EXPECT_EQ(m["type"], type);
    if (e.type == TarEntry::Type::kFile) {
      EXPECT_EQ(m["size"].get<uint64_t>(), e.size);
      EXPECT_EQ(m["sha256"], Sha256Hex(ReadFile(e.source)));
    }
    if (e.type == TarEntry::Type::kHardlink) {
      EXPECT_EQ(m["size"], 0);
    }
    if (e.type == TarEntry::Type::kSymlink || e.type == TarEntry::Type::kHardlink) {
      EXPECT_EQ(m["linkname"].get<std::string>(), e.link_target);
    }
    // A pax header only where ustar cannot hold the name; never atime, ctime,
    // hdrcharset (the process runs in the "C" locale here).
    bool ascii = std::all_of(e.name.begin(), e.name.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    bool fits = UstarFits(e.name + (e.type == TarEntry::Type::kDirectory ? "/" : ""));
    auto pax = m["pax"].get<std::vector<std::string>>();
    if (ascii && fits) {
      EXPECT_TRUE(pax.empty());
    } else {
      EXPECT_EQ(pax, std::vector<std::string>{"path"});
    }
  }
}

TEST(TarWriterTest, Utf8NameOf150Bytes) {
  TempDir t;
  WriteFile(t / "m" / kUtf8Name, "x");
  auto entries = ScanOk(t / "m");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].name, "models/" + kUtf8Name);
  fs::path tar = t / "layer.tar";
  WriteFile(tar, TarString(entries));
  std::string listing;
  ASSERT_EQ(Sh("tar -tf " + Quote(tar.string()), &listing), 0) << listing;
  EXPECT_EQ(listing, "models/\nmodels/" + kUtf8Name + "\n");
  auto members = PyList(tar);
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[1]["name"].get<std::string>(), "models/" + kUtf8Name);
  EXPECT_EQ(members[1]["pax"], std::vector<std::string>{"path"});
}

TEST(TarWriterTest, ArchiveEndsRightAfterItsTwoZeroBlocks) {
  TempDir t;
  WriteFile(t / "m/a", std::string(700, 'a'));
  auto entries = ScanOk(t / "m");
  std::string tar = TarString(entries);
  // models/ header; a: header + 2 data blocks; 2 end blocks. No 10 KiB record padding.
  ASSERT_EQ(tar.size(), 512u * (1 + 3 + 2));
  EXPECT_EQ(tar.substr(tar.size() - 1024), std::string(1024, '\0'));
  EXPECT_EQ(tar.substr(257, 8), std::string("ustar\0"
                                            "00",
                                            8));  // POSIX magic
  EXPECT_EQ(tar.substr(0, 8), std::string("models/\0", 8));
  EXPECT_EQ(tar.substr(512 + 124, 12), "00000001274 ");  // 700 in octal
}

TEST(TarWriterTest, DeterministicWhateverTheSourceMetadata) {
  TempDir t;
  MakeModel(t / "m1");
  // The same tree made in another order, with other modes, owners and mtimes.
  fs::create_directories(t / "m2");
  ASSERT_EQ(Sh("cp -a " + Quote((t / "m1").string()) + "/. " + Quote((t / "m2").string())), 0);
  ASSERT_EQ(Sh("chown -hR 1234:5678 " + Quote((t / "m2").string()) +
               " 2>/dev/null; touch -h -d "
               "2001-02-03 $(find " +
               Quote((t / "m2").string()) + ")"),
            0);
  ::chmod((t / "m2/config.json").c_str(), 0600);
  ::chmod((t / "m2/weights").c_str(), 0700);
  std::string a = TarString(ScanOk(t / "m1"));
  std::string b = TarString(ScanOk(t / "m1"));
  std::string c = TarString(ScanOk(t / "m2"));
  EXPECT_EQ(Sha256Hex(a), Sha256Hex(b));
  EXPECT_EQ(Sha256Hex(a), Sha256Hex(c));
  EXPECT_NE(Sha256Hex(a), Sha256Hex(TarString(ScanOk(t / "m1"), 1)));  // mtime is in the bytes
}

// libarchive converts names from the process locale; the writer must not.
TEST(TarWriterTest, SameBytesWhateverTheProcessLocale) {
  TempDir t;
  MakeModel(t / "m");
  auto entries = ScanOk(t / "m");
  std::string c_locale = TarString(entries);
  const char* old = std::setlocale(LC_ALL, nullptr);
  std::string saved = old ? old : "C";
  for (const char* loc : {"C.UTF-8", "POSIX"}) {
    if (std::setlocale(LC_ALL, loc) == nullptr) continue;
    EXPECT_EQ(Sha256Hex(TarString(entries)), Sha256Hex(c_locale)) << loc;
  }
  std::setlocale(LC_ALL, saved.c_str());
}

TEST(TarWriterTest, SourceDateEpoch) {
  const char* old = std::getenv("SOURCE_DATE_EPOCH");
  std::string saved = old ? old : "";
  ::unsetenv("SOURCE_DATE_EPOCH");
  EXPECT_EQ(DefaultMtime(), 0);
  for (auto [value, want] :
       std::vector<std::pair<const char*, int64_t>>{{"1700000000", 1700000000},
                                                    {"0", 0},
                                                    {"", 0},
                                                    {"abc", 0},
                                                    {"12x", 0},
                                                    {"-5", 0},
                                                    {"99999999999999999999999", 0}}) {
    ::setenv("SOURCE_DATE_EPOCH", value, 1);
    EXPECT_EQ(DefaultMtime(), want) << value;
  }
  ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
  TempDir t;
  WriteFile(t / "m/f", "x");
  fs::path tar = t / "layer.tar";
  WriteFile(tar, TarString(ScanOk(t / "m"), DefaultMtime()));
  for (const auto& m : PyList(tar)) EXPECT_EQ(m["mtime"], 1700000000) << m["name"];
  if (old) {
    ::setenv("SOURCE_DATE_EPOCH", saved.c_str(), 1);
  } else {
    ::unsetenv("SOURCE_DATE_EPOCH");
  }
}

TarEntry FileEntry(std::string name, uint64_t size) {
  TarEntry e;
  e.type = TarEntry::Type::kFile;
  e.name = std::move(name);
  e.size = size;
  return e;
}

TEST(TarWriterTest, ContentFromAReader) {
  TempDir t;
  StringWriter w;
  TarWriter tar(w, TarOptions{});
  TarEntry dir;
  dir.type = TarEntry::Type::kDirectory;
  dir.name = "models";
  dir.mode = 0755;
  ASSERT_TRUE(tar.Add(dir));
  std::string content = RandomBytes(5 << 20, 7);  // more than one read block
  StringReader r(content);
  ASSERT_TRUE(tar.Add(FileEntry("models/streamed.bin", content.size()), &r));
  ASSERT_TRUE(tar.Finish());
  WriteFile(t / "l.tar", w.str());
  auto members = PyList(t / "l.tar");
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[1]["sha256"], Sha256Hex(content));
}

// A Writer with memory of its own (like the layer pipeline's shards): it
// offers the rest of its current "shard" (an odd size, so reads straddle
// shard ends) and counts the bytes that arrive there in place.
class ShardedWriter final : public Writer {
 public:
  static constexpr size_t kShard = 100'003;
  Result<void> Write(std::span<const std::byte> data) override {
    if (!data.empty() && data.data() == shard_.data() + used_) {
      EXPECT_LE(used_ + data.size(), kShard);
      in_place += data.size();
      used_ += data.size();
    } else {
      copied += data.size();
      while (!data.empty()) {
        size_t n = std::min(data.size(), kShard - used_);
        std::copy_n(data.data(), n, shard_.data() + used_);
        used_ += n;
        data = data.subspan(n);
        if (used_ == kShard) Rotate();
      }
      return {};
    }
    if (used_ == kShard) Rotate();
    return {};
  }
  std::span<std::byte> WriteSpace() override { return {shard_.data() + used_, kShard - used_}; }
  Result<void> Close() override {
    Rotate();
    return {};
  }
  std::string out;
  uint64_t in_place = 0, copied = 0;

 private:
  void Rotate() {
    out.append(reinterpret_cast<const char*>(shard_.data()), used_);
    used_ = 0;
    // Scribble over the old shard: bytes must never be read from it again.
    std::fill(shard_.begin(), shard_.end(), std::byte{0x5a});
  }
  std::vector<std::byte> shard_ = std::vector<std::byte>(kShard);
  size_t used_ = 0;
};

// File contents (from a file and from a Reader) are read straight into the
// Writer's space, and the archive is byte for byte the one a plain Writer gets.
TEST(TarWriterTest, ContentIsReadStraightIntoTheWritersSpace) {
  TempDir t;
  MakeModel(t / "m");
  std::string streamed = RandomBytes((2 << 20) + 333, 9);
  auto write_all = [&](Writer& w) {
    TarWriter tar(w, TarOptions{});
    auto entries = ScanOk(t / "m");
    for (const TarEntry& e : entries) {
      auto r = tar.Add(e);
      ASSERT_TRUE(r) << e.name << ": " << r.error().message;
    }
    StringReader r(streamed);
    ASSERT_TRUE(tar.Add(FileEntry("models/streamed.bin", streamed.size()), &r));
    ASSERT_TRUE(tar.Finish());
  };
  StringWriter plain;
  write_all(plain);
  ShardedWriter sharded;
  write_all(sharded);
  ASSERT_TRUE(sharded.Close());
  EXPECT_EQ(sharded.out, plain.str());
  uint64_t contents = streamed.size();
  for (const TarEntry& e : ScanOk(t / "m")) {
    if (e.type == TarEntry::Type::kFile) contents += e.size;
  }
  EXPECT_EQ(sharded.in_place, contents);  // every content byte, none copied
  EXPECT_EQ(sharded.in_place + sharded.copied, plain.str().size());
}

// The stream after a size mismatch: an error, and nothing that looks complete.
void ExpectChangedWhileRead(const std::string& content, uint64_t declared) {
  StringWriter w;
  size_t before_error = 0;
  {
    TarWriter tar(w, TarOptions{});
    ASSERT_TRUE(tar.Add(FileEntry("models/a", 3), std::make_unique<StringReader>("abc").get()));
    StringReader r(content);
    auto res = tar.Add(FileEntry("models/b", declared), &r);
    ASSERT_FALSE(res);
    EXPECT_EQ(res.error().code, ErrorCode::kIo);
    EXPECT_NE(res.error().message.find("changed while it was read"), std::string::npos)
        << res.error().message;
    EXPECT_NE(res.error().message.find("models/b"), std::string::npos) << res.error().message;
    auto fin = tar.Finish();
    EXPECT_FALSE(fin);
    StringReader more("x");
    EXPECT_FALSE(tar.Add(FileEntry("models/c", 1), &more));
    before_error = w.str().size();
  }
  EXPECT_EQ(w.str().size(), before_error);  // the destructor wrote no end blocks
  EXPECT_NE(w.str().substr(w.str().size() - 1024), std::string(1024, '\0'));
}

TEST(TarWriterTest, ReaderYieldingFewerBytesIsAnError) {
  ExpectChangedWhileRead(std::string(1000, 's'), 5000);
}

TEST(TarWriterTest, ReaderYieldingMoreBytesIsAnError) {
  ExpectChangedWhileRead(std::string(1000, 'l'), 999);
}

TEST(TarWriterTest, SourceThatChangedSinceTheScanIsAnErrorAndStreamStaysUsable) {
  TempDir t;
  WriteFile(t / "m/a", "abc");
  WriteFile(t / "m/b", "bbb");
  auto entries = ScanOk(t / "m");
  WriteFile(t / "m/a", "abcdef");  // grew after the scan
  StringWriter w;
  TarWriter tar(w, TarOptions{});
  ASSERT_TRUE(tar.Add(entries[0]));
  auto r = tar.Add(entries[1]);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_NE(r.error().message.find((t / "m/a").string()), std::string::npos);
  EXPECT_NE(r.error().message.find("changed"), std::string::npos);
  fs::remove(t / "m/b");
  auto gone = tar.Add(entries[2]);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(tar.Finish());
  WriteFile(t / "l.tar", w.str());
  auto members = PyList(t / "l.tar");
  ASSERT_EQ(members.size(), 1u);  // only "models"; the failed entries left no trace
}

// Runs `action` once, on the first write of file data (after the headers),
// to change the source file while the writer reads it.
class MeddlingWriter final : public Writer {
 public:
  explicit MeddlingWriter(std::function<void()> action) : action_(std::move(action)) {}
  Result<void> Write(std::span<const std::byte> data) override {
    if (data.size() > 512 && action_) {
      action_();
      action_ = nullptr;
    }
    return {};
  }

 private:
  std::function<void()> action_;
};

void ExpectFileChangeDetected(const fs::path& file, std::function<void()> change) {
  auto entries = ScanOk(file.parent_path());
  ASSERT_EQ(entries.size(), 2u);
  MeddlingWriter w(std::move(change));
  TarWriter tar(w, TarOptions{});
  ASSERT_TRUE(tar.Add(entries[0]));
  auto r = tar.Add(entries[1]);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_NE(r.error().message.find(file.string()), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("changed while it was read"), std::string::npos)
      << r.error().message;
  EXPECT_FALSE(tar.Finish());
}

TEST(TarWriterTest, FileGrowingWhileReadIsAnError) {
  TempDir t;
  WriteFile(t / "m/w.bin", std::string(3 << 20, 'g'));
  ExpectFileChangeDetected(t / "m/w.bin", [&] {
    std::ofstream(t / "m/w.bin", std::ios::app | std::ios::binary) << "more";
  });
}

TEST(TarWriterTest, FileShrinkingWhileReadIsAnError) {
  TempDir t;
  WriteFile(t / "m/w.bin", std::string(3 << 20, 's'));
  ExpectFileChangeDetected(t / "m/w.bin", [&] { fs::resize_file(t / "m/w.bin", 1 << 20); });
}

TEST(TarWriterTest, FileRewrittenInPlaceWhileReadIsAnError) {
  TempDir t;
  WriteFile(t / "m/w.bin", std::string(3 << 20, 'r'));
  ExpectFileChangeDetected(t / "m/w.bin", [&] {
    std::fstream f(t / "m/w.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 << 20);
    f << "changed";  // same size, new mtime
    f.close();
    struct timespec later[2] = {{0, UTIME_OMIT}, {0, 0}};
    ::clock_gettime(CLOCK_REALTIME, &later[1]);
    later[1].tv_sec += 10;  // coarse-grained mtime clocks: make the change visible
    ::utimensat(AT_FDCWD, (t / "m/w.bin").c_str(), later, 0);
  });
}

// Fails every write after `limit` bytes.
class FailingWriter final : public Writer {
 public:
  explicit FailingWriter(size_t limit) : limit_(limit) {}
  Result<void> Write(std::span<const std::byte> data) override {
    if (written_ + data.size() > limit_) return Fail(ErrorCode::kIo, "disk full (test)");
    written_ += data.size();
    return {};
  }

 private:
  size_t limit_;
  size_t written_ = 0;
};

TEST(TarWriterTest, WriterErrorsPropagate) {
  FailingWriter w(4096);
  TarWriter tar(w, TarOptions{});
  StringReader r(std::string(100000, 'x'));
  auto res = tar.Add(FileEntry("models/big", 100000), &r);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kIo);
  EXPECT_EQ(res.error().message, "disk full (test)");
  EXPECT_FALSE(tar.Finish());
}

}  // namespace
}  // namespace mc::oci
