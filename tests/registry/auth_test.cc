#include "registry/auth.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "registry/curl_transport.h"
#include "registry/retry.h"
#include "tests/support/http_test_util.h"
#include "tests/support/process.h"

namespace mc::registry {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

TEST(ParseChallengesTest, BearerWithQuotedCommasAndColons) {
  auto c =
      ParseChallenges(R"(Bearer realm="https://auth.example/token",service="registry.example",)"
                      R"(scope="repository:org/repo:pull,push repository:other:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].Param("realm"), "https://auth.example/token");
  EXPECT_EQ(c[0].Param("service"), "registry.example");
  EXPECT_EQ(c[0].Param("scope"), "repository:org/repo:pull,push repository:other:pull");
}

TEST(ParseChallengesTest, SeveralChallengesAndOddSyntax) {
  auto c =
      ParseChallenges(R"(Basic realm="Registry Realm", BEARER Realm = "https://h:5001/auth?x=1" ,)"
                      R"( service=unquoted, error="insufficient_scope", scope="a:b:c")");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].Param("realm"), "Registry Realm");
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].Param("realm"), "https://h:5001/auth?x=1");
  EXPECT_EQ(c[1].Param("service"), "unquoted");
  EXPECT_EQ(c[1].Param("error"), "insufficient_scope");
  EXPECT_EQ(c[1].Param("scope"), "a:b:c");

  auto esc = ParseChallenges(R"(Bearer realm="a\"b,c", service="s")");
  ASSERT_EQ(esc.size(), 1u);
  EXPECT_EQ(esc[0].Param("realm"), "a\"b,c");
  EXPECT_EQ(esc[0].Param("service"), "s");
  EXPECT_TRUE(ParseChallenges("").empty());
  EXPECT_EQ(ParseChallenges("Negotiate, Basic realm=x").size(), 2u);
}

TEST(MergeScopesTest, AddsOnlyNewScopes) {
  std::vector<std::string> scopes = {"repository:a:pull,push"};
  EXPECT_FALSE(MergeScopes(scopes, "repository:a:pull,push"));
  EXPECT_TRUE(MergeScopes(scopes, "repository:b:pull  repository:a:pull,push"));
  EXPECT_EQ(scopes, (std::vector<std::string>{"repository:a:pull,push", "repository:b:pull"}));
}

TEST(BuildTokenUrlTest, MergesIntoExistingQuery) {
  EXPECT_EQ(
      BuildTokenUrl("https://a/token", "reg.io", {"repository:o/r:pull,push", "repository:s:pull"}),
      "https://a/token?service=reg.io&scope=repository%3Ao%2Fr%3Apull%2Cpush"
      "&scope=repository%3As%3Apull");
  EXPECT_EQ(BuildTokenUrl("https://a/token?account=x", "", {"r:n:pull"}),
            "https://a/token?account=x&scope=r%3An%3Apull");
}

TEST(ParseTokenResponseTest, FieldsAndDefaults) {
  auto now = system_clock::from_time_t(1'700'000'000);
  auto t = ParseTokenResponse(R"({"token":"abc"})", now);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->value, "abc");
  EXPECT_EQ(t->expires - now, seconds(60));
  auto oauth = ParseTokenResponse(R"({"access_token":"xyz","expires_in":3600})", now);
  ASSERT_TRUE(oauth);
  EXPECT_EQ(oauth->value, "xyz");
  EXPECT_EQ(oauth->expires - now, seconds(3600));
  // issued_at 100 s ago (1'699'999'900 = 2023-11-14T22:11:40Z).
  auto issued = ParseTokenResponse(
      R"({"token":"a","access_token":"b","expires_in":300,"issued_at":"2023-11-14T22:11:40.5Z"})",
      now);
  ASSERT_TRUE(issued);
  EXPECT_EQ(issued->value, "a");
  EXPECT_EQ(issued->expires - now, seconds(200));
  auto offset = ParseTokenResponse(
      R"({"token":"a","expires_in":300,"issued_at":"2023-11-15T00:11:40+02:00"})", now);
  EXPECT_EQ(offset->expires - now, seconds(200));
  auto future = ParseTokenResponse(
      R"({"token":"a","expires_in":300,"issued_at":"2030-01-01T00:00:00Z"})", now);
  EXPECT_EQ(future->expires - now, seconds(300)) << "a clock-skewed issued_at is ignored";
  EXPECT_FALSE(ParseTokenResponse(R"({"expires_in":60})", now));
  EXPECT_FALSE(ParseTokenResponse("<html>", now));
}

TEST(TokenTest, RefreshMargin) {
  auto t0 = system_clock::from_time_t(1'700'000'000);
  struct Case {
    int lifetime_s;
    double at_s;
    bool refresh;
  } cases[] = {{60, 29, false}, {60, 31, true}, {3600, 3200, false}, {3600, 3250, true},
               {2, 0.9, false}, {2, 1.1, true}, {300, 269, false},   {300, 271, true}};
  for (const auto& c : cases) {
    Token t{"x", t0, t0 + seconds(c.lifetime_s)};
    auto at = t0 + std::chrono::duration_cast<system_clock::duration>(
                       std::chrono::duration<double>(c.at_s));
    EXPECT_EQ(t.NeedsRefresh(at), c.refresh) << c.lifetime_s << " s token at " << c.at_s;
  }
}

class AuthLoopbackTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> args) {
    server_ = mc::testing::StartPythonServer("http_test_server.py", std::move(args));
    registry_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  std::string Url(const std::string& path) { return "http://" + registry_ + path; }
  std::shared_ptr<Transport> Make(Credential cred, std::vector<std::string> scopes) {
    auto base = NewRetryTransport(NewCurlTransport(TransportOptions{}), 2, [](auto) {});
    AuthConfig cfg;
    cfg.registry = registry_;
    cfg.credential = std::move(cred);
    cfg.scopes = std::move(scopes);
    cfg.token_transport = base;
    cfg.clock = [this] { return now_; };
    return NewAuthTransport(base, std::move(cfg));
  }
  nlohmann::json Stats() {
    auto r = NewCurlTransport(TransportOptions{})->Send(HttpRequest{.url = Url("/stats")});
    return nlohmann::json::parse(r.value().ReadBody().value());
  }
  static Credential Creds(std::string user, std::string pass) {
    Credential c;
    c.username = std::move(user);
    c.password = std::move(pass);
    c.source = "--creds";
    return c;
  }
  static HttpRequest Req(std::string url, std::string method = "GET") {
    HttpRequest r;
    r.method = std::move(method);
    r.url = std::move(url);
    r.idempotent = true;
    return r;
  }

  std::unique_ptr<mc::testing::Subprocess> server_;
  std::string registry_;
  system_clock::time_point now_ = system_clock::now();
};

TEST_F(AuthLoopbackTest, BasicAuth) {
  Start({"--basic-user", "alice", "--basic-pass", "wonder:land"});
  auto t = Make(Creds("alice", "wonder:land"), {});
  for (int i = 0; i < 2; ++i) {
    auto resp = t->Send(Req(Url("/basic/x")));
    ASSERT_TRUE(resp) << resp.error().message;
    EXPECT_EQ(resp->status, 200);
  }
  EXPECT_EQ(Stats()["counters"]["basic"], 3) << "one 401, then Basic sent up front";

  auto wrong = Make(Creds("alice", "hunter2"), {})->Send(Req(Url("/basic/x")));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, oci::ErrorCode::kUnauthorized);
  EXPECT_NE(wrong.error().message.find("authentication to " + registry_ + " failed"),
            std::string::npos)
      << wrong.error().message;
  EXPECT_NE(wrong.error().message.find("credentials from --creds"), std::string::npos);
  EXPECT_EQ(wrong.error().message.find("hunter2"), std::string::npos);

  auto anon = Make(Credential{}, {})->Send(Req(Url("/basic/x")));
  ASSERT_FALSE(anon);
  EXPECT_NE(anon.error().message.find("anonymous"), std::string::npos) << anon.error().message;
}

TEST_F(AuthLoopbackTest, BearerTokenCachedAndRefreshed) {
  Start({"--basic-user", "bob", "--basic-pass", "pw", "--token-ttl", "300"});
  auto t = Make(Creds("bob", "pw"), {"repository:org/model:pull"});
  for (int i = 0; i < 3; ++i) {
    auto resp = t->Send(Req(Url("/v2/org/model/manifests/latest")));
    ASSERT_TRUE(resp) << resp.error().message;
    EXPECT_EQ(resp->status, 200);
  }
  auto stats = Stats();
  EXPECT_EQ(stats["token_requests"], 1);
  EXPECT_EQ(stats["last_token_auth"], "basic");
  EXPECT_EQ(stats["last_scopes"][0], "repository:org/model:pull");
  now_ += seconds(200);  // 100 s left of 300: still fine
  ASSERT_EQ(t->Send(Req(Url("/v2/org/model/manifests/latest")))->status, 200);
  EXPECT_EQ(Stats()["token_requests"], 1);
  now_ += seconds(75);  // 25 s left: refreshed before use
  ASSERT_EQ(t->Send(Req(Url("/v2/org/model/manifests/latest")))->status, 200);
  EXPECT_EQ(Stats()["token_requests"], 2);
}

TEST_F(AuthLoopbackTest, InsufficientScopeIsMerged) {
  Start({"--token-ttl", "300"});
  auto t = Make(Credential{}, {"repository:org/model:pull"});
  std::string manifest = "{}";
  HttpRequest put = Req(Url("/v2/org/model/manifests/v1"), "PUT");
  put.body = oci::AsBytes(manifest);
  auto resp = t->Send(put);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  auto stats = Stats();
  EXPECT_EQ(stats["last_token_auth"], "anonymous");
  EXPECT_EQ(stats["last_scopes"],
            nlohmann::json::array({"repository:org/model:pull", "repository:org/model:pull,push"}));
}

TEST_F(AuthLoopbackTest, TokenServerRejectsCredentials) {
  Start({"--basic-user", "bob", "--basic-pass", "pw"});
  auto resp =
      Make(Creds("bob", "s3cr3t"), {"repository:a/b:pull"})->Send(Req(Url("/v2/a/b/manifests/x")));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kUnauthorized);
  const std::string& m = resp.error().message;
  EXPECT_NE(m.find("authentication to " + registry_ + " failed (credentials from --creds)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("invalid credentials"), std::string::npos) << m;
  EXPECT_EQ(m.find("s3cr3t"), std::string::npos) << m;
}

TEST_F(AuthLoopbackTest, StreamedBodyGets401BackThenResends) {
  Start({});
  auto t = Make(Credential{}, {"repository:org/m:pull,push"});
  mc::testing::PatternReader first(1000);
  HttpRequest put = Req(Url("/v2/org/m/blobs/uploads/x"), "PATCH");
  put.body_reader = &first;
  put.body_length = 1000;
  auto resp = t->Send(put);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 401) << "a stream cannot be replayed here";
  mc::testing::PatternReader second(1000);
  put.body_reader = &second;
  auto again = t->Send(put);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(nlohmann::json::parse(again->ReadBody().value())["length"], 1000);
}

TEST_F(AuthLoopbackTest, IdentityTokenUsesOAuthPost) {
  Start({"--identity-token", "refresh-me", "--token-needs-auth"});
  Credential c;
  c.username = "<token>";
  c.identity_token = "refresh-me";
  c.source = "/tmp/auth.json";
  auto resp = Make(c, {"repository:x/y:pull"})->Send(Req(Url("/v2/x/y/tags/list")));
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(Stats()["last_token_auth"], "oauth2");
}

TEST_F(AuthLoopbackTest, RegistryTokenUsedDirectlyAndRejectedOnce) {
  Start({});
  Credential c;
  c.registry_token = "not-a-valid-token";
  c.source = "/tmp/auth.json";
  auto resp = Make(c, {"repository:x/y:pull"})->Send(Req(Url("/v2/x/y/tags/list")));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kUnauthorized);
  EXPECT_NE(resp.error().message.find("credentials from /tmp/auth.json"), std::string::npos);
  EXPECT_EQ(resp.error().message.find("not-a-valid-token"), std::string::npos);
  EXPECT_EQ(Stats()["token_requests"], 0);
}

}  // namespace
}  // namespace mc::registry
