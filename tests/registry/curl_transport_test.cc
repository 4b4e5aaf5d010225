// Loopback tests of the real CurlTransport against tests/support/http_test_server.py.
#include "registry/curl_transport.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <thread>

#include "oci/digest.h"
#include "registry/log.h"
#include "tests/support/http_test_util.h"
#include "tests/support/paths.h"
#include "tests/support/process.h"

namespace mc::registry {
namespace {

using mc::testing::PatternByte;
using mc::testing::PatternReader;

class CurlTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = mc::testing::StartPythonServer("http_test_server.py").release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  std::shared_ptr<Transport> transport_ = NewCurlTransport(TransportOptions{});
  static mc::testing::Subprocess* server_;
};
mc::testing::Subprocess* CurlTransportTest::server_ = nullptr;

HttpRequest Get(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  r.idempotent = true;
  return r;
}

TEST_F(CurlTransportTest, GetsSmallBody) {
  auto resp = transport_->Send(Get(Url("/bytes/1000")));
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->Header("Content-Length"), "1000");
  auto body = resp->ReadBody();
  ASSERT_TRUE(body);
  ASSERT_EQ(body->size(), 1000u);
  for (size_t i = 0; i < body->size(); ++i) ASSERT_EQ(std::byte((*body)[i]), PatternByte(i));
}

TEST_F(CurlTransportTest, HeadHasNoBodyAndStatusesAreNotErrors) {
  HttpRequest head = Get(Url("/bytes/12345"));
  head.method = "HEAD";
  auto resp = transport_->Send(head);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->Header("content-length"), "12345");
  EXPECT_EQ(resp->ReadBody().value(), "");
  auto missing = transport_->Send(Get(Url("/nothing-here")));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->ReadBody().value().find("NOT_FOUND"), std::string::npos);
}

// 64 MiB read slowly: the transfer pauses, so memory stays near the buffer size.
TEST_F(CurlTransportTest, StreamsLargeBodyWithBoundedMemory) {
  constexpr uint64_t kSize = 64ull << 20;
  long rss_before = mc::testing::RssKiB();
  auto resp = transport_->Send(Get(Url("/bytes/" + std::to_string(kSize))));
  ASSERT_TRUE(resp) << resp.error().message;
  std::vector<std::byte> buf(256 << 10);
  uint64_t total = 0;
  long peak = 0;
  bool slept = false;
  while (true) {
    auto n = resp->body->Read(buf);
    ASSERT_TRUE(n) << n.error().message;
    if (*n == 0) break;
    for (size_t i = 0; i < *n; i += 4099) ASSERT_EQ(buf[i], PatternByte(total + i));
    total += *n;
    if (!slept && total >= (1 << 20)) {  // let the server run ahead: it must be paused
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      slept = true;
    }
    peak = std::max(peak, mc::testing::RssKiB());
  }
  EXPECT_EQ(total, kSize);
  EXPECT_LT(peak - rss_before, 24 * 1024) << "response body was buffered, not streamed";
}

TEST_F(CurlTransportTest, SendsStreamedAndInMemoryBodies) {
  constexpr uint64_t kSize = 5'000'000;
  std::string expected;
  for (uint64_t i = 0; i < kSize; ++i) expected.push_back(static_cast<char>(PatternByte(i)));
  std::string want = oci::Digest::Of(expected).hex();
  for (int64_t length : {static_cast<int64_t>(kSize), int64_t{-1}}) {  // sized, chunked
    PatternReader reader(kSize);
    HttpRequest put = Get(Url("/echo"));
    put.method = "PUT";
    put.body_reader = &reader;
    put.body_length = length;
    auto resp = transport_->Send(put);
    ASSERT_TRUE(resp) << resp.error().message;
    auto j = nlohmann::json::parse(resp->ReadBody().value());
    EXPECT_EQ(j["length"], kSize) << "body_length " << length;
    EXPECT_EQ(j["sha256"], want);
  }
  HttpRequest post = Get(Url("/echo"));
  post.method = "POST";
  post.body = oci::AsBytes(expected);
  auto resp = transport_->Send(post);
  ASSERT_TRUE(resp) << resp.error().message;
  auto j = nlohmann::json::parse(resp->ReadBody().value());
  EXPECT_EQ(j["sha256"], want);
  EXPECT_EQ(j["method"], "POST");
}

TEST_F(CurlTransportTest, EmptyBodiesSendContentLengthZeroAndNoExpect) {
  for (const char* method : {"POST", "PUT", "PATCH"}) {
    HttpRequest r = Get(Url("/headers"));
    r.method = method;
    auto resp = transport_->Send(r);
    ASSERT_TRUE(resp) << resp.error().message;
    auto seen = nlohmann::json::parse(resp->ReadBody().value());
    EXPECT_EQ(seen["content-length"], "0") << method << " " << seen.dump();
    EXPECT_FALSE(seen.contains("expect")) << seen.dump();
    EXPECT_FALSE(seen.contains("transfer-encoding")) << seen.dump();
  }
  std::string big(2 << 20, 'x');  // libcurl would add Expect: 100-continue here
  HttpRequest put = Get(Url("/headers"));
  put.method = "PUT";
  put.body = oci::AsBytes(big);
  auto resp = transport_->Send(put);
  ASSERT_TRUE(resp);
  auto seen = nlohmann::json::parse(resp->ReadBody().value());
  EXPECT_FALSE(seen.contains("expect")) << seen.dump();
  EXPECT_EQ(seen["content-length"], std::to_string(big.size()));
}

TEST_F(CurlTransportTest, ManyConcurrentRequests) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = transport_->Send(Get(Url("/bytes/" + std::to_string(100'000 + i))));
      if (r && r->ReadBody().value_or("").size() == static_cast<size_t>(100'000 + i)) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 8);
}

TEST_F(CurlTransportTest, ConnectionDroppedMidBodyIsTransient) {
  auto resp = transport_->Send(Get(Url("/drop/200000")));
  ASSERT_TRUE(resp) << resp.error().message;
  auto body = resp->ReadBody();
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, oci::ErrorCode::kTransient) << body.error().message;
  EXPECT_NE(body.error().message.find("/drop/200000"), std::string::npos);
}

// A server that stops sending fails the transfer after stall_timeout. (That a
// transfer paused by a slow reader is exempt is libcurl's speedcheck.c; a
// test would need a pause longer than curl's 5 s speed window.)
TEST_F(CurlTransportTest, StallTimeout) {
  TransportOptions opts;
  opts.stall_timeout = std::chrono::milliseconds(1000);
  auto t = NewCurlTransport(opts);
  auto start = std::chrono::steady_clock::now();
  auto stalled = t->Send(Get(Url("/stall")));
  ASSERT_TRUE(stalled) << stalled.error().message;
  auto body = stalled->ReadBody();
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, oci::ErrorCode::kTransient);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(CurlTransportTest, ConnectionRefusedIsTransient) {
  auto resp = transport_->Send(Get("http://127.0.0.1:1/x?secret=1"));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kTransient);
  EXPECT_EQ(resp.error().message.find("secret"), std::string::npos) << resp.error().message;
}

TEST_F(CurlTransportTest, EarlyDestroyedBodyCancelsTransfer) {
  {
    auto resp = transport_->Send(Get(Url("/bytes/" + std::to_string(32 << 20))));
    ASSERT_TRUE(resp);
    std::vector<std::byte> buf(1000);
    ASSERT_TRUE(resp->body->Read(buf));
  }
  auto again = transport_->Send(Get(Url("/bytes/10")));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ReadBody().value().size(), 10u);
}

TEST_F(CurlTransportTest, PlainHttpToRemoteHostRefusedWhenVerifying) {
  auto resp = transport_->Send(Get("http://registry.example.com/v2/"));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_NE(resp.error().message.find("--tls-verify=false"), std::string::npos);
}

TEST_F(CurlTransportTest, RedirectToOtherHostDropsAuthKeepsRange) {
  auto other = mc::testing::StartPythonServer("http_test_server.py", {"--host", "127.0.0.2"});
  std::string target = "http://127.0.0.2:" + std::to_string(other->port()) + "/headers";
  HttpRequest r = Get(Url("/redirect?status=307&to=" + target));
  r.headers = {
      {"Authorization", "Bearer s3cret"}, {"X-Registry-Auth", "abc"}, {"Range", "bytes=5-"}};
  auto resp = transport_->Send(r);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->effective_url, target);
  auto seen = nlohmann::json::parse(resp->ReadBody().value());
  EXPECT_FALSE(seen.contains("authorization")) << seen.dump();
  EXPECT_FALSE(seen.contains("x-registry-auth")) << seen.dump();
  EXPECT_EQ(seen["range"], "bytes=5-");
  // Same host: Authorization stays.
  r.url = Url("/redirect?to=" + Url("/headers"));
  auto same = transport_->Send(r);
  ASSERT_TRUE(same);
  EXPECT_EQ(nlohmann::json::parse(same->ReadBody().value())["authorization"], "Bearer s3cret");
}

TEST_F(CurlTransportTest, RedirectLoopStops) {
  auto resp = transport_->Send(Get(Url("/loop")));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kNetwork);
  EXPECT_NE(resp.error().message.find("redirects"), std::string::npos);
}

TEST_F(CurlTransportTest, NoFollowReturnsRedirect) {
  HttpRequest r = Get(Url("/redirect?status=307&to=/headers"));
  r.follow_redirects = false;
  auto resp = transport_->Send(r);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 307);
  EXPECT_EQ(resp->Header("location"), "/headers");
}

TEST_F(CurlTransportTest, TraceRedactsSecrets) {
  std::ostringstream log_out;
  auto logger = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_out));
  logger->set_level(spdlog::level::trace);
  SetLogger(logger);
  TransportOptions opts;
  opts.trace = true;
  auto t = NewCurlTransport(opts);
  HttpRequest r = Get(Url("/headers?X-Amz-Signature=topsecret"));
  r.headers = {{"Authorization", "Bearer tok-SECRET"}, {"Cookie", "s=SECRET2"}};
  auto resp = t->Send(r);
  SetLogger(nullptr);
  ASSERT_TRUE(resp);
  std::string text = log_out.str();
  EXPECT_NE(text.find("Authorization: Bearer <redacted>"), std::string::npos) << text;
  EXPECT_NE(text.find("/headers?…"), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;
  EXPECT_EQ(text.find("topsecret"), std::string::npos) << text;
}

class CurlTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string log;
    ASSERT_TRUE(mc::testing::MakeTestCa(dir_.path(), &log)) << log;
    std::filesystem::create_directories(dir_ / "certs");
    std::filesystem::copy_file(dir_ / "ca.crt", dir_ / "certs/ca.crt");
  }
  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--tls", (dir_ / "server.crt").string(),
                                     (dir_ / "server.key").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = mc::testing::StartPythonServer("http_test_server.py", args);
    url_ = "https://127.0.0.1:" + std::to_string(server_->port()) + "/bytes/100";
  }
  oci::Result<HttpResponse> Fetch(TransportOptions opts) {
    return NewCurlTransport(opts)->Send(Get(url_));
  }

  mc::testing::TempDir dir_;
  std::unique_ptr<mc::testing::Subprocess> server_;
  std::string url_;
};

TEST_F(CurlTlsTest, VerifiesWithCertDirAndRefusesWithout) {
  StartServer();
  TransportOptions opts;
  opts.system_cert_dirs = {};
  auto refused = Fetch(opts);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, oci::ErrorCode::kNetwork) << refused.error().message;
  EXPECT_NE(refused.error().message.find("--cert-dir"), std::string::npos);

  opts.tls.cert_dir = (dir_ / "certs").string();
  auto ok = Fetch(opts);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->ReadBody().value().size(), 100u);

  TransportOptions insecure;
  insecure.tls.verify = false;
  auto ok2 = Fetch(insecure);
  ASSERT_TRUE(ok2) << ok2.error().message;
  EXPECT_EQ(ok2->status, 200);
}

TEST_F(CurlTlsTest, UsesCertsDForHostPort) {
  StartServer();
  TransportOptions opts;
  auto host_dir = dir_ / "certs.d" / ("127.0.0.1:" + std::to_string(server_->port()));
  std::filesystem::create_directories(host_dir);
  std::filesystem::copy_file(dir_ / "ca.crt", host_dir / "ca.crt");
  opts.system_cert_dirs = {(dir_ / "nonexistent").string(), (dir_ / "certs.d").string()};
  auto ok = Fetch(opts);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
}

TEST_F(CurlTlsTest, PresentsClientCertificateFromCertDir) {
  StartServer({"--client-ca", (dir_ / "ca.crt").string()});
  TransportOptions opts;
  opts.tls.cert_dir = (dir_ / "certs").string();
  auto refused = Fetch(opts);
  EXPECT_FALSE(refused && refused->ReadBody()) << "server demands a client certificate";
  std::filesystem::copy_file(dir_ / "client.cert", dir_ / "certs/client.cert");
  std::filesystem::copy_file(dir_ / "client.key", dir_ / "certs/client.key");
  auto ok = Fetch(opts);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->ReadBody().value().size(), 100u);
}

}  // namespace
}  // namespace mc::registry
