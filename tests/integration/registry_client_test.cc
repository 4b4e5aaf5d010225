// RegistryDestination / RegistrySource against the real docker-registry
// (distribution 2.8), checked with skopeo and the registry's access log.
#include <gtest/gtest.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <mutex>
#include <random>
#include <thread>

#include "oci/media_types.h"
#include "registry/remote.h"
#include "tests/support/registry_fixture.h"

namespace mc::registry {
namespace {

using testing::FaultOptions;
using testing::FaultProxy;
using testing::Quote;
using testing::RegistryFixture;
using testing::RegistryOptions;

constexpr size_t kChunk = 1 << 20;

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

RemoteOptions Options(const RegistryFixture& reg) {
  RemoteOptions o;
  o.upload.chunk_size = kChunk;
  o.upload.backoff.base = std::chrono::milliseconds(50);
  o.transport.retry_times = 3;
  o.transport.tls.cert_dir = reg.cert_dir().string();
  if (reg.options().htpasswd || reg.options().token_auth) {
    o.creds = reg.user() + ":" + reg.password();
  }
  return o;
}

// Streams `data` into a new blob (digest unknown up front, like a layer).
oci::Result<oci::Descriptor> PushBlob(oci::ImageDestination& dest, const std::string& data,
                                      std::string media_type = std::string(oci::media::kOciLayer)) {
  MC_ASSIGN_OR_RETURN(auto w, dest.Begin({.media_type = media_type}));
  for (size_t pos = 0; pos < data.size(); pos += 200'003) {
    MC_RETURN_IF_ERROR(w->Write(oci::AsBytes(std::string_view(data).substr(pos, 200'003))));
  }
  auto d = oci::Digest::Of(data);
  MC_RETURN_IF_ERROR(w->Commit(d, data.size()));
  return oci::Descriptor{
      .media_type = media_type, .digest = d, .size = static_cast<int64_t>(data.size())};
}

std::string DescriptorJson(const oci::Descriptor& d) {
  return "{\"mediaType\":\"" + d.media_type + "\",\"digest\":\"" + d.digest.String() +
         "\",\"size\":" + std::to_string(d.size) + "}";
}

// Pushes config + layers + manifest (hand-written JSON, odd spacing on
// purpose: the registry must keep the exact bytes).
oci::Result<oci::RawManifest> PushImage(oci::ImageDestination& dest,
                                        const std::vector<std::string>& layers,
                                        const std::string& tag) {
  std::vector<oci::Descriptor> descs;
  std::string diff_ids;
  for (const auto& l : layers) {
    MC_ASSIGN_OR_RETURN(auto d, PushBlob(dest, l));
    diff_ids += (diff_ids.empty() ? "\"" : ",\"") + d.digest.String() + "\"";
    descs.push_back(d);
  }
  std::string config =
      "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
      "\"layers\",\"diff_ids\":[" +
      diff_ids + "]}}";
  MC_ASSIGN_OR_RETURN(auto cd, PushBlob(dest, config, std::string(oci::media::kOciConfig)));
  std::string m = "{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"" +
                  std::string(oci::media::kOciManifest) +
                  "\",\n   \"config\": " + DescriptorJson(cd) + ",\n   \"layers\": [";
  for (size_t i = 0; i < descs.size(); ++i) m += (i ? ", " : "") + DescriptorJson(descs[i]);
  m += "]\n}";
  auto raw = oci::RawManifest::FromBytes(m, std::string(oci::media::kOciManifest));
  MC_RETURN_IF_ERROR(dest.PutManifest(raw, tag));
  return raw;
}

std::string Skopeo(const std::string& args, int* rc = nullptr) {
  std::string out;
  int r = testing::Run("timeout 60 skopeo " + args, &out);
  if (rc) *rc = r;
  return out;
}

TEST(RegistryClientTest, PushesChunkedAndMonolithicBlobsThatSkopeoReadsBack) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto ref = Reference::Parse(reg.host() + "/mc/push:v1").value();
  auto dest = OpenRegistryDestination(ref, Options(reg));
  ASSERT_TRUE(dest) << dest.error().message;
  std::string big = RandomBytes(3 * kChunk + 777, 1), small = RandomBytes(4000, 2);
  auto m = PushImage(**dest, {big, small}, "v1");
  ASSERT_TRUE(m) << m.error().message;
  // 4 PATCHes for the big layer (3 full chunks + the tail), none for the rest.
  EXPECT_EQ(reg.CountRequests("PATCH", "/v2/mc/push/blobs/uploads/"), 4) << reg.Log();
  EXPECT_EQ(reg.CountRequests("PUT", "digest=sha256"), 3);
  int rc;
  std::string raw = Skopeo("inspect --raw --tls-verify=false docker://" + ref.String(), &rc);
  ASSERT_EQ(rc, 0) << raw;
  EXPECT_EQ(raw, m->bytes);
  testing::TempDir out;
  std::string log = Skopeo("copy --src-tls-verify=false docker://" + ref.String() +
                               " dir:" + Quote((out / "img").string()),
                           &rc);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_EQ(testing::ReadFile(out / "img" / oci::Digest::Of(big).hex()), big);
  EXPECT_EQ(testing::ReadFile(out / "img" / oci::Digest::Of(small).hex()), small);
  EXPECT_EQ(testing::ReadFile(out / "img/manifest.json"), m->bytes);
}

TEST(RegistryClientTest, SourceReadsManifestsAndBlobsExactly) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto ref = Reference::Parse(reg.host() + "/mc/src:v1").value();
  auto dest = OpenRegistryDestination(ref, Options(reg));
  ASSERT_TRUE(dest) << dest.error().message;
  std::string layer = RandomBytes(kChunk + 5, 3);
  auto m = PushImage(**dest, {layer}, "v1");
  ASSERT_TRUE(m) << m.error().message;
  RemoteOptions so = Options(reg);
  so.side = "source";
  auto src = OpenRegistrySource(ref, so);
  ASSERT_TRUE(src) << src.error().message;
  auto byTag = (*src)->GetManifest("");
  ASSERT_TRUE(byTag) << byTag.error().message;
  EXPECT_EQ(byTag->bytes, m->bytes);
  EXPECT_EQ(byTag->media_type, oci::media::kOciManifest);
  auto byDigest = (*src)->GetManifest(m->digest.String());
  ASSERT_TRUE(byDigest);
  EXPECT_EQ(byDigest->digest, m->digest);
  auto head = (*src)->client().HeadManifest("v1").value();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->digest, m->digest);
  oci::Descriptor ld{.media_type = std::string(oci::media::kOciLayer),
                     .digest = oci::Digest::Of(layer),
                     .size = static_cast<int64_t>(layer.size())};
  auto r = (*src)->OpenBlob(ld);
  ASSERT_TRUE(r);
  oci::VerifyingReader v(std::move(*r), ld.digest, ld.size, "layer");
  EXPECT_EQ(oci::ReadAll(v).value(), layer);
  // Ranged read.
  auto part = (*src)->client().GetBlob(ld.digest, 1000).value();
  EXPECT_EQ(part.offset, 1000u);
  EXPECT_EQ(oci::ReadAll(*part.body).value(), layer.substr(1000));
  auto missing = (*src)->GetManifest("nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, oci::ErrorCode::kNotFound);
}

TEST(RegistryClientTest, MountsBetweenRepositoriesAndSkipsPresentBlobs) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto a = OpenRegistryDestination(Reference::Parse(reg.host() + "/mc/a").value(), Options(reg));
  ASSERT_TRUE(a) << a.error().message;
  std::string layer = RandomBytes(2 * kChunk, 4);
  auto d = PushBlob(**a, layer);
  ASSERT_TRUE(d) << d.error().message;
  auto b = OpenRegistryDestination(Reference::Parse(reg.host() + "/mc/b").value(), Options(reg));
  ASSERT_TRUE(b);
  int patches = reg.CountRequests("PATCH");
  auto w = (*b)->Begin({.digest = d->digest, .size = d->size, .mount_from = "mc/a"});
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_TRUE((*w)->done());
  ASSERT_TRUE((*w)->Commit(d->digest, d->size));
  EXPECT_EQ(reg.CountRequests("POST", "mount=" + d->digest.String() + "&from=mc/a"), 1)
      << reg.Log();
  EXPECT_TRUE((*b)->Exists(d->digest).value());
  // Present now: a HEAD and nothing else.
  auto again = (*b)->Begin({.digest = d->digest, .mount_from = "mc/a"}).value();
  EXPECT_TRUE(again->done());
  EXPECT_EQ(reg.CountRequests("PATCH"), patches);
  EXPECT_EQ(reg.CountRequests("POST", "mount="), 1);
}

TEST(RegistryClientTest, CutMonolithicPutRestartsTheSessionAndSucceeds) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultProxy proxy(
      reg.host(),
      {.cut_request_after = 100'000, .cut_method = "PUT", .path_filter = "/blobs/uploads/"});
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  auto ref = Reference::Parse(proxy.host() + "/mc/cut").value();
  auto o = Options(reg);
  o.upload.chunk_size = 4 * kChunk;
  auto dest = OpenRegistryDestination(ref, o);
  ASSERT_TRUE(dest) << dest.error().message;
  std::string layer = RandomBytes(kChunk, 5);
  auto d = PushBlob(**dest, layer);
  ASSERT_TRUE(d) << d.error().message << "\n" << reg.Log();
  EXPECT_NE(proxy.Log().find("cut PUT"), std::string::npos) << proxy.Log();
  EXPECT_TRUE((*dest)->Exists(d->digest).value());
  // libcurl resends a request whose reused connection died before any
  // answer (and distribution kept the session after the cut PUT); otherwise
  // the session restarts with a second POST.
  EXPECT_LE(reg.CountRequests("POST", "/v2/mc/cut/blobs/uploads/"), 2) << reg.Log();
  EXPECT_GE(reg.CountRequests("PUT", "/v2/mc/cut/blobs/uploads/"), 2) << reg.Log();
}

TEST(RegistryClientTest, CutInALaterChunkReportsALostSessionAndARetrySucceeds) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultProxy proxy(reg.host(),
                   {.cut_request_after = 300'000, .cut_method = "PATCH", .cut_skip = 1});
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  auto ref = Reference::Parse(proxy.host() + "/mc/cut2").value();
  auto dest = OpenRegistryDestination(ref, Options(reg));
  ASSERT_TRUE(dest) << dest.error().message;
  std::string layer = RandomBytes(3 * kChunk, 6);
  auto d = PushBlob(**dest, layer);
  if (!d) {
    // distribution 2.8 cancels a session whose PATCH broke mid-body (when the
    // partial bytes reached its storage: timing decides), and we say so:
    // kTransient, the blob is to be sent again (engine/build.cc does).
    EXPECT_EQ(d.error().code, oci::ErrorCode::kTransient) << d.error().message;
    EXPECT_NE(d.error().message.find("must be sent again"), std::string::npos) << d.error().message;
    d = PushBlob(**dest, layer);
  }
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_TRUE((*dest)->Exists(d->digest).value());
  EXPECT_NE(proxy.Log().find("cut"), std::string::npos);
}

TEST(RegistryClientTest, ResumesInsideTheChunkWhenTheCutNeverReachedTheRegistry) {
  // Behind a request-buffering proxy (nginx's default) a PATCH cut mid-body
  // leaves the session intact: the client asks for the offset and resends
  // the kept chunk only.
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultProxy proxy(reg.host(), {.cut_request_after = 300'000,
                                .cut_method = "PATCH",
                                .cut_skip = 1,
                                .buffer_requests = true});
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  auto ref = Reference::Parse(proxy.host() + "/mc/resync").value();
  auto dest = OpenRegistryDestination(ref, Options(reg));
  ASSERT_TRUE(dest) << dest.error().message;
  std::string layer = RandomBytes(3 * kChunk + 5, 12);
  auto d = PushBlob(**dest, layer);
  ASSERT_TRUE(d) << d.error().message << "\n" << reg.Log();
  EXPECT_NE(proxy.Log().find("cut PATCH"), std::string::npos) << proxy.Log();
  EXPECT_EQ(reg.CountRequests("POST", "/v2/mc/resync/blobs/uploads/"), 1);
  // Either libcurl resent the PATCH on a fresh connection (the connection
  // was reused) or the session asked for the offset (GET) and resent.
  EXPECT_LE(reg.CountRequests("GET", "/v2/mc/resync/blobs/uploads/"), 1) << reg.Log();
  EXPECT_EQ(reg.CountRequests("PATCH", "/v2/mc/resync/"), 4);
  int rc;
  testing::TempDir out;
  auto raw = oci::Digest::Of(layer);
  std::string got;
  ASSERT_EQ(testing::Run("curl -sf " + reg.url() + "/v2/mc/resync/blobs/" + raw.String() +
                             " | openssl dgst -sha256 -r",
                         &got),
            0);
  EXPECT_EQ(got.substr(0, 64), raw.hex());
  (void)rc;
}

TEST(RegistryClientTest, AFlippedByteFailsVerification) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto ref = Reference::Parse(reg.host() + "/mc/flip:v1").value();
  auto dest = OpenRegistryDestination(ref, Options(reg));
  ASSERT_TRUE(dest) << dest.error().message;
  std::string layer = RandomBytes(100'000, 13);
  auto d = PushBlob(**dest, layer);
  ASSERT_TRUE(d) << d.error().message;
  FaultProxy proxy(reg.host(), {.flip_byte_at = 5000});
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  RemoteOptions so = Options(reg);
  so.side = "source";
  auto src = OpenRegistrySource(Reference::Parse(proxy.host() + "/mc/flip:v1").value(), so);
  ASSERT_TRUE(src) << src.error().message;
  auto blob = (*src)->ReadBlob(*d);
  ASSERT_FALSE(blob);
  EXPECT_EQ(blob.error().code, oci::ErrorCode::kVerificationFailed) << blob.error().message;
  EXPECT_NE(proxy.Log().find("flip byte 5000"), std::string::npos);
  // The next read is clean.
  EXPECT_EQ((*src)->ReadBlob(*d).value(), layer);
}

// A resume slot in memory (the engine keeps it in a file).
class MemSlot final : public oci::ResumeSlot {
 public:
  std::optional<std::string> Load() override {
    std::lock_guard lock(mu_);
    return state_;
  }
  void Save(std::string_view s) override {
    std::lock_guard lock(mu_);
    state_ = std::string(s);
  }
  void Clear() override {
    std::lock_guard lock(mu_);
    state_.reset();
  }
  std::optional<std::string> Get() {
    std::lock_guard lock(mu_);
    return state_;
  }

 private:
  std::mutex mu_;  // Save runs on the session's sender thread
  std::optional<std::string> state_;
};

TEST(RegistryClientTest, ResumesAPersistedSessionInANewDestination) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto ref = Reference::Parse(reg.host() + "/mc/resume").value();
  std::string layer = RandomBytes(4 * kChunk + 100, 7);
  auto slot = std::make_shared<MemSlot>();
  oci::BlobHint hint;
  hint.resume = slot;
  {
    auto dest = OpenRegistryDestination(ref, Options(reg)).value();
    auto w = dest->Begin(hint);
    ASSERT_TRUE(w) << w.error().message;
    ASSERT_TRUE((*w)->Write(oci::AsBytes(std::string_view(layer).substr(0, 2 * kChunk + 10))));
    // The second chunk is in flight while Write returns; wait for its 202.
    std::string want = "\"offset\":" + std::to_string(2 * kChunk);
    for (int i = 0; i < 500; ++i) {
      if (slot->Get().value_or("").find(want) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_NE(slot->Get().value_or("").find(want), std::string::npos) << slot->Get().value_or("");
    // "kill -9": the writer is leaked without Abort (no DELETE reaches the registry).
    [[maybe_unused]] auto* leaked = w->release();
#if defined(__SANITIZE_ADDRESS__)
    __lsan_ignore_object(leaked);  // deliberate: it stands for a killed process
#endif
  }
  int patches_before = reg.CountRequests("PATCH");
  auto dest = OpenRegistryDestination(ref, Options(reg)).value();
  auto w = dest->Begin(hint);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ((*w)->resume_offset(), 2 * kChunk - 1);
  ASSERT_TRUE((*w)->Write(oci::AsBytes(layer)));
  auto d = oci::Digest::Of(layer);
  ASSERT_TRUE((*w)->Commit(d, layer.size())) << reg.Log();
  EXPECT_TRUE(dest->Exists(d).value());
  EXPECT_FALSE(slot->Get()) << "a committed blob clears its slot";
  // Only the rest went up: 2 more full chunks and the tail.
  EXPECT_EQ(reg.CountRequests("PATCH") - patches_before, 3) << reg.Log();
  EXPECT_EQ(reg.CountRequests("DELETE"), 0);
  // A session the registry forgot starts over; so does an unreadable state.
  for (
      std::string bad :
      {R"({"url":")" + reg.url() +
           R"(/v2/mc/resume/blobs/uploads/00000000-0000-0000-0000-000000000000?_state=x","offset":0})",
       std::string(R"({"url":7,"offset":"x"})"), std::string("{trunc")}) {
    slot->Save(bad);
    auto fresh = dest->Begin(hint);
    ASSERT_TRUE(fresh) << fresh.error().message;
    EXPECT_EQ((*fresh)->resume_offset(), 0u);
  }
}

TEST(RegistryClientTest, RetriesThrough503And429) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  for (int status : {503, 429}) {
    SCOPED_TRACE(status);
    FaultProxy proxy(reg.host(), {.fail_first = 2,
                                  .fail_status = status,
                                  .retry_after_seconds = status == 429 ? 1 : 0,
                                  .path_filter = "/v2/mc/"});
    ASSERT_TRUE(proxy.ok()) << proxy.error();
    std::string repo = "mc/retry" + std::to_string(status);
    auto ref = Reference::Parse(proxy.host() + "/" + repo + ":v1").value();
    auto dest = OpenRegistryDestination(ref, Options(reg));
    ASSERT_TRUE(dest) << dest.error().message;
    auto m = PushImage(**dest, {RandomBytes(2 * kChunk + 1, 8)}, "v1");
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_NE(proxy.Log().find("fail " + std::to_string(status)), std::string::npos) << proxy.Log();
    int rc;
    std::string raw =
        Skopeo("inspect --raw --tls-verify=false docker://" + reg.host() + "/" + repo + ":v1", &rc);
    EXPECT_EQ(raw, m->bytes);
  }
}

TEST(RegistryClientTest, TlsWithCertDir) {
  RegistryFixture reg({.tls = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto ref = Reference::Parse(reg.host() + "/mc/tls:v1").value();
  auto dest = OpenRegistryDestination(ref, Options(reg));
  ASSERT_TRUE(dest) << dest.error().message;
  EXPECT_EQ((*dest)->client().base_url(), "https://" + reg.host());
  auto m = PushImage(**dest, {RandomBytes(kChunk + 1, 9)}, "v1");
  ASSERT_TRUE(m) << m.error().message;
  int rc;
  std::string raw = Skopeo(
      "inspect --raw --cert-dir " + Quote(reg.cert_dir().string()) + " docker://" + ref.String(),
      &rc);
  EXPECT_EQ(raw, m->bytes);
  // Without the CA: a TLS error, not a silent downgrade to http.
  RemoteOptions bare = Options(reg);
  bare.transport.tls.cert_dir.clear();
  bare.transport.system_cert_dirs.clear();
  auto refused = OpenRegistryDestination(ref, bare);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, oci::ErrorCode::kNetwork) << refused.error().message;
}

TEST(RegistryClientTest, HtpasswdThroughAnAuthfile) {
  RegistryFixture reg({.htpasswd = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto ref = Reference::Parse(reg.host() + "/mc/basic:v1").value();
  RemoteOptions o = Options(reg);
  o.creds.clear();
  o.authfile = reg.WriteAuthFile(reg.user(), reg.password()).string();
  auto dest = OpenRegistryDestination(ref, o);
  ASSERT_TRUE(dest) << dest.error().message;
  auto m = PushImage(**dest, {RandomBytes(1000, 10)}, "v1");
  ASSERT_TRUE(m) << m.error().message;
  int rc;
  EXPECT_EQ(Skopeo("inspect --raw" + reg.SkopeoFlags() + " docker://" + ref.String(), &rc),
            m->bytes);
  o.authfile = reg.WriteAuthFile(reg.user(), "wrong-password", "bad.json").string();
  auto bad = OpenRegistryDestination(ref, o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, oci::ErrorCode::kUnauthorized);
  EXPECT_NE(bad.error().message.find(reg.host()), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("bad.json"), std::string::npos) << bad.error().message;
  EXPECT_EQ(bad.error().message.find("wrong-password"), std::string::npos);
}

TEST(RegistryClientTest, BearerTokensFromTheTokenServer) {
  RegistryFixture reg({.token_auth = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  auto ref = Reference::Parse(reg.host() + "/mc/tok:v1").value();
  auto dest = OpenRegistryDestination(ref, Options(reg));
  ASSERT_TRUE(dest) << dest.error().message;
  auto m = PushImage(**dest, {RandomBytes(kChunk + 3, 11)}, "v1");
  ASSERT_TRUE(m) << m.error().message << "\n" << reg.Log();
  EXPECT_NE(reg.TokenLog().find("scope=repository:mc/tok:pull,push"), std::string::npos)
      << reg.TokenLog();
  // Mount into another repository: the token must carry pull on the source.
  auto other =
      OpenRegistryDestination(Reference::Parse(reg.host() + "/mc/tok2").value(), Options(reg));
  ASSERT_TRUE(other) << other.error().message;
  auto layer_digest = oci::Digest::Of(RandomBytes(kChunk + 3, 11));
  auto w = (*other)->Begin({.digest = layer_digest, .mount_from = "mc/tok"});
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_TRUE((*w)->done());
  EXPECT_NE(reg.TokenLog().find("repository:mc/tok2:pull,push repository:mc/tok:pull"),
            std::string::npos)
      << reg.TokenLog();
  int rc;
  EXPECT_EQ(Skopeo("inspect --raw" + reg.SkopeoFlags() + " docker://" + ref.String(), &rc),
            m->bytes);
  // Wrong password: the token server refuses; kUnauthorized names the registry.
  RemoteOptions bad = Options(reg);
  bad.creds = reg.user() + ":nope";
  auto refused = OpenRegistryDestination(ref, bad);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, oci::ErrorCode::kUnauthorized) << refused.error().message;
  EXPECT_NE(refused.error().message.find(reg.host()), std::string::npos);
  EXPECT_NE(refused.error().message.find("--creds"), std::string::npos) << refused.error().message;
}

}  // namespace
}  // namespace mc::registry
