// RegistryClient's referrers calls: the referrers API (pages, a registry
// without it), the OCI-Subject header of a manifest PUT, manifests that may
// be absent.
#include <gtest/gtest.h>

#include "oci/media_types.h"
#include "registry/client.h"
#include "tests/support/fake_transport.h"

namespace mc::registry {
namespace {

using testing::FakeResponse;
using testing::FakeTransport;

struct Harness {
  std::shared_ptr<FakeTransport> t = std::make_shared<FakeTransport>();
  RegistryClient c{t, "http://reg.test", "reg.test", "org/m"};
};

oci::Digest D(char c) { return *oci::Digest::Parse("sha256:" + std::string(64, c)); }

std::string Entry(char c, const std::string& artifact_type) {
  return R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + D(c).String() +
         R"(","size":10,"artifactType":")" + artifact_type + R"("})";
}

TEST(ReferrersTest, ListsAllPagesOfTheApi) {
  Harness h;
  h.t->Push(FakeResponse::Status(
      200,
      {{"Content-Type", "application/vnd.oci.image.index.v1+json"},
       {"Link", "</v2/org/m/referrers/" + D('f').String() + "?next=2>; rel=\"next\""}},
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
          Entry('a', "application/spdx+json") + "]}"));
  h.t->Push(FakeResponse::Status(
      200, {{"Content-Type", "application/vnd.oci.image.index.v1+json"}},
      R"({"schemaVersion":2,"manifests":[)" + Entry('b', "application/example") + "]}"));
  auto r = h.c.GetReferrers(D('f'));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->has_value());
  ASSERT_EQ((*r)->size(), 2u);
  EXPECT_EQ((**r)[0].digest, D('a'));
  EXPECT_EQ((**r)[0].artifact_type, "application/spdx+json");
  EXPECT_EQ((**r)[1].digest, D('b'));
  auto reqs = h.t->Requests("GET");
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].url, "http://reg.test/v2/org/m/referrers/" + D('f').String());
  EXPECT_EQ(reqs[1].url, "http://reg.test/v2/org/m/referrers/" + D('f').String() + "?next=2");
}

TEST(ReferrersTest, NoApiIsNullopt) {
  for (int status : {404, 405, 400}) {
    Harness h;
    h.t->Push(FakeResponse::Status(status, {}, "404 page not found"));
    auto r = h.c.GetReferrers(D('f'));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(r->has_value()) << status;
  }
  Harness h;
  h.t->Push(FakeResponse::Status(200, {}, "<html>a web page</html>"));
  auto r = h.c.GetReferrers(D('f'));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  Harness unauthorized;
  unauthorized.t->Push(FakeResponse::Status(401));
  EXPECT_FALSE(unauthorized.c.GetReferrers(D('f')));
}

TEST(ReferrersTest, PutReturnsOciSubjectAndAbsentManifestsAreNullopt) {
  Harness h;
  auto m =
      oci::RawManifest::FromBytes(R"({"schemaVersion":2})", std::string(oci::media::kOciManifest));
  h.t->Push(FakeResponse::Status(
      201, {{"OCI-Subject", D('f').String()}, {"Docker-Content-Digest", m.digest.String()}}));
  h.t->Push(FakeResponse::Status(201, {}));
  auto with = h.c.PutManifestWithSubject(m, m.digest.String());
  ASSERT_TRUE(with) << with.error().message;
  EXPECT_EQ(*with, D('f').String());
  auto without = h.c.PutManifestWithSubject(m, m.digest.String());
  ASSERT_TRUE(without);
  EXPECT_EQ(*without, "");
  auto puts = h.t->Requests("PUT");
  ASSERT_EQ(puts.size(), 2u);
  EXPECT_EQ(puts[0].Header("Content-Type"), std::string(oci::media::kOciManifest));
  EXPECT_EQ(puts[0].body, m.bytes);

  h.t->Push(FakeResponse::Status(404, {}, R"({"errors":[{"code":"MANIFEST_UNKNOWN"}]})"));
  auto absent = h.c.GetManifestIfPresent("sha256-" + std::string(64, 'a') + ".sig");
  ASSERT_TRUE(absent) << absent.error().message;
  EXPECT_FALSE(absent->has_value());
  h.t->Push(FakeResponse::Status(503));
  h.t->SetHandler([](const auto&) { return FakeResponse::Status(503); });
  EXPECT_FALSE(h.c.GetManifestIfPresent("v1"));
}

}  // namespace
}  // namespace mc::registry
