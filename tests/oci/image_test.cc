#include "oci/image.h"

#include <gtest/gtest.h>

#include "oci/media_types.h"

namespace mc::oci {
namespace {

TEST(ImageTest, ManifestRoundTripIsCanonical) {
  Manifest m;
  m.config.media_type = std::string(media::kOciConfig);
  m.config.digest = Digest::Of("{}");
  m.config.size = 2;
  Descriptor l;
  l.media_type = std::string(media::kOciLayerGzip);
  l.digest = Digest::Of("layer");
  l.size = 5;
  m.layers.push_back(l);
  m.annotations["org.opencontainers.image.title"] = "x";
  std::string a = SerializeManifest(m);
  auto parsed = ParseManifest(a);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(SerializeManifest(*parsed), a);
  EXPECT_EQ(parsed->layers.at(0), l);
  EXPECT_EQ(a.find(' '), std::string::npos);
}

TEST(ImageTest, ParseErrorsAreInvalidInput) {
  EXPECT_EQ(ParseManifest("{").error().code, ErrorCode::kInvalidInput);
  EXPECT_EQ(ParseManifest("{\"schemaVersion\":1}").error().code, ErrorCode::kInvalidInput);
  EXPECT_EQ(ParseIndex("[]").error().code, ErrorCode::kInvalidInput);
  auto bad_digest = ParseManifest(
      R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]})");
  ASSERT_FALSE(bad_digest);
  EXPECT_NE(bad_digest.error().message.find("invalid digest"), std::string::npos);
}

TEST(ImageTest, DetectsMediaTypeFromShape) {
  EXPECT_EQ(*DetectManifestMediaType(R"({"schemaVersion":2,"manifests":[]})"), media::kOciIndex);
  EXPECT_EQ(*DetectManifestMediaType(R"({"schemaVersion":2,"layers":[]})"), media::kOciManifest);
  EXPECT_EQ(*DetectManifestMediaType(
                R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json"})"),
            media::kDockerManifest);
}

TEST(PlatformTest, ParseAndMatch) {
  auto p = Platform::Parse("linux/arm64/v8");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->String(), "linux/arm64/v8");
  EXPECT_TRUE(Platform::Parse("linux/arm64")->Matches(*p));
  EXPECT_FALSE(Platform::Parse("linux/amd64")->Matches(*p));
  EXPECT_FALSE(Platform::Parse("linux"));
  EXPECT_FALSE(Platform::Parse("linux//x"));
  EXPECT_FALSE(Platform::Parse("a/b/c/d"));
}

}  // namespace
}  // namespace mc::oci
