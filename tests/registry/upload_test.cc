#include "registry/upload.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>

#include "oci/store.h"
#include "tests/support/fake_registry.h"
#include "tests/support/fake_transport.h"

namespace mc::registry {
namespace {

using testing::FakeRegistry;
using testing::FakeResponse;
using testing::FakeTransport;

constexpr size_t kChunk = 1 << 20;

std::string RandomBytes(size_t n, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

struct Harness {
  explicit Harness(FakeRegistry::Flavor flavor) : reg(flavor) {
    transport->SetHandler(reg.handler());
  }
  UploadTarget Target() {
    return UploadTarget{transport, "http://reg.test", "r", "reg.test", "docker://reg.test/r"};
  }
  UploadOptions Options() {
    UploadOptions o;
    o.chunk_size = kChunk;
    o.min_chunk_size = 128 << 10;
    // A fake clock: the delays are recorded, nobody sleeps.
    o.backoff.sleeper = [this](std::chrono::milliseconds d) { slept.push_back(d); };
    o.backoff.random = [] { return 0.5; };
    return o;
  }
  std::unique_ptr<UploadSession> Start() {
    auto s = UploadSession::Start(Target(), Options());
    EXPECT_TRUE(s) << s.error().message;
    return std::move(*s);
  }
  // Writes `data` in uneven pieces, then commits.
  oci::Result<void> Upload(UploadSession& s, const std::string& data) {
    size_t pos = 0, step = 300'007;
    while (pos < data.size()) {
      size_t n = std::min(step, data.size() - pos);
      MC_RETURN_IF_ERROR(s.Write(oci::AsBytes(std::string_view(data).substr(pos, n))));
      pos += n;
    }
    return s.Commit(oci::Digest::Of(data), data.size());
  }
  FakeRegistry reg;
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::vector<std::chrono::milliseconds> slept;
};

TEST(UploadRangeTest, ParsesBothSemantics) {
  struct Case {
    std::string in;
    uint64_t offset;
    std::optional<uint64_t> fallback;
  };
  for (const auto& c : std::vector<Case>{{"0-1023", 1024, 1023},
                                         {"0-0", 0, 1},
                                         {"bytes=0-1024", 1024, std::nullopt},
                                         {"bytes=0--1", 0, std::nullopt},
                                         {" 0-9 ", 10, 9}}) {
    SCOPED_TRACE(c.in);
    auto r = ParseUploadRange(c.in);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->offset, c.offset);
    EXPECT_EQ(r->fallback, c.fallback);
  }
  EXPECT_FALSE(ParseUploadRange(""));
  EXPECT_FALSE(ParseUploadRange("bytes 0-9/10"));
  EXPECT_FALSE(ParseUploadRange("0-x"));
}

TEST(UploadUrlTest, AppendsQueryAndResolvesLocations) {
  EXPECT_EQ(AppendQuery("http://h/u", "digest=sha256:ab"), "http://h/u?digest=sha256:ab");
  EXPECT_EQ(AppendQuery("http://h/u?_state=x", "digest=d"), "http://h/u?_state=x&digest=d");
  EXPECT_EQ(ResolveLocation("http://h:5/v2/r/blobs/uploads/", "/v2/r/blobs/uploads/u?s=1"),
            "http://h:5/v2/r/blobs/uploads/u?s=1");
  EXPECT_EQ(ResolveLocation("http://h:5/a", "https://other/x"), "https://other/x");
}

TEST(UploadTest, ChunkedPatchesHaveExactHeadersAndTheBlobArrivesWhole) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  std::vector<UploadState> progress;
  auto opts = h.Options();
  opts.on_progress = [&](const UploadState& s) { progress.push_back(s); };
  auto s = UploadSession::Start(h.Target(), opts).value();
  std::string data = RandomBytes(3 * kChunk + 12345);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  auto patches = h.transport->Requests("PATCH");
  ASSERT_EQ(patches.size(), 4u);
  EXPECT_EQ(patches[0].Header("Content-Range"), "0-1048575");
  EXPECT_EQ(patches[1].Header("Content-Range"), "1048576-2097151");
  EXPECT_EQ(patches[3].Header("Content-Range"),
            std::to_string(3 * kChunk) + "-" + std::to_string(data.size() - 1));
  for (const auto& p : patches) {
    EXPECT_EQ(p.Header("Content-Type"), "application/octet-stream");
    EXPECT_TRUE(p.no_retry);
  }
  // Each PATCH used the Location of the previous answer (fresh _state).
  EXPECT_NE(patches[1].url.find("_state=1048576"), std::string::npos) << patches[1].url;
  auto puts = h.transport->Requests("PUT");
  ASSERT_EQ(puts.size(), 1u);
  EXPECT_TRUE(puts[0].body.empty());
  EXPECT_NE(puts[0].url.find("?_state=" + std::to_string(data.size()) + "&digest=sha256:"),
            std::string::npos)
      << puts[0].url;
  ASSERT_EQ(progress.size(), 4u);
  EXPECT_EQ(progress.back().offset, data.size());
  EXPECT_EQ(progress.back().url, patches[3].url.substr(0, patches[3].url.find('?')) +
                                     "?_state=" + std::to_string(data.size()));
  EXPECT_EQ(h.transport->Requests("DELETE").size(), 0u);
}

TEST(UploadTest, SmallBlobGoesUpInOnePut) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  auto s = h.Start();
  std::string data = RandomBytes(5000);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.transport->Requests("PATCH").size(), 0u);
  auto puts = h.transport->Requests("PUT");
  ASSERT_EQ(puts.size(), 1u);
  EXPECT_EQ(puts[0].body, data);
  EXPECT_EQ(h.reg.blobs.size(), 1u);
}

TEST(UploadTest, EmptyBlob) {
  Harness h(FakeRegistry::Flavor::kQuay);
  auto s = h.Start();
  ASSERT_TRUE(h.Upload(*s, ""));
  EXPECT_EQ(h.reg.blobs.count(oci::Digest::Of("").String()), 1u);
}

TEST(UploadTest, RelativeLocationsAreResolved) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  h.reg.relative_locations = true;
  auto s = h.Start();
  EXPECT_EQ(s->url().rfind("http://reg.test/v2/r/blobs/uploads/u1?_state=0", 0), 0u) << s->url();
  std::string data = RandomBytes(2 * kChunk + 1);
  ASSERT_TRUE(h.Upload(*s, data));
  for (const auto& r : h.transport->requests()) {
    EXPECT_EQ(r.url.rfind("http://reg.test/", 0), 0u) << r.url;
  }
}

TEST(UploadTest, QuayResumesInsideTheChunkAfterACutMidPatch) {
  Harness h(FakeRegistry::Flavor::kQuay);
  h.reg.cut_patch = 2;
  h.reg.cut_keep = 400'000;
  auto s = h.Start();
  std::string data = RandomBytes(3 * kChunk);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  EXPECT_EQ(s->stats().resyncs, 1);
  EXPECT_EQ(s->stats().restarts, 0);
  auto patches = h.transport->Requests("PATCH");
  ASSERT_EQ(patches.size(), 4u);
  // Quay's status said "bytes=0-<count>": the resend starts at the count.
  EXPECT_EQ(patches[2].Header("Content-Range"),
            std::to_string(kChunk + 400'000) + "-" + std::to_string(2 * kChunk - 1));
}

TEST(UploadTest, AmbiguousCountRangeFallsBackAfter416) {
  Harness h(FakeRegistry::Flavor::kQuay);
  h.reg.quay_range_without_prefix = true;  // "0-<count>", read first as a last index
  h.reg.cut_patch = 1;
  h.reg.cut_keep = 1000;
  auto s = h.Start();
  std::string data = RandomBytes(2 * kChunk + 10);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  auto patches = h.transport->Requests("PATCH");
  ASSERT_GE(patches.size(), 3u);
  // count+1 first (416), then count.
  EXPECT_EQ(patches[1].Header("Content-Range"), "1001-1048575");
  EXPECT_EQ(patches[2].Header("Content-Range"), "1000-1048575");
}

TEST(UploadTest, LostResponseAfterAStoredChunkContinuesAfterIt) {
  Harness h(FakeRegistry::Flavor::kQuay);
  h.reg.lose_patch_response = 1;
  auto s = h.Start();
  std::string data = RandomBytes(2 * kChunk + 10);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  auto patches = h.transport->Requests("PATCH");
  ASSERT_EQ(patches.size(), 3u);
  EXPECT_EQ(patches[1].Header("Content-Range"), "1048576-2097151");
}

TEST(UploadTest, DistributionContinuesWhenTheResponseOnlyWasLost) {
  // A 503 stores nothing: the _state is still valid and the status GET says where to go on.
  Harness h(FakeRegistry::Flavor::kDistribution);
  h.reg.fail_patch_503 = 2;
  auto s = h.Start();
  std::string data = RandomBytes(3 * kChunk);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  EXPECT_EQ(s->stats().resyncs, 1);
  EXPECT_EQ(h.transport->Requests("GET").size(), 1u);
}

TEST(UploadTest, DistributionCutInTheFirstChunkRestartsTheSession) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  h.reg.cut_patch = 1;
  h.reg.cut_keep = 1000;
  auto o = h.Options();
  o.chunk_size = 4 * kChunk;
  auto s = UploadSession::Start(h.Target(), o).value();
  std::string data = RandomBytes(4 * kChunk + 7);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  EXPECT_EQ(s->stats().restarts, 1);
  EXPECT_EQ(h.transport->Requests("POST").size(), 2u);
}

TEST(UploadTest, DistributionCutAfterTheFirstChunkReportsALostSession) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  h.reg.cut_patch = 2;
  h.reg.cut_keep = 1000;
  auto s = h.Start();
  std::string data = RandomBytes(3 * kChunk);
  auto r = h.Upload(*s, data);
  ASSERT_FALSE(r);
  // kTransient: the caller sends the blob again (the layer is regenerated).
  EXPECT_EQ(r.error().code, oci::ErrorCode::kTransient);
  EXPECT_NE(r.error().message.find("lost the upload session after 1048576 bytes"),
            std::string::npos)
      << r.error().message;
  EXPECT_TRUE(h.reg.blobs.empty());
}

TEST(UploadTest, TooLargeChunksAreHalved) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  h.reg.max_patch = 300 << 10;
  auto s = h.Start();
  std::string data = RandomBytes(2 * kChunk + 3);
  ASSERT_TRUE(h.Upload(*s, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  for (const auto& p : h.transport->Requests("PATCH")) {
    EXPECT_TRUE(p.body.size() <= (256u << 10) || p.body.size() == kChunk ||
                p.body.size() == kChunk / 2)
        << p.body.size();
  }
}

TEST(UploadTest, SizeRefusalBelowTheMinimumNamesTheFlags) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  h.reg.max_patch = 1000;
  auto s = h.Start();
  auto r = h.Upload(*s, RandomBytes(2 * kChunk));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_EQ(r.error().http_status, 413);
  EXPECT_NE(r.error().message.find("--max-layer-size"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("--layer-per-file"), std::string::npos);
}

TEST(UploadTest, DigestMismatchIsAVerificationFailure) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  h.reg.wrong_digest = true;
  auto s = h.Start();
  auto r = h.Upload(*s, RandomBytes(100));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kVerificationFailed) << r.error().message;
}

TEST(UploadTest, WrongCommitSizeIsRefused) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  auto s = h.Start();
  ASSERT_TRUE(s->Write(oci::AsBytes("abc")));
  auto r = s->Commit(oci::Digest::Of("abc"), 4);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, oci::ErrorCode::kInternal);
}

TEST(UploadTest, GivesUpAfterMaxAttempts) {
  Harness h(FakeRegistry::Flavor::kQuay);
  auto t = std::make_shared<FakeTransport>();
  t->Push(FakeResponse::Status(202, {{"Location", "http://reg.test/v2/r/blobs/uploads/x"}}));
  t->SetHandler([](const auto&) { return testing::FakeResponse::Reset(); });
  UploadTarget target = h.Target();
  target.transport = t;
  auto o = h.Options();
  o.max_attempts = 3;
  auto s = UploadSession::Start(target, o).value();
  std::string blob = RandomBytes(kChunk);
  // A full chunk goes up on the sender thread: its failure surfaces at the
  // next Write or at Commit.
  auto r = s->Write(oci::AsBytes(blob));
  if (r) r = s->Commit(oci::Digest::Of(blob), blob.size());
  ASSERT_FALSE(r);
  // Out of attempts on a broken network: exit 6, naming the request and the registry.
  EXPECT_EQ(r.error().code, oci::ErrorCode::kNetwork);
  EXPECT_NE(r.error().message.find("giving up after 3 attempts"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("docker://reg.test/r"), std::string::npos) << r.error().message;
  // The one backoff policy, through the injected clock: full jitter over
  // 500 ms·2^n with a fixed draw of 0.5, before each of the 3 recoveries.
  ASSERT_EQ(h.slept.size(), 3u);
  EXPECT_EQ(h.slept[0].count(), 250);
  EXPECT_EQ(h.slept[1].count(), 500);
  EXPECT_EQ(h.slept[2].count(), 1000);
}

TEST(UploadTest, CancelledStopsWithoutDeletingTheSession) {
  for (auto flavor : {FakeRegistry::Flavor::kDistribution, FakeRegistry::Flavor::kQuay}) {
    Harness h(flavor);
    std::atomic<bool> stop{false};
    UploadState saved;
    auto o = h.Options();
    o.cancelled = [&] { return stop.load(); };
    o.on_progress = [&](const UploadState& st) { saved = st; };
    auto s = UploadSession::Start(h.Target(), o).value();
    std::string data = RandomBytes(5 * kChunk);
    ASSERT_TRUE(s->Write(oci::AsBytes(std::string_view(data).substr(0, 2 * kChunk + 10))));
    stop = true;
    auto r = s->Write(oci::AsBytes(std::string_view(data).substr(2 * kChunk + 10, kChunk)));
    if (r) r = s->Commit(oci::Digest::Of(data), 3 * kChunk + 10);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, oci::ErrorCode::kCancelled);
    s->Detach();
    s.reset();
    EXPECT_EQ(h.transport->Requests("DELETE").size(), 0u);
    ASSERT_EQ(h.reg.uploads.size(), 1u);
    // The next run continues from what the registry confirms.
    auto again = UploadSession::Resume(h.Target(), saved.url, h.Options());
    ASSERT_TRUE(again) << again.error().message;
    ASSERT_TRUE(h.Upload(**again, data));
    EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
    EXPECT_LE((*again)->stats().bytes_sent, data.size() - saved.offset + 1);
  }
}

TEST(UploadTest, RestartNeverDeletesTheSessionItContinuesOn) {
  // A cut in the first chunk, again and again (the 2-in-5 race of the issue):
  // the producer keeps writing while the sender restarts the session.
  for (int round = 0; round < 5; ++round) {
    Harness h(FakeRegistry::Flavor::kDistribution);
    h.reg.cut_patch = 1;
    h.reg.cut_keep = 1000;
    auto o = h.Options();
    o.chunk_size = kChunk;
    auto s = UploadSession::Start(h.Target(), o).value();
    std::string data = RandomBytes(3 * kChunk + 3, static_cast<unsigned>(round));
    auto r = h.Upload(*s, data);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
    // Only the broken first session is deleted.
    EXPECT_LE(h.transport->Requests("DELETE").size(), 1u);
  }
}

TEST(UploadTest, AbortDeletesTheSession) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  {
    auto s = h.Start();
    ASSERT_TRUE(s->Write(oci::AsBytes(RandomBytes(kChunk + 1))));
  }  // destroyed uncommitted
  EXPECT_EQ(h.transport->Requests("DELETE").size(), 1u);
  EXPECT_TRUE(h.reg.uploads.empty());
}

TEST(UploadTest, ResumesAPersistedSessionWithoutResendingItsBytes) {
  for (auto flavor : {FakeRegistry::Flavor::kDistribution, FakeRegistry::Flavor::kQuay}) {
    Harness h(flavor);
    std::string data = RandomBytes(4 * kChunk + 99);
    UploadState saved;
    auto o = h.Options();
    o.on_progress = [&](const UploadState& s) { saved = s; };
    {
      auto s = UploadSession::Start(h.Target(), o).value();
      ASSERT_TRUE(s->Write(oci::AsBytes(std::string_view(data).substr(0, 2 * kChunk + 5))));
      s->Detach();  // the process "dies": no DELETE
    }
    EXPECT_EQ(saved.offset, 2 * kChunk);
    auto s = UploadSession::Resume(h.Target(), saved.url, h.Options());
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ((*s)->resume_offset(),
              flavor == FakeRegistry::Flavor::kQuay ? 2 * kChunk : 2 * kChunk - 1);
    ASSERT_TRUE(h.Upload(**s, data));
    EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
    EXPECT_LE((*s)->stats().bytes_sent, data.size() - 2 * kChunk + 1);
  }
}

TEST(UploadTest, ResumeOfAForgottenSessionIsNotFound) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  auto s = UploadSession::Resume(h.Target(), "http://reg.test/v2/r/blobs/uploads/gone?_state=0",
                                 h.Options());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, oci::ErrorCode::kNotFound);
}

// Writes `data` through WriteBuffer in buffers of `pool`, then commits. The
// pool is sized by the session's own bound; a buffer it cannot give would
// mean the session keeps more than it says (the producer would hang).
oci::Result<void> UploadBuffers(UploadSession& s, oci::BufferPool& pool, std::string_view data) {
  size_t pos = 0;
  while (pos < data.size()) {
    oci::Buffer b = pool.TryAcquire();
    if (!b) return oci::Fail(oci::ErrorCode::kInternal, "the session keeps more than it says");
    pos += b.Append(oci::AsBytes(data.substr(pos)));
    MC_RETURN_IF_ERROR(s.WriteBuffer(std::move(b)));
  }
  return s.Commit(oci::Digest::Of(data), data.size());
}

TEST(UploadTest, WriteBufferKeepsBuffersUntilAcknowledgedInsteadOfCopying) {
  for (auto flavor : {FakeRegistry::Flavor::kDistribution, FakeRegistry::Flavor::kQuay}) {
    Harness h(flavor);
    auto s = h.Start();
    constexpr size_t kBuf = kChunk / 4;
    oci::BufferPool pool(kBuf, oci::RetainedBufferCount(s->max_retained_bytes(), kBuf) + 1);
    std::string data = RandomBytes(3 * kChunk + kChunk / 2 + 1000, 7);
    // Two buffers written, the chunk not full: the session holds them (not copies).
    {
      oci::Buffer a = pool.TryAcquire(), b = pool.TryAcquire();
      a.Append(oci::AsBytes(std::string_view(data).substr(0, kBuf)));
      b.Append(oci::AsBytes(std::string_view(data).substr(kBuf, kBuf)));
      ASSERT_TRUE(s->WriteBuffer(std::move(a)));
      ASSERT_TRUE(s->WriteBuffer(std::move(b)));
      EXPECT_EQ(pool.in_use(), 2u);
    }
    s->Abort();
    EXPECT_EQ(pool.in_use(), 0u);  // an aborted session lets go of them
    Harness h2(flavor);
    auto s2 = h2.Start();
    ASSERT_TRUE(UploadBuffers(*s2, pool, data));
    EXPECT_EQ(h2.reg.blobs[oci::Digest::Of(data).String()], data);
    // Whole chunks of four buffers each, as Write would have cut them.
    auto patches = h2.transport->Requests("PATCH");
    ASSERT_EQ(patches.size(), 4u);
    EXPECT_EQ(patches[1].Header("Content-Range"), "1048576-2097151");
    EXPECT_EQ(patches[3].body.size(), data.size() - 3 * kChunk);
    s2.reset();
    EXPECT_EQ(pool.in_use(), 0u);  // every buffer went back
    EXPECT_LE(pool.high_water(), pool.count());
  }
}

TEST(UploadTest, WriteBufferCopiesAMostlyEmptyBufferAndMixesWithWrite) {
  Harness h(FakeRegistry::Flavor::kDistribution);
  auto s = h.Start();
  oci::BufferPool pool(kChunk / 2, 8);
  std::string data = RandomBytes(2 * kChunk + 333, 9);
  std::string_view v(data);
  oci::Buffer small = pool.TryAcquire();
  small.Append(oci::AsBytes(v.substr(0, 1000)));  // < half: copied, back at once
  ASSERT_TRUE(s->WriteBuffer(std::move(small)));
  EXPECT_EQ(pool.in_use(), 0u);
  ASSERT_TRUE(s->Write(oci::AsBytes(v.substr(1000, kChunk))));
  oci::Buffer big = pool.TryAcquire();
  big.Append(oci::AsBytes(v.substr(1000 + kChunk, kChunk / 2)));
  ASSERT_TRUE(s->WriteBuffer(std::move(big)));
  ASSERT_TRUE(s->Write(oci::AsBytes(v.substr(1000 + kChunk + kChunk / 2))));
  ASSERT_TRUE(s->Commit(oci::Digest::Of(data), data.size()));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  uint64_t patched = 0;
  for (const auto& p : h.transport->Requests("PATCH")) {
    EXPECT_LE(p.body.size(), kChunk);
    patched += p.body.size();
  }
  EXPECT_EQ(patched, data.size());
  s.reset();
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(UploadTest, WriteBufferOfAResumedSessionDropsWhatTheRegistryHolds) {
  Harness h(FakeRegistry::Flavor::kQuay);
  std::string data = RandomBytes(3 * kChunk + 5, 11);
  UploadState saved;
  auto o = h.Options();
  o.on_progress = [&](const UploadState& st) { saved = st; };
  {
    auto s = UploadSession::Start(h.Target(), o).value();
    ASSERT_TRUE(s->Write(oci::AsBytes(std::string_view(data).substr(0, kChunk + kChunk / 2))));
    s->Detach();
  }
  auto s = UploadSession::Resume(h.Target(), saved.url, h.Options());
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ((*s)->resume_offset(), kChunk);
  // Buffers that straddle the resume offset: the held prefix is skipped inside one.
  oci::BufferPool pool(kChunk / 3,
                       oci::RetainedBufferCount((*s)->max_retained_bytes(), kChunk / 3) + 1);
  ASSERT_TRUE(UploadBuffers(**s, pool, data));
  EXPECT_EQ(h.reg.blobs[oci::Digest::Of(data).String()], data);
  EXPECT_EQ((*s)->stats().bytes_sent, data.size() - kChunk);
}

}  // namespace
}  // namespace mc::registry
