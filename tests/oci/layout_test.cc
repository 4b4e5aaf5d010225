#include "oci/layout.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "oci/media_types.h"
#include "tests/support/paths.h"

namespace mc::oci {
namespace {

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
