#include "registry/retry.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>

#include "registry/curl_transport.h"
#include "tests/support/http_test_util.h"
#include "tests/support/process.h"

namespace mc::registry {
namespace {

using std::chrono::milliseconds;

struct DelayCase {
  int attempt;
  int64_t base_ms, ceiling_ms;
  std::optional<int64_t> retry_after_ms;
  double u;
  int64_t want_ms;
};

TEST(ComputeRetryDelayTest, Table) {
  const DelayCase cases[] = {
      {0, 500, 30'000, std::nullopt, 1.0, 500},       // first retry: up to base
      {0, 500, 30'000, std::nullopt, 0.5, 250},       // full jitter
      {1, 500, 30'000, std::nullopt, 1.0, 1000},      // doubles
      {3, 500, 30'000, std::nullopt, 1.0, 4000},      //
      {3, 500, 30'000, std::nullopt, 0.0, 0},         // jitter may reach zero
      {10, 500, 30'000, std::nullopt, 1.0, 30'000},   // capped by the ceiling
      {200, 500, 30'000, std::nullopt, 0.5, 15'000},  // no overflow
      {0, 500, 30'000, 1000, 0.1, 1000},              // Retry-After wins, no jitter
      {5, 500, 30'000, 0, 0.9, 0},                    // Retry-After: 0
      {0, 500, 30'000, 3'600'000, 0.5, 60'000},       // hour-long Retry-After capped at 60 s
      {0, 500, 120'000, 90'000, 0.5, 90'000},         // ... or at a larger ceiling
  };
  for (const auto& c : cases) {
    std::optional<milliseconds> ra;
    if (c.retry_after_ms) ra = milliseconds(*c.retry_after_ms);
    auto got = ComputeRetryDelay(c.attempt, milliseconds(c.base_ms), milliseconds(c.ceiling_ms), ra,
                                 [&] { return c.u; });
    EXPECT_EQ(got.count(), c.want_ms) << "attempt " << c.attempt << " u " << c.u;
  }
}

TEST(ParseRetryAfterTest, SecondsAndDates) {
  auto now = std::chrono::system_clock::from_time_t(1445412470);  // 2015-10-21 07:27:50 UTC
  EXPECT_EQ(ParseRetryAfter("1", now), milliseconds(1000));
  EXPECT_EQ(ParseRetryAfter(" 120 ", now), milliseconds(120'000));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now), milliseconds(10'000));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
}

TEST(IsRetryableStatusTest, Classes) {
  for (int s : {408, 429, 500, 502, 503, 504, 599}) EXPECT_TRUE(IsRetryableStatus(s)) << s;
  for (int s : {200, 201, 202, 301, 400, 401, 403, 404, 413, 416, 501, 505}) {
    EXPECT_FALSE(IsRetryableStatus(s)) << s;
  }
}

class RetryLoopbackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = mc::testing::StartPythonServer("http_test_server.py").release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  std::shared_ptr<Transport> Make(int retries) {
    return NewRetryTransport(NewCurlTransport(TransportOptions{}), retries,
                             [this](milliseconds d) { sleeps_.push_back(d); });
  }
  static HttpRequest Get(std::string url) {
    HttpRequest r;
    r.url = std::move(url);
    r.idempotent = true;
    return r;
  }
  // A key unique to the test, so the server's per-key failure counters are fresh.
  std::string Key() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

  std::vector<milliseconds> sleeps_;
  static mc::testing::Subprocess* server_;
};
mc::testing::Subprocess* RetryLoopbackTest::server_ = nullptr;

TEST_F(RetryLoopbackTest, Retries503ThenSucceeds) {
  auto resp = Make(3)->Send(Get(Url("/flaky/" + Key() + "?fail=2&status=503")));
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(nlohmann::json::parse(resp->ReadBody().value())["attempts"], 3);
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST_F(RetryLoopbackTest, HonoursRetryAfterOn429) {
  auto resp = Make(3)->Send(Get(Url("/flaky/" + Key() + "?fail=1&status=429&retry_after=1")));
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  ASSERT_EQ(sleeps_.size(), 1u);
  EXPECT_EQ(sleeps_[0], milliseconds(1000));
}

TEST_F(RetryLoopbackTest, ReturnsLastStatusWhenRetriesRunOut) {
  auto resp = Make(2)->Send(Get(Url("/flaky/" + Key() + "?fail=10&status=502")));
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 502);
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST_F(RetryLoopbackTest, DoesNotRetryNoRetryOrStreamedBodies) {
  HttpRequest r = Get(Url("/flaky/" + Key() + "-a?fail=1&status=503"));
  r.no_retry = true;
  auto resp = Make(3)->Send(r);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 503);

  mc::testing::PatternReader body(1000);
  HttpRequest put = Get(Url("/flaky/" + Key() + "-b?fail=1&status=503"));
  put.method = "PUT";
  put.body_reader = &body;
  put.body_length = 1000;
  auto resp2 = Make(3)->Send(put);
  ASSERT_TRUE(resp2);
  EXPECT_EQ(resp2->status, 503);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(RetryLoopbackTest, RetriesInMemoryBodies) {
  HttpRequest post = Get(Url("/flaky/" + Key() + "?fail=1&status=500"));
  post.method = "POST";
  post.idempotent = false;
  std::string data = "hello";
  post.body = oci::AsBytes(data);
  auto resp = Make(3)->Send(post);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(sleeps_.size(), 1u);
}

TEST_F(RetryLoopbackTest, DoesNotRetryClientErrors) {
  auto resp = Make(3)->Send(Get(Url("/flaky/" + Key() + "?fail=1&status=404")));
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, 404);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(RetryLoopbackTest, ConnectionErrorsBecomeNetworkAfterRetries) {
  auto resp = Make(2)->Send(Get("http://127.0.0.1:1/v2/"));
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kNetwork);
  EXPECT_NE(resp.error().message.find("after 2 retries"), std::string::npos)
      << resp.error().message;
  EXPECT_EQ(sleeps_.size(), 2u);

  HttpRequest once = Get("http://127.0.0.1:1/v2/");
  once.no_retry = true;
  auto r2 = Make(2)->Send(once);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, oci::ErrorCode::kTransient);
}

}  // namespace
}  // namespace mc::registry
