// The fixtures themselves, checked with libcurl and skopeo (independent
// clients), so that a failing client test never hides a broken fixture.
#include "tests/support/registry_fixture.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace mc::testing {
namespace {

TEST(RegistryFixtureTest, PlainHttpAnswersAndLogsAccess) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  SimpleResponse r = HttpRequestSimple("GET", reg.url() + "/v2/");
  EXPECT_EQ(r.status, 200);
  r = HttpRequestSimple("POST", reg.url() + "/v2/fixture/blobs/uploads/");
  EXPECT_EQ(r.status, 202);
  EXPECT_GE(reg.CountRequests("POST", "/v2/fixture/blobs/uploads/"), 1) << reg.Log();
  EXPECT_EQ(reg.CountRequests("PATCH"), 0);
}

TEST(RegistryFixtureTest, TlsVerifiesWithCaFromCertDir) {
  RegistryFixture reg({.tls = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  EXPECT_EQ(reg.url().rfind("https://", 0), 0u);
  EXPECT_EQ(HttpRequestSimple("GET", reg.url() + "/v2/", "", {}, reg.ca_file()).status, 200);
  // Without the CA the system trust store refuses the certificate.
  EXPECT_EQ(HttpRequestSimple("GET", reg.url() + "/v2/").status, 0);
}

TEST(RegistryFixtureTest, HtpasswdNeedsThePassword) {
  RegistryFixture reg({.htpasswd = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  SimpleResponse r = HttpRequestSimple("GET", reg.url() + "/v2/");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.headers.find("Basic realm="), std::string::npos) << r.headers;
  std::string out;
  EXPECT_EQ(
      mc::testing::Run("curl -s -o /dev/null -w '%{http_code}' -u " +
                           Quote(reg.user() + ":" + reg.password()) + " " + reg.url() + "/v2/",
                       &out),
      0);
  EXPECT_EQ(out, "200");
  out.clear();
  mc::testing::Run("curl -s -o /dev/null -w '%{http_code}' -u " + Quote(reg.user() + ":wrong") +
                       " " + reg.url() + "/v2/",
                   &out);
  EXPECT_EQ(out, "401");
}

TEST(RegistryFixtureTest, TokenServerIssuesTokensTheRegistryAccepts) {
  RegistryFixture reg({.token_auth = true});
  ASSERT_TRUE(reg.ok()) << reg.error();
  SimpleResponse r = HttpRequestSimple("GET", reg.url() + "/v2/");
  ASSERT_EQ(r.status, 401);
  EXPECT_NE(r.headers.find("Bearer realm=\"" + reg.token_url() + "/token\""), std::string::npos)
      << r.headers;
  std::string body;
  ASSERT_EQ(mc::testing::Run(
                "curl -sf -u " + Quote(reg.user() + ":" + reg.password()) + " '" + reg.token_url() +
                    "/token?service=mc-test-registry&scope=repository:tok/repo:pull,push'",
                &body, false),
            0);
  auto j = nlohmann::json::parse(body);
  std::string token = j.at("token");
  EXPECT_GE(j.at("expires_in").get<int>(), 60);
  r = HttpRequestSimple("POST", reg.url() + "/v2/tok/repo/blobs/uploads/", "",
                        {"Authorization: Bearer " + token});
  EXPECT_EQ(r.status, 202) << r.body << reg.Log();
  // The token is scoped: another repository is refused.
  r = HttpRequestSimple("POST", reg.url() + "/v2/other/repo/blobs/uploads/", "",
                        {"Authorization: Bearer " + token});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(reg.TokenLog().find("scope=repository:tok/repo:pull,push"), std::string::npos);
  // Wrong password: the token server refuses.
  EXPECT_NE(mc::testing::Run("curl -sf -o /dev/null -u " + Quote(reg.user() + ":nope") + " '" +
                             reg.token_url() + "/token?service=mc-test-registry'"),
            0);
}

TEST(RegistryFixtureTest, FaultProxyFailsFirstRequestsThenForwards) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultProxy proxy(reg.host(), {.fail_first = 2, .fail_status = 429, .retry_after_seconds = 1});
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  std::string base = "http://" + proxy.host();
  SimpleResponse r = HttpRequestSimple("GET", base + "/v2/");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.headers.find("Retry-After: 1"), std::string::npos) << r.headers;
  EXPECT_EQ(HttpRequestSimple("GET", base + "/v2/").status, 429);
  EXPECT_EQ(HttpRequestSimple("GET", base + "/v2/").status, 200);
  r = HttpRequestSimple("POST", base + "/v2/p/blobs/uploads/");
  EXPECT_EQ(r.status, 202);
  // Location points back at the proxy (Host is forwarded unchanged).
  EXPECT_NE(r.headers.find(proxy.host()), std::string::npos) << r.headers;
}

TEST(RegistryFixtureTest, FaultProxyCutsRequestBody) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  FaultProxy proxy(reg.host(), {.cut_request_after = 1000, .cut_method = "PUT"});
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  std::string base = "http://" + proxy.host();
  SimpleResponse r = HttpRequestSimple("PUT", base + "/v2/p/manifests/x", std::string(5000, 'a'),
                                       {"Content-Type: application/octet-stream"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(proxy.Log().find("cut PUT /v2/p/manifests/x after 1000"), std::string::npos)
      << proxy.Log();
}

}  // namespace
}  // namespace mc::testing
