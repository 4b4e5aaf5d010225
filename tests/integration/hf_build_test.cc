// `mc-engine build hf://… oci:…` streams the snapshot into the layer and must
// give the very image that `download` followed by `build DIR` gives.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "tests/support/hub_fixture.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

bool EngineHasBuild() {
  std::string out;
  Run(Quote(EngineBinary()) + " --help", &out);
  return out.find("build") != std::string::npos;
}

nlohmann::json Manifest(const fs::path& layout) {
  auto index = nlohmann::json::parse(ReadFile(layout / "index.json"));
  std::string digest = index.at("manifests").at(0).at("digest").get<std::string>();
  return nlohmann::json::parse(ReadFile(layout / "blobs/sha256" / digest.substr(7)));
}

// The test model served by a Hub test server, and downloaded once into
// work/model (the staged copy the streamed builds are compared with).
class HfBuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EngineHasBuild()) GTEST_SKIP() << "this binary has no build command yet";
    MakeTestModel(model.path());
    hub_ = std::make_unique<HubServer>(model.path());
    ASSERT_EQ(hub_->Engine("download hf://org/model " + Quote(dir), &output), 0) << output;
  }
  TempDir model, work;
  fs::path dir = work / "model";
  std::unique_ptr<HubServer> hub_;
  std::string output;
};

TEST_F(HfBuildTest, StreamedBuildEqualsDownloadThenBuild) {
  HubServer& hub = *hub_;
  // The download's state (DIR/.mc-download) stays out of the image, and its
  // record of the source and commit gives the directory build the same
  // annotations as the streamed one.
  ASSERT_EQ(hub.Engine("build " + Quote(dir) + " oci:" + (work / "a").string() + ":t", &output), 0)
      << output;
  auto before = hub.Stats();
  ASSERT_EQ(hub.Engine("build hf://org/model oci:" + (work / "b").string() + ":t", &output), 0)
      << output;
  // The same image, byte for byte.
  auto a = Manifest(work / "a"), b = Manifest(work / "b");
  EXPECT_EQ(a["layers"], b["layers"]);
  EXPECT_EQ(a, b);
  EXPECT_EQ(b["annotations"]["org.opencontainers.image.source"], "hf://org/model");
  EXPECT_EQ(b["annotations"]["org.opencontainers.image.revision"], hub.Commit());
  // The streamed build fetched the bytes again (nothing was staged on disk).
  EXPECT_GT(hub.Stats()["bytes"]["cdn"].get<uint64_t>(), before["bytes"]["cdn"].get<uint64_t>());

  // Connections cut mid-file are resumed where they stopped: the same image.
  HubServer cutting(model.path(), {"--cut-after", "300000", "--cut-count", "3"});
  ASSERT_EQ(cutting.Engine("build hf://org/model oci:" + (work / "d").string() + ":t", &output), 0)
      << output;
  EXPECT_EQ(Manifest(work / "d"), a);
  EXPECT_EQ(cutting.Stats()["cut"].get<int>(), 3);

  // A corrupted byte fails the streamed build with exit 5 and no image.
  HubServer bad(model.path(), {"--corrupt", "model-00002-of-00002.safetensors"});
  EXPECT_EQ(bad.Engine("build hf://org/model oci:" + (work / "c").string() + ":t", &output), 5)
      << output;
  if (fs::exists(work / "c" / "index.json")) {
    auto index = nlohmann::json::parse(ReadFile(work / "c" / "index.json"));
    EXPECT_TRUE(index.value("manifests", nlohmann::json::array()).empty()) << index.dump();
  }
}

// Layers of at most 1 MiB, built two at a time: the streamer serves files opened
// from two threads out of archive order, and the image is still the one a
// directory build gives.
TEST_F(HfBuildTest, StreamedLayersBuiltInParallelEqualTheDirectoryBuild) {
  HubServer& hub = *hub_;
  ASSERT_EQ(hub.Engine("build " + Quote(dir) + " oci:" + (work / "a").string() +
                           ":t --max-layer-size 1M --compression zstd",
                       &output),
            0)
      << output;
  ASSERT_EQ(hub.Engine("build hf://org/model oci:" + (work / "b").string() +
                           ":t --max-layer-size 1M --compression zstd",
                       &output),
            0)
      << output;
  auto a = Manifest(work / "a"), b = Manifest(work / "b");
  EXPECT_GE(a["layers"].size(), 3u);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace mc::testing
