#include "oci/layout.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "oci/media_types.h"
#include "tests/support/paths.h"

namespace mc::oci {
namespace {

namespace fs = std::filesystem;
using mc::testing::ReadFile;
using mc::testing::TempDir;

RawManifest SomeManifest(LayoutDestination& dest, const std::string& layer_content) {
  auto w = dest.Begin(BlobHint{});
  EXPECT_TRUE(w);
  EXPECT_TRUE((*w)->Write(AsBytes(layer_content)));
  Digest d = Digest::Of(layer_content);
  EXPECT_TRUE((*w)->Commit(d, layer_content.size()));
  Manifest m;
  m.config = {std::string(media::kOciConfig), Digest::Of("{}"), 2};
  m.layers.push_back(
      {std::string(media::kOciLayer), d, static_cast<int64_t>(layer_content.size())});
  return RawManifest::FromBytes(SerializeManifest(m), std::string(media::kOciManifest));
}

TEST(LayoutTest, WritesLayoutFilesAndTagsAtomically) {
  TempDir tmp;
  auto dest = LayoutDestination::Open(tmp / "out");
  ASSERT_TRUE(dest) << dest.error().message;
  EXPECT_EQ(ReadFile(tmp / "out/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
  RawManifest a = SomeManifest(**dest, "layer a");
  RawManifest b = SomeManifest(**dest, "layer b");
  ASSERT_TRUE((*dest)->PutManifest(a, "v1"));
  ASSERT_TRUE((*dest)->PutManifest(b, "v2"));
  ASSERT_TRUE((*dest)->PutManifest(b, "v1"));  // retag: v1 now points at b
  auto index = ReadLayoutIndex(tmp / "out");
  ASSERT_TRUE(index);
  ASSERT_EQ(index->manifests.size(), 2u);
  for (const auto& d : index->manifests) EXPECT_EQ(d.digest, b.digest);

  auto src = LayoutSource::Open(tmp / "out");
  ASSERT_TRUE(src);
  auto got = (*src)->GetManifest("v2");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->bytes, b.bytes);
  EXPECT_EQ((*src)->GetManifest("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ((*src)->GetManifest("").error().code, ErrorCode::kInvalidInput);  // ambiguous
  auto by_digest = (*src)->GetManifest(a.digest.String());
  ASSERT_TRUE(by_digest);
  EXPECT_EQ(by_digest->bytes, a.bytes);
  // No temp files left behind.
  for (const auto& e : std::filesystem::directory_iterator(tmp / "out/blobs/sha256")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos);
  }
}

TEST(LayoutTest, AbortedAndMismatchedBlobsLeaveNothing) {
  TempDir tmp;
  auto dest = LayoutDestination::Open(tmp / "out");
  ASSERT_TRUE(dest);
  {
    auto w = (*dest)->Begin(BlobHint{});
    ASSERT_TRUE((*w)->Write(AsBytes("partial")));
    // destroyed without commit
  }
  {
    auto w = (*dest)->Begin(BlobHint{});
    ASSERT_TRUE((*w)->Write(AsBytes("abc")));
    auto r = (*w)->Commit(Digest::Of("abc"), 4);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kVerificationFailed);
  }
  size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator(tmp / "out/blobs/sha256"))
    ++n;
  EXPECT_EQ(n, 0u);
}

TEST(LayoutTest, ExistingBlobIsNotRewritten) {
  TempDir tmp;
  auto dest = LayoutDestination::Open(tmp / "out");
  ASSERT_TRUE(dest);
  for (int i = 0; i < 2; ++i) {
    auto w = (*dest)->Begin(BlobHint{});
    ASSERT_TRUE((*w)->Write(AsBytes("same")));
    ASSERT_TRUE((*w)->Commit(Digest::Of("same"), 4));
  }
  struct stat st1;
  ASSERT_EQ(::stat((*dest)->BlobPath(Digest::Of("same")).c_str(), &st1), 0);
  EXPECT_TRUE(*(*dest)->Exists(Digest::Of("same")));
  EXPECT_FALSE(*(*dest)->Exists(Digest::Of("other")));
}

// The temp blob of a run that died without cleaning up is removed by the
// next Open; one a live writer holds (or one just written) is left alone.
TEST(LayoutTest, OpenRemovesTempBlobsOfDeadRuns) {
  TempDir tmp;
  ASSERT_TRUE(LayoutDestination::Open(tmp / "out"));
  fs::path blobs = tmp / "out/blobs/sha256";
  auto age = [](const fs::path& p) {
    struct timespec old[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), old, 0), 0);
  };
  mc::testing::WriteFile(blobs / ".tmp-dead01", "half a layer");
  age(blobs / ".tmp-dead01");
  mc::testing::WriteFile(blobs / ".tmp-fresh1", "being written");
  // A writer of another process holding its temp blob, idle for an hour.
  auto live = LayoutDestination::Open(tmp / "out");
  ASSERT_TRUE(live);
  auto w = (*live)->Begin(BlobHint{});
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->Write(AsBytes(std::string("slow"))));
  std::vector<fs::path> held;
  for (const auto& e : fs::directory_iterator(blobs)) {
    std::string n = e.path().filename().string();
    if (n.starts_with(".tmp-") && n != ".tmp-dead01" && n != ".tmp-fresh1")
      held.push_back(e.path());
  }
  ASSERT_EQ(held.size(), 1u);
  age(held[0]);

  ASSERT_TRUE(LayoutDestination::Open(tmp / "out"));
  EXPECT_FALSE(fs::exists(blobs / ".tmp-dead01"));
  EXPECT_TRUE(fs::exists(blobs / ".tmp-fresh1"));
  EXPECT_TRUE(fs::exists(held[0]));
  Digest d = Digest::Of("slow");
  EXPECT_TRUE((*w)->Commit(d, 4));
  EXPECT_EQ(ReadFile(blobs / d.hex()), "slow");
}

// Nothing is written through a symlink inside the layout.
TEST(LayoutTest, SymlinksInsideTheLayoutAreRefused) {
  TempDir tmp;
  fs::create_directories(tmp / "elsewhere/sha256");
  fs::create_directories(tmp / "out");
  fs::create_directory_symlink(tmp / "elsewhere", tmp / "out/blobs");
  auto dest = LayoutDestination::Open(tmp / "out");
  ASSERT_FALSE(dest);
  EXPECT_EQ(dest.error().code, ErrorCode::kInvalidInput);
  EXPECT_NE(dest.error().message.find((tmp / "out/blobs").string()), std::string::npos)
      << dest.error().message;
  EXPECT_TRUE(fs::is_empty(tmp / "elsewhere/sha256"));

  fs::remove(tmp / "out/blobs");
  mc::testing::WriteFile(tmp / "elsewhere/index.json", "{}");
  fs::create_symlink(tmp / "elsewhere/index.json", tmp / "out/index.json");
  dest = LayoutDestination::Open(tmp / "out");
  ASSERT_FALSE(dest);
  EXPECT_NE(dest.error().message.find("index.json"), std::string::npos) << dest.error().message;
}

TEST(LayoutTest, RejectsNonLayouts) {
  TempDir tmp;
  mc::testing::WriteFile(tmp / "file", "x");
  EXPECT_EQ(LayoutDestination::Open(tmp / "file").error().code, ErrorCode::kInvalidInput);
  EXPECT_EQ(LayoutSource::Open(tmp / "missing").error().code, ErrorCode::kNotFound);
  mc::testing::WriteFile(tmp / "notlayout/index.json", "{}");
  EXPECT_EQ(LayoutDestination::Open(tmp / "notlayout").error().code, ErrorCode::kInvalidInput);
}

}  // namespace
}  // namespace mc::oci
