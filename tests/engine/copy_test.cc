// Unit tests of the copy engine over real OCI layouts and an in-memory
// destination: exact bytes, shared layers once, platform selection, corrupt
// blobs, parallel ranged reads and resumed reads.
#include "engine/copy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>

#include "engine/cancel.h"
#include "engine/copy_internal.h"
#include "engine/executor.h"
#include "oci/layout.h"
#include "oci/media_types.h"
#include "tests/support/mem_blob_sink.h"
#include "tests/support/paths.h"
#include "tests/support/retaining_sink.h"

namespace mc::engine {
namespace {

namespace fs = std::filesystem;
using oci::Descriptor;
using oci::RawManifest;

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes images into a layout with hand-made JSON (key order deliberately not
// canonical, and with whitespace, so "exact bytes" is actually tested).
class LayoutWriter {
 public:
  explicit LayoutWriter(const fs::path& dir) : dir_(dir) {
    dest_ = *oci::LayoutDestination::Open(dir);
  }
  Descriptor Blob(const std::string& bytes, const std::string& media_type) {
    Descriptor d;
    d.digest = oci::Digest::Of(bytes);
    d.size = static_cast<int64_t>(bytes.size());
    d.media_type = media_type;
    auto w = dest_->Begin({});
    EXPECT_TRUE(w.has_value());
    EXPECT_TRUE((*w)->Write(oci::AsBytes(bytes)).has_value());
    EXPECT_TRUE((*w)->Commit(d.digest, bytes.size()).has_value());
    return d;
  }
  static std::string DescJson(const Descriptor& d, const std::string& extra = "") {
    return "{ \"size\": " + std::to_string(d.size) + ", \"mediaType\": \"" + d.media_type +
           "\", \"digest\": \"" + d.digest.String() + "\"" + extra + " }";
  }
  RawManifest Image(const std::string& arch, const std::vector<std::string>& layers) {
    std::string cfg = "{\"architecture\":\"" + arch +
                      "\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    Descriptor c = Blob(cfg, std::string(oci::media::kOciConfig));
    std::string j =
        "{\n  \"schemaVersion\": 2,\n  \"config\": " + DescJson(c) + ",\n  \"layers\": [";
    for (size_t i = 0; i < layers.size(); ++i) {
      Descriptor l = Blob(layers[i], std::string(oci::media::kOciLayerGzip));
      j += (i ? ", " : "") + DescJson(l);
    }
    j += "],\n  \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\"\n}\n";
    RawManifest m = RawManifest::FromBytes(j, std::string(oci::media::kOciManifest));
    EXPECT_TRUE(dest_->PutChildManifest(m).has_value());
    return m;
  }
  RawManifest Index(const std::vector<std::pair<RawManifest, std::string>>& children) {
    std::string j = "{\"manifests\": [";
    for (size_t i = 0; i < children.size(); ++i) {
      const auto& [m, arch] = children[i];
      j += (i ? ", " : "") +
           DescJson(m.ToDescriptor(),
                    ", \"platform\": {\"os\": \"linux\", \"architecture\": \"" + arch + "\"}");
    }
    j += "], \"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.index.v1+json\"}";
    return RawManifest::FromBytes(j, std::string(oci::media::kOciIndex));
  }
  void Tag(const RawManifest& m, const std::string& tag) {
    ASSERT_TRUE(dest_->PutManifest(m, tag).has_value());
  }
  fs::path BlobPath(const oci::Digest& d) { return dest_->BlobPath(d); }

 private:
  fs::path dir_;
  std::unique_ptr<oci::LayoutDestination> dest_;
};

// Wraps a source: counts ranged opens, can break each plain stream or range
// stream after `break_after` bytes with kTransient, and can hide Range support.
class FlakySource final : public oci::ImageSource {
 public:
  explicit FlakySource(oci::ImageSource& inner) : inner_(inner) {}
  oci::Result<RawManifest> GetManifest(const std::string& r) override {
    return inner_.GetManifest(r);
  }
  oci::Result<std::unique_ptr<oci::Reader>> OpenBlob(const Descriptor& d) override {
    MC_ASSIGN_OR_RETURN(auto r, inner_.OpenBlob(d));
    return Wrap(std::move(r));
  }
  oci::Result<std::unique_ptr<oci::Reader>> OpenBlobRange(const Descriptor& d, uint64_t off,
                                                          uint64_t len) override {
    if (!ranges) return ImageSource::OpenBlobRange(d, off, len);
    ++range_opens;
    MC_ASSIGN_OR_RETURN(auto r, inner_.OpenBlobRange(d, off, len));
    return Wrap(std::move(r));
  }
  std::string Describe() const override { return "flaky:" + inner_.Describe(); }

  bool ranges = true;
  int64_t break_after = -1;  // bytes each stream yields before breaking
  std::atomic<int> breaks_left{0};
  std::atomic<int> range_opens{0};

 private:
  class Breaking final : public oci::Reader {
   public:
    Breaking(std::unique_ptr<oci::Reader> in, FlakySource* s) : in_(std::move(in)), s_(s) {}
    oci::Result<size_t> Read(std::span<std::byte> out) override {
      if (s_->break_after >= 0 && n_ >= s_->break_after && s_->breaks_left.fetch_sub(1) > 0) {
        return oci::Fail(oci::ErrorCode::kNetwork, "connection reset (test)");
      }
      if (n_ < s_->break_after) {
        out = out.first(std::min<size_t>(out.size(), static_cast<size_t>(s_->break_after - n_)));
      }
      auto r = in_->Read(out);
      if (r) n_ += static_cast<int64_t>(*r);
      return r;
    }

   private:
    std::unique_ptr<oci::Reader> in_;
    FlakySource* s_;
    int64_t n_ = 0;
  };
  std::unique_ptr<oci::Reader> Wrap(std::unique_ptr<oci::Reader> r) {
    return std::make_unique<Breaking>(std::move(r), this);
  }
  oci::ImageSource& inner_;
};

class CopyTest : public ::testing::Test {
 protected:
  testing::TempDir tmp_;
  fs::path src_dir_ = tmp_ / "src";
  LayoutWriter w_{src_dir_};
  std::string shared_ = RandomBytes(300000, 1);
};

TEST_F(CopyTest, ManifestCopiedWithExactBytesBetweenLayouts) {
  RawManifest m = w_.Image("amd64", {shared_, RandomBytes(1000, 2)});
  w_.Tag(m, "v1");
  auto src = *oci::LayoutSource::Open(src_dir_);
  auto dest = *oci::LayoutDestination::Open(tmp_ / "dst");
  auto r = CopyImage(*src, "v1", *dest, std::string("v2"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->manifest.digest, m.digest);
  EXPECT_EQ(r->blobs_copied, 3u);
  auto back = *oci::LayoutSource::Open(tmp_ / "dst");
  auto got = back->GetManifest("v2");
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->bytes, m.bytes);  // not re-serialised
  EXPECT_EQ(testing::ReadFile(dest->BlobPath(oci::Digest::Of(shared_))), shared_);

  // A second run finds everything present and streams nothing.
  auto again = CopyImage(*src, "v1", *dest, std::string("v2"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->blobs_copied, 0u);
  EXPECT_EQ(again->blobs_present, 3u);
}

TEST_F(CopyTest, IndexChildrenSharingALayerTransferItOnce) {
  RawManifest a = w_.Image("amd64", {shared_, RandomBytes(5000, 3)});
  RawManifest b = w_.Image("arm64", {shared_, RandomBytes(6000, 4)});
  RawManifest idx = w_.Index({{a, "amd64"}, {b, "arm64"}});
  w_.Tag(idx, "latest");
  auto src = *oci::LayoutSource::Open(src_dir_);
  testing::MemDestination dest;
  CopyOptions opts;
  opts.jobs = 8;
  auto r = CopyImage(*src, "latest", dest, std::string("t"), opts);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  // 2 configs + 2 own layers + 1 shared layer, each begun exactly once.
  EXPECT_EQ(dest.begins, 5);
  EXPECT_EQ(dest.blobs.size(), 5u);
  EXPECT_EQ(r->blobs_copied, 5u);
  EXPECT_EQ(r->manifests, 3u);
  EXPECT_EQ(dest.tags.at("t").bytes, idx.bytes);
  EXPECT_EQ(dest.manifests.at(a.digest).bytes, a.bytes);
  EXPECT_EQ(dest.manifests.at(b.digest).bytes, b.bytes);
}

TEST_F(CopyTest, PlatformPicksOneChild) {
  RawManifest a = w_.Image("amd64", {shared_});
  RawManifest b = w_.Image("arm64", {RandomBytes(7000, 5)});
  w_.Tag(w_.Index({{a, "amd64"}, {b, "arm64"}}), "latest");
  auto src = *oci::LayoutSource::Open(src_dir_);
  testing::MemDestination dest;
  CopyOptions opts;
  opts.platform = *oci::Platform::Parse("linux/arm64");
  auto r = CopyImage(*src, "", dest, std::string("t"), opts);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->manifest.digest, b.digest);
  EXPECT_EQ(dest.tags.at("t").bytes, b.bytes);
  EXPECT_EQ(dest.manifests.size(), 1u);
  EXPECT_FALSE(dest.blobs.contains(oci::Digest::Of(shared_)));

  opts.platform = *oci::Platform::Parse("linux/s390x");
  auto none = CopyImage(*src, "", dest, std::string("t"), opts);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, oci::ErrorCode::kNotFound);
  EXPECT_NE(none.error().message.find("linux/arm64"), std::string::npos) << none.error().message;
}

TEST_F(CopyTest, CorruptBlobFailsVerificationAndStoresNoManifest) {
  std::string bad = RandomBytes(200000, 6);
  RawManifest a = w_.Image("amd64", {RandomBytes(100, 7), bad});
  w_.Tag(a, "latest");
  std::string corrupt = bad;
  corrupt[12345] ^= 1;
  testing::WriteFile(w_.BlobPath(oci::Digest::Of(bad)), corrupt);
  auto src = *oci::LayoutSource::Open(src_dir_);
  for (uint64_t threshold : {uint64_t{1} << 40, uint64_t{1}}) {  // single stream, then ranges
    auto dest = *oci::LayoutDestination::Open(tmp_ / ("dst" + std::to_string(threshold)));
    CopyOptions opts;
    opts.range_threshold = threshold;
    opts.range_chunk = 16384;
    auto r = CopyImage(*src, "", *dest, std::string("latest"), opts);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, oci::ErrorCode::kVerificationFailed) << r.error().message;
    EXPECT_NE(r.error().message.find("source"), std::string::npos) << r.error().message;
    EXPECT_FALSE(fs::exists(dest->BlobPath(oci::Digest::Of(bad))));
    EXPECT_FALSE(fs::exists(dest->BlobPath(a.digest)));
    EXPECT_TRUE(oci::ReadLayoutIndex(dest->dir())->manifests.empty());
    for (auto& e : fs::directory_iterator(dest->dir() / "blobs" / "sha256")) {
      EXPECT_FALSE(e.path().filename().string().starts_with(".tmp")) << e.path();
    }
  }
}

TEST_F(CopyTest, LargeBlobUsesParallelRangesAndSurvivesBrokenReads) {
  std::string big = RandomBytes(1 << 20, 8);
  RawManifest a = w_.Image("amd64", {big});
  w_.Tag(a, "latest");
  auto layout = *oci::LayoutSource::Open(src_dir_);
  FlakySource src(*layout);
  src.break_after = 30000;
  src.breaks_left = 20;
  testing::MemDestination dest;
  CopyOptions opts;
  opts.range_threshold = 100000;
  opts.range_chunk = 65536;  // 16 chunks, most broken twice
  opts.range_streams = 3;
  auto r = CopyImage(src, "", dest, std::string("t"), opts);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(dest.blobs.at(oci::Digest::Of(big)), big);
  EXPECT_GE(src.range_opens.load(), 16 + 20);  // every chunk, plus the resumed ones
  EXPECT_LE(src.breaks_left.load(), 0);
}

// A task that throws in any worker stage of copy (the manifest walk of an
// index, the blob copies, the ranged reads of a large blob) fails the copy
// with an error naming the stage: no terminate, no hang, no manifest stored.
TEST_F(CopyTest, ATaskThatThrowsFailsTheCopyInEveryStage) {
  RawManifest a = w_.Image("amd64", {shared_, RandomBytes(1 << 20, 11)});
  RawManifest b = w_.Image("arm64", {shared_, RandomBytes(6000, 12)});
  w_.Tag(w_.Index({{a, "amd64"}, {b, "arm64"}}), "latest");
  auto src = *oci::LayoutSource::Open(src_dir_);
  struct Case {
    const char* stage;
    int nth;
  };
  for (const Case& k : {Case{"manifest walk", 1}, Case{"manifest walk", 2}, Case{"blob copy", 1},
                        Case{"blob copy", 3}, Case{"ranged read", 1}, Case{"ranged read", 2}}) {
    SCOPED_TRACE(std::string(k.stage) + " task " + std::to_string(k.nth));
    testing::MemDestination dest;
    CopyOptions opts;
    opts.jobs = 2;
    opts.range_threshold = 100000;
    opts.range_chunk = 65536;
    opts.range_streams = 3;
    opts.range_fan_out_below = 0;  // every stream from the start
    InjectTaskFaultForTesting(k.stage, k.nth);
    auto r = CopyImage(*src, "latest", dest, std::string("t"), opts);
    InjectTaskFaultForTesting(k.stage, 0);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, oci::ErrorCode::kInternal) << r.error().message;
    EXPECT_NE(r.error().message.find("internal error in the " + std::string(k.stage) +
                                     " stage: injected fault"),
              std::string::npos)
        << r.error().message;
    EXPECT_TRUE(dest.tags.empty());
  }
  testing::MemDestination dest;
  EXPECT_TRUE(CopyImage(*src, "latest", dest, std::string("t")).has_value());
}

TEST_F(CopyTest, SingleStreamResumesByRangeOrFallsBack) {
  std::string blob = RandomBytes(50000, 9);
  RawManifest a = w_.Image("amd64", {blob});
  w_.Tag(a, "latest");
  auto layout = *oci::LayoutSource::Open(src_dir_);
  {
    FlakySource src(*layout);
    src.break_after = 20000;
    src.breaks_left = 1;
    testing::MemDestination dest;
    auto r = CopyImage(src, "", dest, std::string("t"));
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(dest.blobs.at(oci::Digest::Of(blob)), blob);
    EXPECT_GE(src.range_opens.load(), 1);  // resumed mid-stream by Range
    EXPECT_EQ(dest.begins, 2);             // config + layer, no whole-blob retry
  }
  {
    // No Range support and a large blob: one plain stream; a break retries the blob.
    FlakySource src(*layout);
    src.ranges = false;
    src.break_after = 20000;
    src.breaks_left = 1;
    testing::MemDestination dest;
    CopyOptions opts;
    opts.range_threshold = 1000;
    auto r = CopyImage(src, "", dest, std::string("t"), opts);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(dest.blobs.at(oci::Digest::Of(blob)), blob);
    EXPECT_EQ(dest.begins, 3);  // the layer was begun again
  }
}

TEST_F(CopyTest, ParallelRangeReaderYieldsTheBlobInOrder) {
  std::string big = RandomBytes(1000003, 10);  // not a multiple of the chunk
  RawManifest a = w_.Image("amd64", {big});
  auto src = *oci::LayoutSource::Open(src_dir_);
  Descriptor d{.media_type = "x", .digest = oci::Digest::Of(big), .size = 1000003};
  for (int streams : {1, 2, 7}) {
    auto r = OpenParallelRangeReader(*src, d, 4096, streams);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    auto all = oci::ReadAll(**r, 2 << 20);
    ASSERT_TRUE(all.has_value()) << all.error().message;
    EXPECT_EQ(*all, big) << streams;
  }
  // Destroying a reader that is mid-way stops its workers.
  auto r = OpenParallelRangeReader(*src, d, 4096, 4);
  std::byte b[10];
  ASSERT_TRUE((*r)->Read(b).has_value());
}

// A writer that keeps buffers after WriteBuffer (as a registry upload keeps
// its chunks) gets every byte, and the copy never waits for a buffer the
// writer holds: the pool has room for them, on the ranged and the plain path.
TEST_F(CopyTest, PoolHasRoomForTheBuffersAWriterKeeps) {
  std::string big = RandomBytes(1 << 20, 11);
  w_.Tag(w_.Image("amd64", {big}), "latest");
  auto src = *oci::LayoutSource::Open(src_dir_);
  for (uint64_t threshold : {uint64_t{100000}, uint64_t{1} << 40}) {
    for (uint64_t retain : {uint64_t{0}, uint64_t{131072}, uint64_t{5 * 65536 + 1}}) {
      testing::RetainingDestination dest(retain);
      CopyOptions opts;
      opts.range_threshold = threshold;
      opts.range_chunk = 65536;
      opts.range_streams = 3;
      auto r = CopyImage(*src, "", dest, std::string("t"), opts);
      ASSERT_TRUE(r.has_value()) << r.error().message;
      EXPECT_EQ(dest.inner.blobs.at(oci::Digest::Of(big)), big) << threshold << " " << retain;
    }
  }
}

// The stream's pool: never more buffers out than it has, all of them home at
// the end, even when the consumer holds `reserve` buffers as a writer would.
TEST_F(CopyTest, ParallelRangeStreamStaysInsideItsPool) {
  std::string big = RandomBytes(300007, 12);
  w_.Image("amd64", {big});
  auto src = *oci::LayoutSource::Open(src_dir_);
  Descriptor d{.media_type = "x", .digest = oci::Digest::Of(big), .size = 300007};
  const size_t reserve = 3;
  std::string got;
  std::deque<oci::Buffer> kept;
  {
    auto s = OpenParallelRangeStream(*src, d, 4096, 4, 0, reserve);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    const oci::BufferPool& pool = (*s)->pool();
    EXPECT_EQ(pool.count(), 4u + 1 + reserve);
    for (;;) {
      auto b = (*s)->Next();
      ASSERT_TRUE(b.has_value()) << b.error().message;
      if (!*b) break;
      got.append((*b)->view());
      kept.push_back(std::move(**b));
      if (kept.size() > reserve) kept.pop_front();
      ASSERT_LE(pool.in_use(), pool.count());
    }
    kept.clear();
    EXPECT_EQ(pool.in_use(), 0u);
    EXPECT_LE(pool.high_water(), pool.count());
  }
  EXPECT_EQ(got, big);
}

// A layout source that counts range requests and breaks the first long one
// (more than one chunk) after `break_after` bytes, as a cut connection would.
class CountingSource final : public oci::ImageSource {
 public:
  CountingSource(oci::ImageSource& inner, uint64_t break_after)
      : inner_(inner), break_after_(break_after) {}
  oci::Result<oci::RawManifest> GetManifest(const std::string& t) override {
    return inner_.GetManifest(t);
  }
  oci::Result<std::unique_ptr<oci::Reader>> OpenBlob(const Descriptor& d) override {
    return inner_.OpenBlob(d);
  }
  oci::Result<std::unique_ptr<oci::Reader>> OpenBlobRange(const Descriptor& d, uint64_t off,
                                                          uint64_t len) override {
    {
      std::lock_guard lock(mu_);
      ++requests;
      requested_bytes += len;
    }
    return inner_.OpenBlobRange(d, off, len);
  }
  oci::Result<void> StreamBlobRange(const Descriptor& d, uint64_t off, uint64_t len,
                                    const ByteSink& sink) override {
    bool breaking = false;
    {
      std::lock_guard lock(mu_);
      ++requests;
      requested_bytes += len;
      if (len > 65536) ++long_requests;
      breaking = len > 65536 && break_after_ > 0 && !broke_;
      broke_ = broke_ || breaking;
    }
    if (!breaking) return inner_.StreamBlobRange(d, off, len, sink);
    uint64_t sent = 0;
    auto r = inner_.StreamBlobRange(
        d, off, len, [&](std::span<const std::byte> data) -> oci::Result<void> {
          auto n = static_cast<size_t>(std::min<uint64_t>(data.size(), break_after_ - sent));
          MC_RETURN_IF_ERROR(sink(data.first(n)));
          sent += n;
          if (sent == break_after_)
            return oci::Fail(oci::ErrorCode::kTransient, "connection reset");
          return oci::Result<void>{};
        });
    return r;
  }
  std::string Describe() const override { return "counting"; }
  std::mutex mu_;
  int requests = 0, long_requests = 0;
  uint64_t requested_bytes = 0;  // what all requests asked for

 private:
  oci::ImageSource& inner_;
  const uint64_t break_after_;
  bool broke_ = false;
};

// Reads the whole stream; returns the bytes.
std::string Drain(BufferStream& s) {
  std::string got;
  for (;;) {
    auto b = s.Next();
    EXPECT_TRUE(b.has_value()) << b.error().message;
    if (!b || !*b) return got;
    got.append((*b)->view());
  }
}

// A source that one stream reads fast enough is read with one request for
// the whole blob; one too slow for the threshold gets every stream.
TEST_F(CopyTest, OneFastStreamIsReadWithOneRequestASlowOneFansOut) {
  std::string big = RandomBytes(600011, 14);
  w_.Image("amd64", {big});
  auto layout = *oci::LayoutSource::Open(src_dir_);
  Descriptor d{.media_type = "x", .digest = oci::Digest::Of(big), .size = 600011};
  {
    CountingSource src(*layout, 0);
    auto s = OpenParallelRangeStream(src, d, 4096, 4, 0, 0, /*fan_out_below=*/1);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    EXPECT_EQ(Drain(**s), big);
    EXPECT_EQ((*s)->streams(), 1);
    EXPECT_EQ(src.long_requests, 1);  // the whole blob in one
    // The Range probe is one byte, not a chunk read and thrown away.
    EXPECT_EQ(src.requested_bytes, 600011u + 1u);
    EXPECT_EQ(src.requests, 2);
  }
  {
    CountingSource src(*layout, 0);
    auto s = OpenParallelRangeStream(src, d, 4096, 4, 0, 0, /*fan_out_below=*/uint64_t{1} << 60);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    EXPECT_EQ(Drain(**s), big);
    EXPECT_EQ((*s)->streams(), 4);
    EXPECT_GT(src.requests, 100);  // chunk by chunk after the first few
  }
}

// The single stream breaks mid-chunk: the chunk is finished with a ranged
// read from where it broke, the rest read chunk by chunk; the bytes are the blob's.
TEST_F(CopyTest, ABrokenSingleStreamContinuesWithRangedReads) {
  std::string big = RandomBytes(300007, 15);
  w_.Image("amd64", {big});
  auto layout = *oci::LayoutSource::Open(src_dir_);
  Descriptor d{.media_type = "x", .digest = oci::Digest::Of(big), .size = 300007};
  CountingSource src(*layout, 4096 * 5 + 123);
  auto s = OpenParallelRangeStream(src, d, 4096, 3, 2, 0, /*fan_out_below=*/1);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(Drain(**s), big);
  EXPECT_EQ((*s)->streams(), 1);
}

// SIGINT mid-stream: the consumer and the workers stop with kCancelled.
TEST_F(CopyTest, ParallelRangeStreamStopsWhenCancelled) {
  std::string big = RandomBytes(200000, 13);
  w_.Image("amd64", {big});
  auto src = *oci::LayoutSource::Open(src_dir_);
  Descriptor d{.media_type = "x", .digest = oci::Digest::Of(big), .size = 200000};
  auto s = OpenParallelRangeStream(*src, d, 4096, 2, 0, 0);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  ASSERT_TRUE((*s)->Next().has_value());
  CancelFlag() = true;
  std::optional<oci::Error> err;
  for (int i = 0; i < 100 && !err; ++i) {
    auto b = (*s)->Next();
    if (!b) err = b.error();
  }
  CancelFlag() = false;
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, oci::ErrorCode::kCancelled);
}

// A destination whose writers report done() when a mount is requested.
class MountingDestination final : public oci::ImageDestination {
 public:
  oci::Result<bool> Exists(const oci::Digest& d) override { return inner.Exists(d); }
  oci::Result<std::unique_ptr<oci::BlobWriter>> Begin(const oci::BlobHint& hint) override {
    if (!hint.mount_from) return inner.Begin(hint);
    ++mounts;
    class Done final : public oci::BlobWriter {
     public:
      oci::Result<void> Write(std::span<const std::byte>) override {
        return oci::Fail(oci::ErrorCode::kInternal, "wrote to a mounted blob");
      }
      oci::Result<void> Commit(const oci::Digest&, uint64_t) override { return {}; }
      void Abort() override {}
      bool done() const override { return true; }
    };
    return std::make_unique<Done>();
  }
  oci::Result<void> PutManifest(const RawManifest& m,
                                const std::optional<std::string>& tag) override {
    return inner.PutManifest(m, tag);
  }
  std::string Describe() const override { return "mount:"; }
  testing::MemDestination inner;
  std::atomic<int> mounts{0};
};

TEST_F(CopyTest, MountedBlobsAreNotStreamed) {
  w_.Tag(w_.Image("amd64", {shared_}), "latest");
  auto src = *oci::LayoutSource::Open(src_dir_);
  MountingDestination dest;
  CopyOptions opts;
  opts.mount_from = "org/source";
  auto r = CopyImage(*src, "", dest, std::string("t"), opts);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(dest.mounts.load(), 2);
  EXPECT_EQ(r->blobs_mounted, 2u);
  EXPECT_EQ(r->blobs_copied, 0u);
  EXPECT_EQ(dest.inner.tags.size(), 1u);
}

TEST_F(CopyTest, DigestReferenceIsVerified) {
  RawManifest a = w_.Image("amd64", {shared_});
  w_.Tag(a, "latest");
  auto src = *oci::LayoutSource::Open(src_dir_);
  testing::MemDestination dest;
  auto r = CopyImage(*src, a.digest.String(), dest, std::nullopt);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(dest.manifests.at(a.digest).bytes, a.bytes);
  EXPECT_TRUE(dest.tags.empty());
}

}  // namespace
}  // namespace mc::engine
