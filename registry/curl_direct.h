// Internal to CurlTransport: large in-memory request bodies (upload chunks)
// written to the socket straight from the caller's buffers.
//
// Why: libcurl 7.88 has no zero-copy send. Its read callback copies every
// body byte into its upload buffer before the kernel copies it again, and in
// perf of `copy` that memcpy was 6–7% of all samples, the largest user-space
// copy left (issue 11). Here libcurl still opens the connection
// (CURLOPT_CONNECT_ONLY: name resolution, TCP, TLS with our certificates and
// verification, the connect timeout), and the HTTP/1.1 exchange is ours:
// the request head, then the body parts handed to curl_easy_send as they
// are (plain TCP: send(2) from the pooled buffers; TLS: encrypted from them),
// then the response read with curl_easy_recv.
//
// The rules are the libcurl path's: no byte moved for stall_timeout fails
// the request; TransportOptions::cancelled ends a stalled request after
// cancel_grace and any request at cancel_deadline (kCancelled); with
// HttpRequest::end_body_early the body goes out in chunked encoding and ends
// at the next chunk once that says so. A registry that answers before the
// body is complete (401, 413) is heard at once: the rest is not sent. An idle
// connection is kept for the next request to the same host and dropped when
// the server closed it or answered with `Connection: close`.
//
// Not for proxies: when the environment names one (http_proxy, https_proxy,
// all_proxy), Wants() says no and libcurl's own path carries the request.
//
// Thread guarantee: safe for concurrent use; each exchange uses its own
// connection.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "oci/error.h"
#include "registry/http_util.h"
#include "registry/transport.h"

namespace mc::registry::internal {

class DirectSender {
 public:
  // Sets a connection's TLS options for its host (CA bundle, client
  // certificate); called for https only.
  using TlsSetup = std::function<oci::Result<void>(CURL*, const UrlParts&)>;
  // Bodies smaller than this take libcurl's path: the copy costs nothing there.
  static constexpr uint64_t kMinBody = 1 << 20;

  DirectSender(const TransportOptions& options, TlsSetup tls);
  ~DirectSender();
  DirectSender(const DirectSender&) = delete;
  DirectSender& operator=(const DirectSender&) = delete;

  // True for a PUT/PATCH/POST with an in-memory body of at least kMinBody
  // bytes, when no proxy is configured.
  bool Wants(const HttpRequest& r) const;
  // One request and its response (SendStreaming's contract: a 2xx body goes
  // to `handler`, any other response comes back with its body readable).
  // `what` names the request in errors ("PATCH https://host/…", redacted).
  oci::Result<HttpResponse> Exchange(const HttpRequest& r, const UrlParts& parts,
                                     const BodyHandler& handler, const std::string& what);

  // Connections opened so far (tests: reuse).
  int connections_opened() const { return opened_.load(); }

 private:
  struct Conn;
  struct ConnDeleter {
    void operator()(Conn* c) const;
  };
  using ConnPtr = std::unique_ptr<Conn, ConnDeleter>;

  oci::Result<ConnPtr> Connect(const UrlParts& parts, const std::string& what);
  ConnPtr TakeIdle(const std::string& key);
  void ReturnIdle(ConnPtr c);

  const TransportOptions& options_;
  TlsSetup tls_;
  bool proxy_in_env_ = false;
  std::atomic<int> opened_{0};
  std::mutex mu_;
  std::vector<ConnPtr> idle_;  // guarded by mu_
};

}  // namespace mc::registry::internal
