// `copy` to and from skopeo's dir: transport, checked against skopeo itself:
// mc-engine writes dir:X and skopeo reads it back into an OCI layout, skopeo
// writes dir:Y and mc-engine reads it; digests and blobs must survive both ways.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "tests/support/oci_test_image.h"
#include "tests/support/paths.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

class DirTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    ASSERT_TRUE(WriteTwoPlatformLayout(tmp_ / "layout", "v1", 256 << 10, &image_, &err)) << err;
  }
  int Engine(const std::string& args, std::string* out) {
    return mc::testing::Run("timeout 120 " + EngineBinary() + " " + args, out);
  }
  // Digest of the image tagged `tag` in the OCI layout `dir`.
  static std::string Tagged(const fs::path& dir, const std::string& tag) {
    auto idx = nlohmann::json::parse(ReadFile(dir / "index.json"));
    for (const auto& m : idx["manifests"]) {
      if (m["annotations"].value("org.opencontainers.image.ref.name", "") == tag) {
        return m["digest"].get<std::string>();
      }
    }
    return "";
  }
  std::string P(const std::string& name) const { return Quote((tmp_ / name).string()); }

  TempDir tmp_;
  TestImage image_;
};

TEST_F(DirTransportTest, McEngineWritesDirThatSkopeoReads) {
  std::string out;
  ASSERT_EQ(Engine("copy oci:" + P("layout") + ":v1 dir:" + P("d"), &out), 0) << out;
  fs::path d = tmp_ / "d";
  EXPECT_EQ(ReadFile(d / "version"), "Directory Transport Version: 1.1\n");
  EXPECT_EQ(oci::Digest::Of(ReadFile(d / "manifest.json")).String(), image_.index_digest);
  for (const auto& [arch, digest] : image_.children) {
    std::string hex = digest.substr(7);
    EXPECT_TRUE(fs::exists(d / (hex + ".manifest.json"))) << arch;
  }
  EXPECT_TRUE(fs::exists(d / image_.shared_layer.substr(7)));
  ASSERT_EQ(mc::testing::Run("timeout 120 skopeo copy --all --preserve-digests dir:" + P("d") +
                                 " oci:" + P("back") + ":v2",
                             &out),
            0)
      << out;
  EXPECT_EQ(Tagged(tmp_ / "back", "v2"), image_.index_digest);
  // One platform only: manifest.json is that image.
  ASSERT_EQ(Engine("copy --platform linux/arm64 oci:" + P("layout") + ":v1 dir:" + P("arm"), &out),
            0)
      << out;
  EXPECT_EQ(oci::Digest::Of(ReadFile(tmp_ / "arm/manifest.json")).String(),
            image_.children.at("arm64"));
  std::string raw;
  ASSERT_EQ(mc::testing::Run("timeout 120 skopeo inspect --raw dir:" + P("arm"), &raw, false), 0);
  EXPECT_EQ(oci::Digest::Of(raw).String(), image_.children.at("arm64"));
}

TEST_F(DirTransportTest, McEngineReadsDirThatSkopeoWrote) {
  std::string out;
  ASSERT_EQ(mc::testing::Run("timeout 120 skopeo copy --all --preserve-digests oci:" + P("layout") +
                                 ":v1 dir:" + P("s"),
                             &out),
            0)
      << out;
  ASSERT_EQ(Engine("copy dir:" + P("s") + " oci:" + P("mine") + ":v3", &out), 0) << out;
  EXPECT_EQ(Tagged(tmp_ / "mine", "v3"), image_.index_digest);
  for (const auto& e : fs::directory_iterator(tmp_ / "layout/blobs/sha256")) {
    EXPECT_TRUE(fs::exists(tmp_ / "mine/blobs/sha256" / e.path().filename()))
        << e.path().filename();
  }
  // A copy dir: → dir: refreshes an existing dir: destination.
  ASSERT_EQ(Engine("copy dir:" + P("s") + " dir:" + P("s2"), &out), 0) << out;
  ASSERT_EQ(Engine("copy dir:" + P("s") + " dir:" + P("s2"), &out), 0) << out;
  EXPECT_EQ(oci::Digest::Of(ReadFile(tmp_ / "s2/manifest.json")).String(), image_.index_digest);
}

TEST_F(DirTransportTest, RefusesWhatIsNotADirImage) {
  std::string out;
  WriteFile(tmp_ / "busy/notes.txt", "mine\n");
  EXPECT_EQ(Engine("copy oci:" + P("layout") + ":v1 dir:" + P("busy"), &out), 2) << out;
  EXPECT_NE(out.find("no version file"), std::string::npos) << out;
  EXPECT_EQ(ReadFile(tmp_ / "busy/notes.txt"), "mine\n");
  EXPECT_EQ(Engine("copy dir:" + P("busy") + " oci:" + P("x") + ":v1", &out), 2) << out;
  EXPECT_EQ(Engine("copy dir:" + P("nowhere") + " oci:" + P("x") + ":v1", &out), 4) << out;
}

}  // namespace
}  // namespace mc::testing
