#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "engine/build.h"
#include "engine/executor.h"
#include "oci/compress.h"
#include "oci/layout.h"
#include "oci/media_types.h"
#include "tests/support/mem_blob_sink.h"
#include "tests/support/paths.h"
#include "tests/support/retaining_sink.h"

namespace mc::engine {
namespace {

using mc::testing::MemDestination;
using mc::testing::TempDir;
using mc::testing::WriteFile;

std::vector<oci::TarEntry> MakeEntries(const TempDir& tmp) {
  std::string big(9 << 20, '\0');  // spans several shards
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 11);
  WriteFile(tmp / "m/a.bin", big);
  WriteFile(tmp / "m/b/c.json", "{}");
  auto entries = oci::ScanDirectory(tmp / "m", oci::ScanOptions{"/models"});
  EXPECT_TRUE(entries) << entries.error().message;
  return *entries;
}

std::string Decompress(const std::string& blob, oci::Compression c) {
  auto r = oci::NewDecompressingReader(std::make_unique<oci::StringReader>(blob), c);
  EXPECT_TRUE(r);
  auto all = oci::ReadAll(**r, 1 << 30);
  EXPECT_TRUE(all);
  return *all;
}

TEST(LayerBuilderTest, DigestsMatchContentForEveryCodecAndJobs) {
  TempDir tmp;
  auto entries = MakeEntries(tmp);
  for (auto c : {oci::Compression::kGzip, oci::Compression::kZstd, oci::Compression::kNone}) {
    std::optional<oci::Digest> first;
    for (int jobs : {1, 2, 8}) {
      MemDestination dest;
      LayerBuildOptions o;
      o.compression = c;
      o.jobs = jobs;
      auto layer = BuildLayer(entries, o, dest);
      ASSERT_TRUE(layer) << layer.error().message;
      const std::string& blob = dest.blobs.at(layer->descriptor.digest);
      EXPECT_EQ(static_cast<int64_t>(blob.size()), layer->descriptor.size);
      std::string tar = c == oci::Compression::kNone ? blob : Decompress(blob, c);
      EXPECT_EQ(oci::Digest::Of(tar), layer->diff_id);
      EXPECT_EQ(tar.size(), layer->tar_size);
      EXPECT_EQ(layer->descriptor.media_type, oci::LayerMediaType(c));
      EXPECT_EQ(layer->files, 2u);
      if (!first) first = layer->descriptor.digest;
      EXPECT_EQ(*first, layer->descriptor.digest) << "jobs=" << jobs;
    }
  }
}

// A sink that keeps buffers after WriteBuffer (as a registry upload does)
// gets the same bytes, and the pipeline never waits for a buffer it keeps:
// the pools have room for them. Zeros make tiny compressed shards, which the
// pipeline gathers before handing them on.
TEST(LayerBuilderTest, SinkKeepingBuffersGetsTheSameBytes) {
  TempDir tmp;
  auto entries = MakeEntries(tmp);
  WriteFile(tmp / "z/zeros.bin", std::string(21 << 20, '\0'));
  auto zeros = oci::ScanDirectory(tmp / "z", oci::ScanOptions{"/models"});
  ASSERT_TRUE(zeros) << zeros.error().message;
  for (const auto* e : {&entries, &*zeros}) {
    for (auto c : {oci::Compression::kGzip, oci::Compression::kZstd, oci::Compression::kNone}) {
      LayerBuildOptions o;
      o.compression = c;
      o.jobs = 2;
      MemDestination plain;
      auto want = BuildLayer(*e, o, plain);
      ASSERT_TRUE(want) << want.error().message;
      for (uint64_t retain : {uint64_t{1} << 20, uint64_t{9} << 20}) {
        mc::testing::RetainingDestination dest(retain);
        auto layer = BuildLayer(*e, o, dest);
        ASSERT_TRUE(layer) << layer.error().message;
        EXPECT_EQ(layer->descriptor.digest, want->descriptor.digest) << retain;
        EXPECT_EQ(dest.inner.blobs.at(layer->descriptor.digest),
                  plain.blobs.at(want->descriptor.digest));
      }
    }
  }
}

// A sink that fails after some bytes: the error surfaces, nothing is committed.
class FailingDestination final : public oci::BlobSink {
 public:
  oci::Result<bool> Exists(const oci::Digest&) override { return false; }
  oci::Result<std::unique_ptr<oci::BlobWriter>> Begin(const oci::BlobHint&) override {
    class W final : public oci::BlobWriter {
     public:
      explicit W(FailingDestination* d) : d_(d) {}
      oci::Result<void> Write(std::span<const std::byte> data) override {
        n_ += data.size();
        if (d_->fail_writes && n_ > (1 << 20)) return oci::Fail(oci::ErrorCode::kIo, "disk full");
        return {};
      }
      oci::Result<void> Commit(const oci::Digest&, uint64_t) override {
        d_->committed = true;
        return {};
      }
      void Abort() override { d_->aborted = true; }

     private:
      FailingDestination* d_;
      size_t n_ = 0;
    };
    return std::make_unique<W>(this);
  }
  bool fail_writes = true;
  bool committed = false;
  bool aborted = false;
};

TEST(LayerBuilderTest, SinkErrorStopsThePipeline) {
  TempDir tmp;
  auto entries = MakeEntries(tmp);
  FailingDestination dest;
  LayerBuildOptions o;
  o.compression = oci::Compression::kNone;
  o.jobs = 2;
  auto layer = BuildLayer(entries, o, dest);
  ASSERT_FALSE(layer);
  EXPECT_EQ(layer.error().code, oci::ErrorCode::kIo);
  EXPECT_FALSE(dest.committed);
  EXPECT_TRUE(dest.aborted);
}

TEST(LayerBuilderTest, StreamsContentFromAnOpener) {
  std::vector<oci::TarEntry> entries;
  oci::TarEntry dir;
  dir.type = oci::TarEntry::Type::kDirectory;
  dir.name = "models";
  dir.mode = 0755;
  entries.push_back(dir);
  oci::TarEntry f;
  f.name = "models/streamed.bin";
  f.size = 5 << 20;
  entries.push_back(f);
  MemDestination dest;
  LayerBuildOptions o;
  o.compression = oci::Compression::kGzip;
  o.content = [](const oci::TarEntry& e) -> oci::Result<std::unique_ptr<oci::Reader>> {
    return std::make_unique<oci::StringReader>(std::string(e.size, 'z'));
  };
  auto layer = BuildLayer(entries, o, dest);
  ASSERT_TRUE(layer) << layer.error().message;
  EXPECT_EQ(layer->file_bytes, 5u << 20);

  // A stream shorter than the entry's size is an error, never a silently wrong layer.
  o.content = [](const oci::TarEntry& e) -> oci::Result<std::unique_ptr<oci::Reader>> {
    return std::make_unique<oci::StringReader>(std::string(e.size - 1, 'z'));
  };
  EXPECT_FALSE(BuildLayer(entries, o, dest));
}

TEST(BuildImageTest, ConfigAndManifestForScratch) {
  TempDir tmp;
  MakeEntries(tmp);
  MemDestination dest;
  ModelInput in;
  in.dir = (tmp / "m").string();
  BuildOptions o;
  o.tag = "t";
  o.labels["a"] = "b";
  auto r = BuildImage(in, o, dest);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->files, 2u);
  ASSERT_TRUE(dest.tags.contains("t"));
  auto m = oci::ParseManifest(dest.tags["t"].bytes);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->layers.size(), 1u);
  auto cfg = nlohmann::json::parse(dest.blobs.at(m->config.digest));
  EXPECT_EQ(cfg["rootfs"]["diff_ids"][0], r->layers[0].diff_id.String());
  EXPECT_EQ(cfg["config"]["Labels"]["a"], "b");
  EXPECT_EQ(cfg["config"]["User"], "1001");
  EXPECT_EQ(cfg["created"], "1970-01-01T00:00:00Z");
  EXPECT_FALSE(r->warnings.empty());  // scratch has no shell

  o.strict = true;
  auto strict = BuildImage(in, o, dest);
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().code, oci::ErrorCode::kInvalidInput);
}

// A task that throws (an allocation failure, a bug) in any stage of the layer
// pipeline fails the layer with an error naming the stage: the process is not
// terminated, nothing waits forever, and no blob is committed.
TEST(LayerBuilderTest, ATaskThatThrowsFailsTheLayerInEveryStage) {
  TempDir tmp;
  auto entries = MakeEntries(tmp);  // three shards
  struct Case {
    const char* stage;
    int nth;
    oci::Compression c;
  };
  for (const Case& k :
       {Case{"compress", 1, oci::Compression::kGzip}, Case{"compress", 3, oci::Compression::kZstd},
        Case{"layer writer", 1, oci::Compression::kGzip},
        Case{"layer writer", 1, oci::Compression::kNone}}) {
    SCOPED_TRACE(std::string(k.stage) + " task " + std::to_string(k.nth));
    FailingDestination dest;
    dest.fail_writes = false;
    LayerBuildOptions o;
    o.compression = k.c;
    o.jobs = 2;
    InjectTaskFaultForTesting(k.stage, k.nth);
    auto layer = BuildLayer(entries, o, dest);
    InjectTaskFaultForTesting(k.stage, 0);
    ASSERT_FALSE(layer);
    EXPECT_EQ(layer.error().code, oci::ErrorCode::kInternal);
    EXPECT_EQ(layer.error().message,
              "internal error in the " + std::string(k.stage) + " stage: injected fault");
    EXPECT_FALSE(dest.committed);
    EXPECT_TRUE(dest.aborted);
  }
  // Disarmed, the same build works.
  MemDestination dest;
  EXPECT_TRUE(BuildLayer(entries, LayerBuildOptions{}, dest));
}

// Layers built at once: a layer task that throws fails the build, and no
// manifest is stored.
TEST(BuildImageTest, ALayerTaskThatThrowsFailsTheBuild) {
  TempDir tmp;
  MakeEntries(tmp);
  WriteFile(tmp / "m/d.bin", "more");
  for (int nth : {1, 2}) {
    MemDestination dest;
    ModelInput in;
    in.dir = (tmp / "m").string();
    BuildOptions o;
    o.tag = "t";
    o.max_layer_size = 4 << 20;  // two layers: a.bin, then the small files
    o.use_cache = false;
    o.parallel_layers = 2;
    InjectTaskFaultForTesting("layer build", nth);
    auto r = BuildImage(in, o, dest);
    InjectTaskFaultForTesting("layer build", 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInternal);
    EXPECT_EQ(r.error().message, "internal error in the layer build stage: injected fault");
    EXPECT_TRUE(dest.tags.empty());
    EXPECT_TRUE(dest.manifests.empty());
  }
}

// A build into an oci: layout that fails after some layers were committed
// leaves those blobs (no index entry, no temporary file); the next run of the
// same build reuses them, so afterwards every blob is referenced.
TEST(BuildImageTest, AFailedBuildsBlobsAreReusedByTheNextRun) {
  TempDir tmp;
  MakeEntries(tmp);  // a.bin (3 shards), b/c.json
  WriteFile(tmp / "m/d.bin", "more");
  ModelInput in;
  in.dir = (tmp / "m").string();
  BuildOptions o;
  o.tag = "t";
  o.max_layer_size = 4 << 20;  // two layers: a.bin (3 shards), then the small files
  o.parallel_layers = 1;
  o.use_cache = false;
  auto blobs = [&] {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(tmp / "l/blobs/sha256")) {
      names.insert(e.path().filename().string());
    }
    return names;
  };
  {
    auto dest = oci::LayoutDestination::Open(tmp / "l");
    ASSERT_TRUE(dest) << dest.error().message;
    InjectTaskFaultForTesting("compress", 4);  // the second layer's only shard
    auto r = BuildImage(in, o, **dest);
    InjectTaskFaultForTesting("compress", 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInternal) << r.error().message;
  }
  EXPECT_TRUE(oci::ReadLayoutIndex(tmp / "l")->manifests.empty());
  const auto after_failure = blobs();
  EXPECT_EQ(after_failure.size(), 1u);  // the first layer, nothing temporary
  auto dest = oci::LayoutDestination::Open(tmp / "l");
  auto r = BuildImage(in, o, **dest);
  ASSERT_TRUE(r) << r.error().message;
  std::set<std::string> referenced = {r->config.digest.hex(), r->manifest.digest.hex()};
  for (const auto& l : r->layers) referenced.insert(l.descriptor.digest.hex());
  EXPECT_EQ(blobs(), referenced);
  for (const auto& b : after_failure) EXPECT_TRUE(referenced.contains(b)) << b;
}

TEST(BuildImageTest, RfcTime) {
  EXPECT_EQ(oci::Rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(oci::Rfc3339(1700000000), "2023-11-14T22:13:20Z");
}

}  // namespace
}  // namespace mc::engine
