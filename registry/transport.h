// HTTP transport: the one seam between mc-engine and the network.
//
// Send() blocks until the response headers arrive; the body then streams
// through the returned Reader, so a multi-GiB blob never sits in memory.
// Decorators (retry, auth, logging) wrap a Transport and are Transports.
//
// Thread guarantee: Transport implementations are safe for concurrent use.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "oci/error.h"
#include "oci/io.h"

namespace mc::registry {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;
  // Body, either in memory (the caller keeps it alive until Send returns):
  // `body`, or — when body_parts is not empty — the parts sent back to back
  // (an upload chunk made of pooled buffers goes out without being gathered
  // into one block first) ...
  std::span<const std::byte> body;
  std::vector<std::span<const std::byte>> body_parts;
  // ... or streamed from a reader of body_length bytes (-1: chunked encoding).
  oci::Reader* body_reader = nullptr;
  int64_t body_length = -1;
  // Safe to send again after a failure (GET, HEAD, PUT of a whole manifest).
  bool idempotent = false;
  // Follow redirects (never carrying Authorization or other auth headers to
  // another host). Off for upload requests whose Location we read ourselves.
  bool follow_redirects = true;
  // Marks a request an outer layer retries itself: the retry decorator sends it once.
  bool no_retry = false;
  // In-memory bodies only: when set, the body goes out without a length
  // (chunked encoding on HTTP/1.1) and ends early, at the transport's next
  // read, once this returns true. SIGTERM then stops an upload chunk on a
  // slow link at once, and the registry keeps (and reports) what arrived.
  std::function<bool()> end_body_early;

  // The in-memory body as parts: body_parts, or {body}.
  std::vector<std::span<const std::byte>> BodyParts() const;
  // Bytes of the in-memory body (body or body_parts).
  uint64_t BodySize() const;
  // The in-memory body gathered (tests and small bodies).
  std::string BodyString() const;
};

struct HttpResponse {
  int status = 0;
  Headers headers;                    // names lower-cased, in arrival order
  std::string effective_url;          // after redirects
  std::unique_ptr<oci::Reader> body;  // never null; empty for HEAD

  // First header with this (case-insensitive) name.
  std::optional<std::string> Header(std::string_view name) const;
  // Reads the body (bounded); used for small JSON and error bodies.
  oci::Result<std::string> ReadBody(size_t limit = 4 << 20);
};

// Push-mode delivery of a large response body (SendStreaming).
struct BodyHandler {
  // Runs once, before any body byte, when the final response is 2xx (with
  // its status and headers; its body reader is not to be used).
  std::function<oci::Result<void>(const HttpResponse&)> on_response;
  // Receives the body in arrival order; the span is valid during the call.
  std::function<oci::Result<void>(std::span<const std::byte>)> on_body;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual oci::Result<HttpResponse> Send(HttpRequest request) = 0;

  // Like Send, but a 2xx response's body goes to `handler` on the calling
  // thread as it arrives, and the call returns when the body has ended (the
  // returned response's body is then empty). Any other response is returned
  // as Send returns it, body readable. An error from a handler aborts the
  // transfer and is returned; so is a broken connection after on_response
  // ran (the handler knows how much it got). Never retried once on_response
  // ran. The default reads Send's body; CurlTransport runs the transfer on
  // the calling thread and hands libcurl's own buffer to on_body (no copy,
  // no thread hand-off: what a multi-GiB download wants) and writes a large
  // in-memory request body to the socket from the caller's buffers.
  virtual oci::Result<HttpResponse> SendStreaming(HttpRequest request, const BodyHandler& handler);
};

struct TlsOptions {
  bool verify = true;
  // Directory with ca.crt / *.crt (extra CAs) and client.cert + client.key.
  std::string cert_dir;
};

struct TransportOptions {
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{30'000};
  // A transfer that moves no byte for this long fails (never a total timeout:
  // a registry may take minutes to verify a huge blob on its final PUT).
  std::chrono::milliseconds stall_timeout{120'000};
  int retry_times = 3;
  // Base delay of the retry backoff (--retry-delay): retry n waits up to
  // retry_delay·2^n, capped at max(30 s, retry_delay).
  std::chrono::milliseconds retry_delay{500};
  std::string user_agent = "mc-engine";
  // Verbose tracing of requests (headers redacted).
  bool trace = false;
  // Roots searched for HOST[:PORT]/ certificate directories when tls.cert_dir
  // is empty (containers-certs.d(5)); the first existing one is used.
  std::vector<std::string> system_cert_dirs = {"/etc/containers/certs.d", "/etc/docker/certs.d"};
  // Response bytes buffered per transfer before the transfer is paused.
  size_t response_buffer_bytes = 2 << 20;
  // Polled while transfers run (SIGINT/SIGTERM): once it returns true, a
  // transfer is aborted with kCancelled when it moves no byte for
  // cancel_grace — a stalled link, which otherwise only stall_timeout would
  // end; a slow but live link can pause for half a second and more between
  // window updates when the receiver's buffer is large — or is still running cancel_deadline after
  // the flag. A request whose whole body went out waits for its answer until the deadline: an
  // upload whose body ended early (HttpRequest::end_body_early) gets the
  // registry's Range even when a slow link or a buffering proxy still
  // carries the body.
  std::function<bool()> cancelled;
  std::chrono::milliseconds cancel_grace{2000};
  std::chrono::milliseconds cancel_deadline{10'000};
  // SendStreaming writes large in-memory request bodies (upload chunks)
  // straight from the caller's buffers instead of through libcurl's upload
  // buffer (one copy less per byte); off: libcurl sends them (tests compare).
  bool direct_send = true;
};

}  // namespace mc::registry
