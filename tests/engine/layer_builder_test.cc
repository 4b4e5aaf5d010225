#include <gtest/gtest.h>

#include "engine/build.h"
#include "oci/compress.h"
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
        if (n_ > (1 << 20)) return oci::Fail(oci::ErrorCode::kIo, "disk full");
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

TEST(BuildImageTest, RfcTime) {
  EXPECT_EQ(Rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(Rfc3339(1700000000), "2023-11-14T22:13:20Z");
}

}  // namespace
}  // namespace mc::engine
