// Loopback tests of the real CurlTransport against tests/support/http_test_server.py.
#include "registry/curl_transport.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <optional>
#include <sstream>
#include <thread>

#include "oci/digest.h"
#include "registry/curl_memory.h"
#include "registry/log.h"
#include "tests/support/http_test_util.h"
#include "tests/support/paths.h"
#include "tests/support/process.h"

namespace mc::registry {
namespace {

using mc::testing::PatternByte;
using mc::testing::PatternReader;

HttpRequest Get(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  r.idempotent = true;
  return r;
}

class CurlTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = mc::testing::StartPythonServer("http_test_server.py").release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static nlohmann::json Stats() {
    auto r = NewCurlTransport(TransportOptions{})->Send(Get(Url("/stats")));
    return nlohmann::json::parse(r.value().ReadBody().value());
  }
  static std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  std::shared_ptr<Transport> transport_ = NewCurlTransport(TransportOptions{});
  static mc::testing::Subprocess* server_;
};
mc::testing::Subprocess* CurlTransportTest::server_ = nullptr;

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

// 64 MiB read slowly: the transfer pauses, so the server cannot run ahead by
// more than our buffer plus the kernel's socket buffers. (Measured at the
// server: RSS is meaningless under AddressSanitizer.)
TEST_F(CurlTransportTest, StreamsLargeBodyWithBackpressure) {
  constexpr uint64_t kSize = 64ull << 20;
  auto resp = transport_->Send(Get(Url("/bytes/" + std::to_string(kSize) + "?tag=big")));
  ASSERT_TRUE(resp) << resp.error().message;
  std::vector<std::byte> buf(256 << 10);
  uint64_t total = 0;
  bool paused_checked = false;
  while (true) {
    auto n = resp->body->Read(buf);
    ASSERT_TRUE(n) << n.error().message;
    if (*n == 0) break;
    for (size_t i = 0; i < *n; i += 4099) ASSERT_EQ(buf[i], PatternByte(total + i));
    total += *n;
    if (!paused_checked && total >= (1 << 20)) {  // stop reading: the server must stall
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      auto stats = Stats();
      uint64_t sent = stats["sent"]["big"].get<uint64_t>();
      EXPECT_LT(sent, 24u << 20) << "the response body was buffered, not streamed";
      paused_checked = true;
    }
  }
  EXPECT_EQ(total, kSize);
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

// An in-memory body in parts (an upload chunk of pooled buffers) arrives as
// the parts back to back, with one Content-Length.
TEST_F(CurlTransportTest, SendsABodyInPartsBackToBack) {
  std::string expected;
  for (uint64_t i = 0; i < 3'000'000; ++i) expected.push_back(static_cast<char>(PatternByte(i)));
  std::string_view all(expected);
  HttpRequest patch = Get(Url("/echo"));
  patch.method = "PATCH";
  // Uneven parts, an empty one among them, one smaller than libcurl's buffer.
  patch.body_parts = {oci::AsBytes(all.substr(0, 1'000'003)),
                      oci::AsBytes(all.substr(1'000'003, 0)),
                      oci::AsBytes(all.substr(1'000'003, 17)), oci::AsBytes(all.substr(1'000'020))};
  EXPECT_EQ(patch.BodySize(), expected.size());
  EXPECT_EQ(patch.BodyString(), expected);
  auto resp = transport_->Send(patch);
  ASSERT_TRUE(resp) << resp.error().message;
  auto j = nlohmann::json::parse(resp->ReadBody().value());
  EXPECT_EQ(j["method"], "PATCH");
  EXPECT_EQ(j["length"], expected.size());
  EXPECT_EQ(j["sha256"], oci::Digest::Of(expected).hex());
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

// SIGINT/SIGTERM reach a transfer on a link that moves no byte: it ends
// cancel_grace after the flag went up (kCancelled), not after stall_timeout
// (120 s) or when the server gives up (/stall: 30 s). Both ways of sending.
TEST_F(CurlTransportTest, CancellationEndsAStalledTransferAfterTheGrace) {
  std::atomic<bool> stop{false};
  TransportOptions opts;
  opts.cancelled = [&] { return stop.load(); };
  opts.cancel_grace = std::chrono::milliseconds(200);
  auto t = NewCurlTransport(opts);
  auto resp = t->Send(Get(Url("/stall")));
  ASSERT_TRUE(resp) << resp.error().message;
  auto start = std::chrono::steady_clock::now();
  stop = true;  // headers arrived, the body never will
  auto body = resp->ReadBody();
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, oci::ErrorCode::kCancelled) << body.error().message;
  EXPECT_NE(body.error().message.find("interrupted"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  stop = false;
  BodyHandler h;
  h.on_response = [&](const HttpResponse&) -> oci::Result<void> {
    stop = true;
    start = std::chrono::steady_clock::now();
    return {};
  };
  h.on_body = [](std::span<const std::byte>) -> oci::Result<void> { return {}; };
  auto streamed = t->SendStreaming(Get(Url("/stall?sent=10")), h);
  ASSERT_FALSE(streamed);
  EXPECT_EQ(streamed.error().code, oci::ErrorCode::kCancelled) << streamed.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  // Without the flag the same transport still works.
  stop = false;
  auto ok = t->Send(Get(Url("/bytes/1000")));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->ReadBody().value().size(), 1000u);
}

// A request body the peer took to the last byte awaits its answer (a
// buffering proxy may still be forwarding it) — until cancel_deadline, not
// just cancel_grace. /stall answers nothing for 30 s.
TEST_F(CurlTransportTest, CancellationWaitsForTheAnswerToASentBodyUntilTheDeadline) {
  TransportOptions opts;
  opts.cancelled = [] { return true; };
  opts.cancel_grace = std::chrono::milliseconds(2000);
  opts.cancel_deadline = std::chrono::milliseconds(3000);
  auto t = NewCurlTransport(opts);
  std::string body(10'000, 'x');
  HttpRequest patch = Get(Url("/stall"));
  patch.method = "PATCH";
  patch.body_parts = {oci::AsBytes(body)};
  auto start = std::chrono::steady_clock::now();
  auto resp = t->Send(patch);
  auto waited = std::chrono::steady_clock::now() - start;
  if (resp) {  // /stall sends its headers at once; the body never comes
    auto rest = resp->ReadBody();
    waited = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(rest);
    EXPECT_EQ(rest.error().code, oci::ErrorCode::kCancelled) << rest.error().message;
  } else {
    EXPECT_EQ(resp.error().code, oci::ErrorCode::kCancelled) << resp.error().message;
  }
  EXPECT_GE(waited, std::chrono::milliseconds(3000));
  EXPECT_LT(waited, std::chrono::seconds(10));
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

// What a BodyHandler saw.
struct Streamed {
  int on_response_calls = 0;
  int status = 0;
  std::optional<std::string> content_length;
  uint64_t bytes = 0;
  bool in_order = true;
  bool on_caller_thread = true;
  std::string text;  // the first 64 KiB
  BodyHandler Handler(std::thread::id caller = std::this_thread::get_id()) {
    BodyHandler h;
    h.on_response = [this](const HttpResponse& r) -> oci::Result<void> {
      ++on_response_calls;
      status = r.status;
      content_length = r.Header("content-length");
      return {};
    };
    h.on_body = [this, caller](std::span<const std::byte> data) -> oci::Result<void> {
      on_caller_thread = on_caller_thread && std::this_thread::get_id() == caller;
      for (size_t i = 0; i < data.size(); i += 997) {
        in_order = in_order && data[i] == PatternByte(bytes + i);
      }
      if (text.size() < 65536) text.append(reinterpret_cast<const char*>(data.data()), data.size());
      bytes += data.size();
      return {};
    };
    return h;
  }
};

// libcurl allocates its upload and receive buffers for every transfer and
// frees them at its end; the transport's allocator hands the same blocks to
// the next transfer instead of fresh pages (curl_memory.h).
TEST_F(CurlTransportTest, ConsecutiveUploadsReuseLibcurlsBuffers) {
  std::string body(3'000'000, 'x');
  const size_t before = internal::GetCurlMemoryStats().reused;
  for (int i = 0; i < 3; ++i) {
    HttpRequest patch = Get(Url("/echo"));
    patch.method = "PATCH";
    patch.body_parts = {oci::AsBytes(body)};
    auto resp = transport_->Send(patch);
    ASSERT_TRUE(resp) << resp.error().message;
    EXPECT_EQ(nlohmann::json::parse(resp->ReadBody().value())["length"], body.size());
  }
  // The 2 MiB upload buffer and the receive buffer of the 2nd and 3rd PATCH.
  EXPECT_GE(internal::GetCurlMemoryStats().reused - before, 4u);
}

uint64_t Counter(const nlohmann::json& stats, const std::string& key) {
  return stats["counters"].value(key, uint64_t{0});
}

TEST_F(CurlTransportTest, StreamingDeliversTheBodyOnTheCallingThreadAndReusesTheConnection) {
  uint64_t before = Counter(Stats(), "connections");
  for (int i = 0; i < 4; ++i) {
    Streamed seen;
    auto resp = transport_->SendStreaming(Get(Url("/bytes/5000000")), seen.Handler());
    ASSERT_TRUE(resp) << resp.error().message;
    EXPECT_EQ(resp->status, 200);
    EXPECT_EQ(resp->ReadBody().value(), "");  // it went to the handler
    EXPECT_EQ(seen.on_response_calls, 1);
    EXPECT_EQ(seen.status, 200);
    EXPECT_EQ(seen.content_length, "5000000");
    EXPECT_EQ(seen.bytes, 5000000u);
    EXPECT_TRUE(seen.in_order);
    EXPECT_TRUE(seen.on_caller_thread);
  }
  // Four sequential transfers, one connection (plus the one Stats() uses).
  EXPECT_EQ(Counter(Stats(), "connections") - before, 2u);
}

// Upload chunks through SendStreaming (DirectSender, curl_direct.h): the body
// goes out from the caller's buffers, so libcurl never allocates its 2 MiB
// upload buffer (the allocator would hand out a kept one: `reused` would
// grow, as in ConsecutiveUploadsReuseLibcurlsBuffers). The bytes arrive
// intact, sized and chunked, and one connection carries every request.
class DirectSendTest : public CurlTransportTest {
 protected:
  // A request to /echo whose body is `data` cut in uneven parts.
  static HttpRequest Patch(std::string_view data, const std::string& path = "/echo") {
    HttpRequest r = Get(Url(path));
    r.method = "PATCH";
    r.idempotent = false;
    size_t cut = std::min<size_t>(data.size(), 1'000'003);
    r.body_parts = {oci::AsBytes(data.substr(0, cut)), oci::AsBytes(data.substr(cut, 0)),
                    oci::AsBytes(data.substr(cut))};
    return r;
  }
  static std::string Pattern(size_t n) {
    std::string s;
    s.reserve(n);
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(PatternByte(i)));
    return s;
  }
};

TEST_F(DirectSendTest, SendsTheCallersBuffersOnOneConnection) {
  const std::string body = Pattern(3'000'000);
  for (bool chunked : {false, true}) {
    auto t = NewCurlTransport(TransportOptions{});
    const uint64_t connections = Counter(Stats(), "connections");
    const size_t reused = internal::GetCurlMemoryStats().reused;
    for (int i = 0; i < 3; ++i) {
      HttpRequest r = Patch(body);
      if (chunked) r.end_body_early = [] { return false; };
      Streamed seen;
      auto resp = t->SendStreaming(r, seen.Handler());
      ASSERT_TRUE(resp) << resp.error().message;
      EXPECT_EQ(resp->status, 200);
      EXPECT_EQ(seen.on_response_calls, 1);
      auto j = nlohmann::json::parse(seen.text);
      EXPECT_EQ(j["method"], "PATCH");
      EXPECT_EQ(j["length"], body.size()) << "chunked " << chunked;
      EXPECT_EQ(j["sha256"], oci::Digest::Of(body).hex());
    }
    EXPECT_EQ(internal::GetCurlMemoryStats().reused, reused) << "libcurl buffered the body";
    // The three PATCHes and the Stats() call above.
    EXPECT_EQ(Counter(Stats(), "connections") - connections, 2u) << "chunked " << chunked;
  }
}

TEST_F(DirectSendTest, SendsTheSameRequestAsLibcurl) {
  const std::string body = Pattern(2'000'000);
  TransportOptions libcurl_opts;
  libcurl_opts.direct_send = false;
  std::vector<nlohmann::json> seen;
  for (auto t : {transport_, NewCurlTransport(libcurl_opts)}) {
    HttpRequest r = Patch(body, "/headers?x=1");
    r.headers = {{"Content-Type", "application/octet-stream"}, {"Content-Range", "0-1999999"}};
    Streamed got;
    auto resp = t->SendStreaming(r, got.Handler());
    ASSERT_TRUE(resp) << resp.error().message;
    seen.push_back(nlohmann::json::parse(got.text));
  }
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(seen[0]["content-length"], "2000000");
  EXPECT_EQ(seen[0]["content-range"], "0-1999999");
  EXPECT_EQ(seen[0].count("expect"), 0u);
}

// end_body_early: the chunked body ends at the next chunk once it says so,
// and the server gets a well-formed shorter body.
TEST_F(DirectSendTest, EndsAChunkedBodyEarly) {
  const std::string body = Pattern(8'000'000);
  HttpRequest r = Patch(body);
  int calls = 0;
  r.end_body_early = [&] { return ++calls > 3; };
  Streamed seen;
  auto resp = transport_->SendStreaming(r, seen.Handler());
  ASSERT_TRUE(resp) << resp.error().message;
  auto j = nlohmann::json::parse(seen.text);
  const uint64_t got = j["length"];
  EXPECT_GT(got, 0u);
  EXPECT_LT(got, body.size());
  EXPECT_EQ(j["sha256"], oci::Digest::Of(std::string_view(body).substr(0, got)).hex());
}

// A server that answers before reading the body (nginx's 413) is heard at
// once: the rest of the body is not sent and the answer comes back readable.
TEST_F(DirectSendTest, HearsAnAnswerBeforeTheBodyIsSent) {
  const std::string body = Pattern(64 << 20);
  auto start = std::chrono::steady_clock::now();
  auto resp = transport_->SendStreaming(Patch(body, "/early"), Streamed().Handler());
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 413);
  EXPECT_NE(resp->ReadBody().value().find("SIZE_INVALID"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  // One that answers and resets the connection: the answer still counts.
  auto reset = transport_->SendStreaming(Patch(body, "/early-reset?delay=0"), Streamed().Handler());
  ASSERT_TRUE(reset) << reset.error().message;
  EXPECT_EQ(reset->status, 413);
  // The next request gets a fresh connection.
  auto ok = transport_->SendStreaming(Patch(Pattern(1 << 20)), Streamed().Handler());
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
}

// A peer that stops reading: the stall timeout ends the request, and so does
// cancellation, after the grace (SIGTERM on a dead link).
TEST_F(DirectSendTest, ADeadLinkEndsByStallTimeoutOrCancellation) {
  const std::string body = Pattern(96 << 20);  // more than the socket buffers take
  TransportOptions opts;
  opts.stall_timeout = std::chrono::milliseconds(1000);
  auto start = std::chrono::steady_clock::now();
  auto stalled =
      NewCurlTransport(opts)->SendStreaming(Patch(body, "/stall-read"), Streamed().Handler());
  ASSERT_FALSE(stalled);
  EXPECT_EQ(stalled.error().code, oci::ErrorCode::kTransient) << stalled.error().message;
  EXPECT_NE(stalled.error().message.find("PATCH http://127.0.0.1"), std::string::npos)
      << stalled.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  std::atomic<bool> stop{false};
  TransportOptions cancel_opts;
  cancel_opts.cancelled = [&] { return stop.load(); };
  cancel_opts.cancel_grace = std::chrono::milliseconds(200);
  std::thread signal([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
  });
  auto cancelled = NewCurlTransport(cancel_opts)
                       ->SendStreaming(Patch(body, "/stall-read"), Streamed().Handler());
  auto waited = std::chrono::steady_clock::now() - start;
  signal.join();
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().code, oci::ErrorCode::kCancelled) << cancelled.error().message;
  EXPECT_LT(waited, std::chrono::seconds(20));
}

TEST_F(CurlTransportTest, StreamingLeavesOtherStatusesReadable) {
  Streamed seen;
  auto resp = transport_->SendStreaming(Get(Url("/nothing-here")), seen.Handler());
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 404);
  EXPECT_EQ(seen.on_response_calls, 0);
  EXPECT_EQ(seen.bytes, 0u);
  EXPECT_NE(resp->ReadBody().value().find("NOT_FOUND"), std::string::npos);
}

TEST_F(CurlTransportTest, StreamingHandlerErrorAbortsTheTransfer) {
  uint64_t got = 0;
  BodyHandler h;
  h.on_body = [&](std::span<const std::byte> data) -> oci::Result<void> {
    got += data.size();
    return oci::Fail(oci::ErrorCode::kIo, "disk full");
  };
  auto start = std::chrono::steady_clock::now();
  auto resp = transport_->SendStreaming(Get(Url("/bytes/" + std::to_string(256 << 20))), h);
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kIo);
  EXPECT_EQ(resp.error().message, "disk full");
  EXPECT_LT(got, 8u << 20);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  Streamed again;
  ASSERT_TRUE(transport_->SendStreaming(Get(Url("/bytes/10")), again.Handler()));
  EXPECT_EQ(again.bytes, 10u);
}

TEST_F(CurlTransportTest, StreamingReportsABrokenConnectionAfterTheBytesItGot) {
  Streamed seen;
  auto resp = transport_->SendStreaming(Get(Url("/drop/200000")), seen.Handler());
  ASSERT_FALSE(resp);
  EXPECT_EQ(resp.error().code, oci::ErrorCode::kTransient) << resp.error().message;
  EXPECT_NE(resp.error().message.find("after 100000 body bytes"), std::string::npos)
      << resp.error().message;
  EXPECT_EQ(seen.on_response_calls, 1);
  EXPECT_EQ(seen.bytes, 100000u);
  EXPECT_TRUE(seen.in_order);
}

TEST_F(CurlTransportTest, StreamingFollowsRedirectsWithoutAuthToOtherHosts) {
  auto other = mc::testing::StartPythonServer("http_test_server.py", {"--host", "127.0.0.2"});
  std::string target = "http://127.0.0.2:" + std::to_string(other->port()) + "/headers";
  HttpRequest r = Get(Url("/redirect?status=302&to=" + target));
  r.headers = {{"Authorization", "Bearer s3cret"}, {"Range", "bytes=5-"}};
  Streamed seen;
  auto resp = transport_->SendStreaming(r, seen.Handler());
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->effective_url, target);
  EXPECT_EQ(seen.on_response_calls, 1);
  auto headers = nlohmann::json::parse(seen.text);
  EXPECT_FALSE(headers.contains("authorization")) << headers.dump();
  EXPECT_EQ(headers["range"], "bytes=5-");
}

// The default SendStreaming (decorators, test fakes) reads Send's body.
TEST(TransportDefaultTest, SendStreamingReadsTheBodyOfSend) {
  class Canned final : public Transport {
   public:
    oci::Result<HttpResponse> Send(HttpRequest request) override {
      HttpResponse r;
      r.status = request.url == "/ok" ? 206 : 404;
      std::string body;
      for (uint64_t i = 0; i < 3'000'000; ++i) body.push_back(static_cast<char>(PatternByte(i)));
      r.body = std::make_unique<oci::StringReader>(std::move(body));
      return r;
    }
  } canned;
  Streamed seen;
  auto ok = canned.SendStreaming(Get("/ok"), seen.Handler());
  ASSERT_TRUE(ok);
  EXPECT_EQ(seen.status, 206);
  EXPECT_EQ(seen.bytes, 3'000'000u);
  EXPECT_TRUE(seen.in_order);
  EXPECT_EQ(ok->ReadBody().value(), "");
  Streamed none;
  auto missing = canned.SendStreaming(Get("/missing"), none.Handler());
  ASSERT_TRUE(missing);
  EXPECT_EQ(none.on_response_calls, 0);
  EXPECT_EQ(missing->ReadBody().value().size(), 3'000'000u);
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

// Upload chunks over TLS: libcurl's connection (its verification, our CA)
// carries the body written from our buffers.
TEST_F(CurlTlsTest, SendsUploadChunksDirectlyOverTls) {
  StartServer();
  std::string body(3'000'000, 'q');
  HttpRequest r;
  r.method = "PATCH";
  r.url = "https://127.0.0.1:" + std::to_string(server_->port()) + "/echo";
  r.body_parts = {oci::AsBytes(body)};
  TransportOptions opts;
  opts.system_cert_dirs = {};
  auto refused = NewCurlTransport(opts)->SendStreaming(r, Streamed().Handler());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, oci::ErrorCode::kNetwork) << refused.error().message;
  EXPECT_NE(refused.error().message.find("--cert-dir"), std::string::npos);

  opts.tls.cert_dir = (dir_ / "certs").string();
  auto t = NewCurlTransport(opts);
  for (int i = 0; i < 2; ++i) {
    Streamed seen;
    auto ok = t->SendStreaming(r, seen.Handler());
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->status, 200);
    auto j = nlohmann::json::parse(seen.text);
    EXPECT_EQ(j["length"], body.size());
    EXPECT_EQ(j["sha256"], oci::Digest::Of(body).hex());
  }
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
