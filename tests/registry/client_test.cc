#include "registry/client.h"

#include <gtest/gtest.h>

#include "oci/media_types.h"
#include "registry/api_error.h"
#include "registry/remote.h"
#include "tests/support/fake_registry.h"
#include "tests/support/fake_transport.h"
#include "tests/support/paths.h"

namespace mc::registry {
namespace {

using testing::FakeResponse;
using testing::FakeTransport;

const std::string kManifest =
    "{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\","
    "\n  \"config\": {}, \"layers\": []\n}";

struct ClientHarness {
  std::shared_ptr<FakeTransport> t = std::make_shared<FakeTransport>();
  RegistryClient c{t, "http://reg.test", "reg.test", "org/m"};
};

TEST(ApiErrorTest, MapsStatusesToCodesWithOneLineMessages) {
  struct Case {
    int status;
    std::string body;
    oci::ErrorCode code;
    std::string needle;
    bool blob_upload = false;
  };
  const std::vector<Case> cases = {
      {401,
       R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository"}]}]})",
       oci::ErrorCode::kUnauthorized, "UNAUTHORIZED: authentication required"},
      {403,
       R"({"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]})",
       oci::ErrorCode::kUnauthorized, "registry reg.test denied access"},
      {404, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})",
       oci::ErrorCode::kNotFound, "MANIFEST_UNKNOWN: manifest unknown"},
      {416, R"({"errors":[{"code":"RANGE_INVALID","message":"invalid content range"}]})",
       oci::ErrorCode::kRangeNotSatisfiable, "RANGE_INVALID"},
      {503, "<html>\n<body>Service Unavailable</body>\n</html>", oci::ErrorCode::kTransient,
       "HTTP 503 (<html> <body>Service Unavailable"},
      {429, R"({"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]})",
       oci::ErrorCode::kTransient, "TOOMANYREQUESTS"},
      {400, R"({"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match"}]})",
       oci::ErrorCode::kVerificationFailed, "DIGEST_INVALID"},
      {400, R"({"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]})",
       oci::ErrorCode::kInvalidInput, "refused the request"},
      {413, "", oci::ErrorCode::kInvalidInput, "--max-layer-size", true},
      {400,
       R"({"errors":[{"code":"INVALID_REQUEST","message":"Uploaded blob exceeds the maximum layer size"}]})",
       oci::ErrorCode::kInvalidInput, "--layer-per-file", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.status) + " " + c.body);
    oci::Error e = ApiErrorFromBody(c.status, c.body, c.status == 429 ? "7" : "",
                                    {"PUT thing", "reg.test", c.blob_upload});
    EXPECT_EQ(e.code, c.code) << e.message;
    EXPECT_EQ(e.http_status, c.status);
    EXPECT_EQ(e.message.rfind("PUT thing: ", 0), 0u) << e.message;
    EXPECT_NE(e.message.find(c.needle), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find('\n'), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find("repository\"}"), std::string::npos) << "detail leaked";
    if (c.status == 429) {
      ASSERT_TRUE(e.retry_after);
      EXPECT_EQ(e.retry_after->count(), 7000);
    }
  }
}

TEST(ClientTest, GetManifestKeepsExactBytesAndIgnoresContentTypeParameters) {
  ClientHarness h;
  std::string dcd = oci::Digest::Of(kManifest).String();
  h.t->Push(FakeResponse::Status(
      200,
      {{"Content-Type", "application/vnd.oci.image.manifest.v1+json; charset=utf-8"},
       {"Docker-Content-Digest", dcd}},
      kManifest));
  auto m = h.c.GetManifest("v1");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->bytes, kManifest);
  EXPECT_EQ(m->media_type, oci::media::kOciManifest);
  EXPECT_EQ(m->digest.String(), dcd);
  auto reqs = h.t->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].url, "http://reg.test/v2/org/m/manifests/v1");
  EXPECT_EQ(reqs[0].Header("Accept"), std::string(oci::media::kManifestAccept));
}

TEST(ClientTest, GetManifestByDigestVerifiesTheBytes) {
  ClientHarness h;
  std::string other = oci::Digest::Of("something else").String();
  h.t->Push(FakeResponse::Status(200, {{"Content-Type", std::string(oci::media::kOciManifest)}},
                                 kManifest));
  auto m = h.c.GetManifest(other);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, oci::ErrorCode::kVerificationFailed);
  // A lying Docker-Content-Digest on a tag request is refused too.
  h.t->Push(FakeResponse::Status(
      200,
      {{"Content-Type", std::string(oci::media::kOciManifest)}, {"Docker-Content-Digest", other}},
      kManifest));
  EXPECT_EQ(h.c.GetManifest("v1").error().code, oci::ErrorCode::kVerificationFailed);
}

TEST(ClientTest, GetManifestNotFoundIsKNotFound) {
  ClientHarness h;
  h.t->Push(FakeResponse::Status(
      404, {}, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"));
  auto m = h.c.GetManifest("nope");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, oci::ErrorCode::kNotFound);
  EXPECT_NE(m.error().message.find("GET manifest docker://reg.test/org/m:nope"), std::string::npos)
      << m.error().message;
}

TEST(ClientTest, PutManifestSendsExactBytesAndChecksTheDigest) {
  ClientHarness h;
  auto raw = oci::RawManifest::FromBytes(kManifest, std::string(oci::media::kOciManifest));
  h.t->Push(FakeResponse::Status(201, {{"Docker-Content-Digest", raw.digest.String()}}));
  ASSERT_TRUE(h.c.PutManifest(raw, "v1"));
  auto put = h.t->Requests("PUT").at(0);
  EXPECT_EQ(put.body, kManifest);
  EXPECT_EQ(put.Header("Content-Type"), std::string(oci::media::kOciManifest));
  EXPECT_EQ(put.url, "http://reg.test/v2/org/m/manifests/v1");
  h.t->Push(FakeResponse::Status(201, {{"Docker-Content-Digest", oci::Digest::Of("x").String()}}));
  EXPECT_EQ(h.c.PutManifest(raw, "v1").error().code, oci::ErrorCode::kVerificationFailed);
}

TEST(ClientTest, HeadManifestAndBlob) {
  ClientHarness h;
  auto d = oci::Digest::Of("blob");
  h.t->Push(FakeResponse::Status(200, {{"Content-Type", "application/vnd.oci.image.index.v1+json"},
                                       {"Docker-Content-Digest", d.String()},
                                       {"Content-Length", "123"}}));
  auto m = h.c.HeadManifest("latest").value();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->media_type, oci::media::kOciIndex);
  EXPECT_EQ(m->size, 123);
  EXPECT_EQ(m->digest, d);
  h.t->Push(FakeResponse::Status(404));
  EXPECT_FALSE(h.c.HeadManifest("x").value());
  h.t->Push(FakeResponse::Status(200, {{"Content-Length", "4"}}));
  EXPECT_EQ(h.c.HeadBlob(d).value(), 4);
  h.t->Push(FakeResponse::Status(404));
  EXPECT_FALSE(h.c.HeadBlob(d).value());
  h.t->Push(FakeResponse::Status(401, {}, R"({"errors":[{"code":"UNAUTHORIZED","message":"x"}]})"));
  EXPECT_EQ(h.c.HeadBlob(d).error().code, oci::ErrorCode::kUnauthorized);
}

TEST(ClientTest, GetBlobHandlesRanges) {
  ClientHarness h;
  auto d = oci::Digest::Of("0123456789");
  h.t->Push(FakeResponse::Status(206, {{"Content-Range", "bytes 4-9/10"}}, "456789"));
  auto b = h.c.GetBlob(d, 4).value();
  EXPECT_EQ(b.offset, 4u);
  EXPECT_EQ(b.size, 10);
  EXPECT_EQ(oci::ReadAll(*b.body).value(), "456789");
  EXPECT_EQ(h.t->requests().back().Header("Range"), "bytes=4-");
  // A 200 means the range was ignored: the whole blob from 0.
  h.t->Push(FakeResponse::Status(200, {{"Content-Length", "10"}}, "0123456789"));
  b = h.c.GetBlob(d, 4).value();
  EXPECT_EQ(b.offset, 0u);
  EXPECT_EQ(oci::ReadAll(*b.body).value(), "0123456789");
  h.t->Push(FakeResponse::Status(416, {}, ""));
  EXPECT_EQ(h.c.GetBlob(d, 99).error().code, oci::ErrorCode::kRangeNotSatisfiable);
}

// A ranged read straight into a pooled buffer (the copy's data plane).
TEST(ClientTest, ReadBlobRangeAppendsToABuffer) {
  ClientHarness h;
  auto d = oci::Digest::Of("0123456789");
  oci::Buffer buf = oci::Buffer::Heap(16);
  buf.Append(oci::AsBytes(std::string("ab")));  // appended after what the buffer holds
  h.t->Push(FakeResponse::Status(206, {{"Content-Range", "bytes 4-7/10"}}, "4567"));
  ASSERT_TRUE(h.c.ReadBlobRange(d, 4, 4, buf).has_value());
  EXPECT_EQ(buf.view(), "ab4567");
  EXPECT_EQ(h.t->requests().back().Header("Range"), "bytes=4-7");
  // A 200 to a later offset: the registry cannot serve ranges.
  h.t->Push(FakeResponse::Status(200, {{"Content-Length", "10"}}, "0123456789"));
  EXPECT_EQ(h.c.ReadBlobRange(d, 4, 4, buf).error().code, oci::ErrorCode::kRangeNotSatisfiable);
  // A 200 from byte 0: the first `length` bytes, the rest is not read.
  buf.Clear();
  h.t->Push(FakeResponse::Status(200, {{"Content-Length", "10"}}, "0123456789"));
  ASSERT_TRUE(h.c.ReadBlobRange(d, 0, 3, buf).has_value());
  EXPECT_EQ(buf.view(), "012");
  // A short body: retryable, and the buffer keeps what arrived (the caller resumes).
  buf.Clear();
  h.t->Push(FakeResponse::Status(206, {{"Content-Range", "bytes 4-7/10"}}, "45"));
  auto r = h.c.ReadBlobRange(d, 4, 4, buf);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, oci::ErrorCode::kTransient);
  EXPECT_EQ(buf.view(), "45");
  // The wrong range, an error status, a range larger than the buffer.
  h.t->Push(FakeResponse::Status(206, {{"Content-Range", "bytes 0-3/10"}}, "0123"));
  EXPECT_EQ(h.c.ReadBlobRange(d, 4, 4, buf).error().code, oci::ErrorCode::kInvalidInput);
  h.t->Push(FakeResponse::Status(404));
  EXPECT_FALSE(h.c.ReadBlobRange(d, 4, 4, buf).has_value());
  EXPECT_EQ(h.c.ReadBlobRange(d, 0, 100, buf).error().code, oci::ErrorCode::kInternal);
}

TEST(ClientTest, MountDoneOrSession) {
  ClientHarness h;
  auto d = oci::Digest::Of("layer");
  h.t->Push(FakeResponse::Status(201, {{"Docker-Content-Digest", d.String()}}));
  auto m = h.c.Mount(d, "other/repo").value();
  EXPECT_TRUE(m.mounted);
  EXPECT_EQ(h.t->requests().back().url,
            "http://reg.test/v2/org/m/blobs/uploads/?mount=" + d.String() + "&from=other/repo");
  h.t->Push(FakeResponse::Status(202, {{"Location", "/v2/org/m/blobs/uploads/u9"}}));
  m = h.c.Mount(d, "other/repo").value();
  EXPECT_FALSE(m.mounted);
  ASSERT_TRUE(m.session);
  EXPECT_EQ(m.session->url(), "http://reg.test/v2/org/m/blobs/uploads/u9");
  m.session->Detach();
}

// The destination over a fake registry: HEAD, upload, commit.
TEST(RemoteTest, DestinationSkipsPresentBlobsAndUploadsOthers) {
  testing::TempDir dir;
  testing::WriteFile(dir / "auth.json", "{\"auths\":{}}");
  auto t = std::make_shared<FakeTransport>();
  testing::FakeRegistry reg(testing::FakeRegistry::Flavor::kDistribution);
  t->SetHandler([&](const testing::RecordedRequest& r) {
    if (r.url == "http://reg.test/v2/") return FakeResponse::Status(200);
    std::string u = r.url;
    // FakeRegistry serves repository "r".
    size_t p = u.find("/v2/org/m/");
    if (p != std::string::npos) u.replace(p, 10, "/v2/r/");
    testing::RecordedRequest copy = r;
    copy.url = u;
    return reg.Handle(copy);
  });
  RemoteOptions o;
  o.base_transport = t;
  o.scheme = "http";
  o.authfile = (dir / "auth.json").string();
  auto ref = Reference::Parse("reg.test/org/m:v1").value();
  auto dest = OpenRegistryDestination(ref, o);
  ASSERT_TRUE(dest) << dest.error().message;
  std::string blob = "hello layer";
  auto d = oci::Digest::Of(blob);
  auto w = (*dest)->Begin({.digest = d, .size = 11}).value();
  EXPECT_FALSE(w->done());
  ASSERT_TRUE(w->Write(oci::AsBytes(blob)));
  ASSERT_TRUE(w->Commit(d, blob.size()));
  EXPECT_EQ(reg.blobs[d.String()], blob);
  EXPECT_TRUE((*dest)->Exists(d).value());
  auto again = (*dest)->Begin({.digest = d}).value();
  EXPECT_TRUE(again->done());
  EXPECT_EQ(t->Requests("POST").size(), 1u);
  EXPECT_EQ((*dest)->Describe(), "docker://reg.test/org/m:v1");
}

}  // namespace
}  // namespace mc::registry
