// A scripted registry::Transport for unit tests: records every request and
// answers from a queue of canned responses, then from a handler function.
// A response may instead fail at the transport level (connection reset).
//
// Thread guarantee: safe for concurrent use (one mutex).
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "registry/transport.h"

namespace mc::testing {

struct RecordedRequest {
  std::string method;
  std::string url;
  registry::Headers headers;
  std::string body;  // in-memory body, or everything read from body_reader
  bool no_retry = false;
  bool idempotent = false;
  bool follow_redirects = true;
  // First header with this (case-insensitive) name.
  std::optional<std::string> Header(std::string_view name) const;
};

struct FakeResponse {
  int status = 200;
  registry::Headers headers;  // names as given; lookups are case-insensitive
  std::string body;
  // When set, Send fails with this error instead (after recording the request).
  std::optional<oci::Error> error;

  static FakeResponse Status(int status, registry::Headers headers = {}, std::string body = "") {
    return FakeResponse{status, std::move(headers), std::move(body), std::nullopt};
  }
  static FakeResponse Reset(std::string what = "connection reset by peer") {
    FakeResponse r;
    r.error = oci::Error{oci::ErrorCode::kTransient, std::move(what)};
    return r;
  }
};

class FakeTransport final : public registry::Transport {
 public:
  using Handler = std::function<FakeResponse(const RecordedRequest&)>;

  // Answers the next request (FIFO) before the handler is consulted.
  void Push(FakeResponse response);
  // Answers requests when the queue is empty (default: 500).
  void SetHandler(Handler handler);
  std::vector<RecordedRequest> requests() const;
  // Requests with this method (and URL containing `needle`).
  std::vector<RecordedRequest> Requests(const std::string& method,
                                        const std::string& needle = "") const;

  oci::Result<registry::HttpResponse> Send(registry::HttpRequest request) override;

 private:
  mutable std::mutex mu_;
  std::deque<FakeResponse> queue_;
  Handler handler_;
  std::vector<RecordedRequest> requests_;
};

}  // namespace mc::testing
