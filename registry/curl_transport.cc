// CurlTransport: request policy on top of the curl worker.
//
// Redirects are followed here, not by libcurl (CURLOPT_FOLLOWLOCATION off),
// because the rules are ours: registries redirect blob GETs to signed storage
// URLs (protocols.md 1.2), and S3 rejects a presigned URL that also carries an
// Authorization header, so on any host change we drop every auth header but
// keep Range (protocols.md "Pitfalls – distribution API"). Like ggcr's
// nextLocation we refuse a redirect that moves to an internal address on
// another host (a registry must not make us probe the cluster network);
// loopback→loopback is allowed so that tests can use 127.0.0.1 and 127.0.0.2.
//
// No total timeout: the final PUT of a multi-GiB blob may take minutes while
// the registry hashes it. Instead a transfer that moves no byte for
// stall_timeout fails (CURLOPT_LOW_SPEED_LIMIT=1 byte/s over LOW_SPEED_TIME).
// `Expect:` is sent empty: libcurl would otherwise wait up to 1 s for a
// 100-continue on every large PUT/PATCH (protocols.md 1.9 step 7).
//
// SendStreaming does not use the worker: the calling thread performs the
// transfer on an easy handle from a pool (which keeps its connections for the
// next call) and the write callback hands libcurl's receive buffer straight to
// the caller's handler. For a parallel download that removes two copies of
// every byte and a thread wake-up per buffer, and spreads the receive work
// over the downloading threads instead of one worker.
//
// Upload chunks sent with SendStreaming skip libcurl's request machinery:
// DirectSender (curl_direct.h) writes them from the caller's buffers on a
// connection libcurl opened, saving libcurl's copy of every body byte.
//
// TLS: extra CAs from the certs.d directory are appended to the system bundle
// and passed as CURLOPT_CAINFO_BLOB, so a private CA adds to, never replaces,
// the public roots (containers-certs.d(5) semantics).
#include "registry/curl_transport.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "registry/curl_direct.h"
#include "registry/curl_memory.h"
#include "registry/curl_worker.h"
#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry {
namespace {

using internal::Transfer;
using internal::Worker;
namespace fs = std::filesystem;

constexpr int kMaxRedirects = 10;
constexpr size_t kUploadChunk = 256 << 10;

struct TlsFiles {
  std::string ca_blob;  // system bundle + extra CAs; empty: curl's default
  std::string client_cert, client_key;
};

std::string SystemCaBundle() {
  std::string path = "/etc/ssl/certs/ca-certificates.crt";
  if (CURL* e = curl_easy_init()) {
    char* p = nullptr;
    if (curl_easy_getinfo(e, CURLINFO_CAINFO, &p) == CURLE_OK && p && *p) path = p;
    curl_easy_cleanup(e);
  }
  auto s = oci::ReadFileToString(path);
  return s ? *s : std::string();
}

// Reads ca.crt/*.crt and a *.cert/*.key pair from one certs.d directory.
oci::Result<TlsFiles> LoadCertDir(const fs::path& dir) {
  TlsFiles out;
  std::vector<fs::path> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  std::sort(entries.begin(), entries.end());
  std::string extra;
  for (const auto& p : entries) {
    if (p.extension() == ".crt") {
      MC_ASSIGN_OR_RETURN(std::string pem, oci::ReadFileToString(p, 1 << 20));
      extra += pem + "\n";
    } else if (p.extension() == ".cert" && out.client_cert.empty()) {
      fs::path key = p;
      key.replace_extension(".key");
      if (!fs::exists(key)) {
        return oci::Fail(oci::ErrorCode::kInvalidInput, "client certificate " + p.string() +
                                                            " has no matching key " + key.string());
      }
      out.client_cert = p.string();
      out.client_key = key.string();
    }
  }
  if (!extra.empty()) out.ca_blob = SystemCaBundle() + "\n" + extra;
  return out;
}

std::string Describe(const HttpRequest& r, const std::string& url) {
  return r.method + " " + RedactUrl(url);
}

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(TransportOptions options)
      : options_(std::move(options)),
        worker_(std::make_shared<Worker>()),
        direct_(options_,
                [this](CURL* e, const UrlParts& parts) { return ConfigureTls(e, parts); }) {}
  ~CurlTransport() override {
    for (CURL* e : idle_easy_) curl_easy_cleanup(e);
  }

  oci::Result<HttpResponse> Send(HttpRequest request) override {
    return FollowRedirects(std::move(request), nullptr);
  }
  oci::Result<HttpResponse> SendStreaming(HttpRequest request,
                                          const BodyHandler& handler) override {
    // A streamed request body is fed by the caller's thread: not this path.
    if (request.body_reader) return Transport::SendStreaming(std::move(request), handler);
    return FollowRedirects(std::move(request), &handler);
  }

 private:
  // Send's redirect policy; each hop goes to the worker (handler null) or is
  // performed on this thread (PerformHere).
  oci::Result<HttpResponse> FollowRedirects(HttpRequest request, const BodyHandler* handler);
  oci::Result<HttpResponse> SendOnce(const HttpRequest& r, const UrlParts& parts);
  oci::Result<HttpResponse> PerformHere(const HttpRequest& r, const UrlParts& parts,
                                        const BodyHandler& handler);
  // Easy handles for PerformHere, kept with their open connections.
  CURL* TakeEasy();
  void ReturnEasy(CURL* e);
  oci::Result<void> CheckScheme(const UrlParts& parts, const std::string& url) const;
  oci::Result<const TlsFiles*> TlsFor(const UrlParts& parts);
  oci::Result<void> Configure(Transfer& t, const HttpRequest& r, const UrlParts& parts);
  oci::Result<void> ConfigureTls(CURL* e, const UrlParts& parts);
  void ConfigureMethod(Transfer& t, const HttpRequest& r);
  oci::Result<void> AwaitHeaders(const std::shared_ptr<Transfer>& tp, const HttpRequest& r);
  void Trace(const HttpRequest& r, const HttpResponse& resp) const;

  const TransportOptions options_;
  std::shared_ptr<Worker> worker_;
  internal::DirectSender direct_;  // large in-memory bodies, without libcurl's copy
  std::mutex tls_mu_;
  std::map<std::string, TlsFiles> tls_cache_;  // by HOST[:PORT]; guarded by tls_mu_
  std::mutex easy_mu_;
  std::vector<CURL*> idle_easy_;  // guarded by easy_mu_
};

oci::Result<void> CurlTransport::CheckScheme(const UrlParts& parts, const std::string& url) const {
  if (parts.scheme == "https" || !options_.tls.verify || IsLoopbackHost(parts.host)) return {};
  return oci::Fail(oci::ErrorCode::kInvalidInput,
                   "refusing plain HTTP to " + parts.HostPort() + " (" + RedactUrl(url) +
                       ") while TLS verification is on; use --tls-verify=false for an "
                       "insecure registry");
}

oci::Result<const TlsFiles*> CurlTransport::TlsFor(const UrlParts& parts) {
  std::string key = parts.HostPort();
  std::lock_guard lock(tls_mu_);
  if (auto it = tls_cache_.find(key); it != tls_cache_.end()) return &it->second;
  TlsFiles files;
  std::error_code ec;
  if (!options_.tls.cert_dir.empty()) {
    if (!fs::is_directory(options_.tls.cert_dir, ec)) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--cert-dir " + options_.tls.cert_dir + " is not a directory");
    }
    MC_ASSIGN_OR_RETURN(files, LoadCertDir(options_.tls.cert_dir));
  } else {
    for (const auto& root : options_.system_cert_dirs) {
      fs::path dir = fs::path(root) / key;
      if (!fs::is_directory(dir, ec)) continue;
      MC_ASSIGN_OR_RETURN(files, LoadCertDir(dir));
      Log()->debug("using certificates from {} for {}", dir.string(), key);
      break;
    }
  }
  return &tls_cache_.emplace(key, std::move(files)).first->second;
}

oci::Result<void> CurlTransport::ConfigureTls(CURL* e, const UrlParts& parts) {
  MC_ASSIGN_OR_RETURN(const TlsFiles* tls, TlsFor(parts));
  if (!tls->ca_blob.empty() && options_.tls.verify) {
    curl_blob blob{const_cast<char*>(tls->ca_blob.data()), tls->ca_blob.size(), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (!tls->client_cert.empty()) {
    curl_easy_setopt(e, CURLOPT_SSLCERT, tls->client_cert.c_str());
    curl_easy_setopt(e, CURLOPT_SSLKEY, tls->client_key.c_str());
  }
  return {};
}

// Method and request body: every body goes through the read callback
// (CURLOPT_UPLOAD), with CUSTOMREQUEST naming the method; PUT/POST/PATCH
// without a body still send "Content-Length: 0" (distribution wants it).
void CurlTransport::ConfigureMethod(Transfer& t, const HttpRequest& r) {
  CURL* e = t.easy;
  const uint64_t body_size = r.BodySize();
  bool has_body = r.body_reader != nullptr || body_size > 0 || r.method == "PUT" ||
                  r.method == "POST" || r.method == "PATCH";
  if (r.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, internal::OnRead);
    curl_easy_setopt(e, CURLOPT_READDATA, &t);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, internal::OnSeek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, &t);
    curl_off_t len = r.body_reader ? r.body_length : static_cast<curl_off_t>(body_size);
    if (!r.body_reader && r.end_body_early && body_size > 0) {
      len = -1;  // no Content-Length: the body may end early
      t.end_early = r.end_body_early;
    }
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, len);
    if (!r.body_reader) t.body = r.BodyParts();
    t.body_size = body_size;
    t.streamed_body = r.body_reader != nullptr;
  }
  if (r.method != "GET" && r.method != "HEAD") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
}

oci::Result<void> CurlTransport::Configure(Transfer& t, const HttpRequest& r,
                                           const UrlParts& parts) {
  CURL* e = t.easy;
  curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  // A proxy's "200 Connection established" must not look like our response
  // (proxies come from the usual https_proxy/no_proxy environment).
  curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  long stall_s = std::max<long>(1, static_cast<long>(options_.stall_timeout.count() / 1000));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall_s);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  // Bigger than the 16 KiB / 64 KiB defaults: fewer callbacks, locks and
  // wake-ups per GiB (measured on loopback downloads and pushes).
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 512L << 10);
  curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
  curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, internal::OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, internal::OnWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  if (options_.cancelled) {
    t.stop_requested = options_.cancelled;
    t.cancel_grace = options_.cancel_grace;
    t.cancel_deadline = options_.cancel_deadline;
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, internal::OnProgress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);
  }
  if (!options_.tls.verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (parts.scheme == "https") MC_RETURN_IF_ERROR(ConfigureTls(e, parts));
  for (const auto& [k, v] : r.headers) {
    std::string line = v.empty() ? k + ";" : k + ": " + v;
    t.header_list = curl_slist_append(t.header_list, line.c_str());
  }
  t.header_list = curl_slist_append(t.header_list, "Expect:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list);

  ConfigureMethod(t, r);
  return {};
}

// Blocks until the final headers arrive or the transfer ends, feeding a
// streamed request body from this (the caller's) thread meanwhile.
oci::Result<void> CurlTransport::AwaitHeaders(const std::shared_ptr<Transfer>& tp,
                                              const HttpRequest& r) {
  Transfer& t = *tp;
  std::vector<std::byte> chunk(t.streamed_body ? kUploadChunk : 0);
  std::unique_lock lock(t.mu);
  bool feeding = t.streamed_body;
  while (!t.headers_done && !t.finished) {
    if (feeding && t.upload.size() - t.upload_head < kUploadChunk) {
      lock.unlock();
      auto n = r.body_reader->Read(chunk);
      lock.lock();
      if (!n) {
        t.upload_error = n.error();
      } else if (*n == 0) {
        t.upload_eof = true;
      } else {
        t.upload.append(reinterpret_cast<const char*>(chunk.data()), *n);
      }
      feeding = n && *n > 0;
      if (t.send_paused) {
        t.send_paused = false;
        lock.unlock();
        worker_->Unpause(tp);
        lock.lock();
      }
      continue;
    }
    t.cv.wait(lock);
  }
  if (t.streamed_body && !t.upload_eof) t.upload_abandoned = true;  // answered early
  if (t.upload_error) return std::unexpected(*t.upload_error);
  return {};
}

void CurlTransport::Trace(const HttpRequest& r, const HttpResponse& resp) const {
  auto log = Log();
  log->debug("HTTP {} {} -> {}", r.method, RedactUrl(r.url), resp.status);
  if (!options_.trace) return;
  for (const auto& [k, v] : r.headers) log->debug("  > {}: {}", k, RedactHeaderValue(k, v));
  for (const auto& [k, v] : resp.headers) log->debug("  < {}: {}", k, RedactHeaderValue(k, v));
}

oci::Result<HttpResponse> CurlTransport::SendOnce(const HttpRequest& r, const UrlParts& parts) {
  auto t = std::make_shared<Transfer>();
  t->buffer_cap = std::max<size_t>(options_.response_buffer_bytes, 16 << 10);
  t->easy = curl_easy_init();
  if (!t->easy) return oci::Fail(oci::ErrorCode::kInternal, "curl_easy_init failed");
  MC_RETURN_IF_ERROR(Configure(*t, r, parts));
  worker_->Submit(t);
  auto fed = AwaitHeaders(t, r);
  std::string what = Describe(r, r.url);
  HttpResponse resp;
  {
    std::lock_guard lock(t->mu);
    if (!t->headers_done) {
      if (!fed) return std::unexpected(fed.error().Wrap(what + ": reading the request body"));
      return std::unexpected(internal::TransferError(*t, t->result, t->error_detail, what));
    }
    resp.status = t->status;
    resp.headers = t->headers;
  }
  if (t->upload_abandoned) worker_->Unpause(t);  // let the read callback abort the upload
  resp.effective_url = r.url;
  resp.body = std::make_unique<internal::BodyReader>(worker_, t, what);
  Trace(r, resp);
  return resp;
}

CURL* CurlTransport::TakeEasy() {
  {
    std::lock_guard lock(easy_mu_);
    if (!idle_easy_.empty()) {
      CURL* e = idle_easy_.back();
      idle_easy_.pop_back();
      return e;
    }
  }
  return curl_easy_init();
}

void CurlTransport::ReturnEasy(CURL* e) {
  curl_easy_reset(e);  // drops our options (and pointers); keeps live connections
  std::lock_guard lock(easy_mu_);
  if (idle_easy_.size() < 64) {
    idle_easy_.push_back(e);
    return;
  }
  curl_easy_cleanup(e);
}

// State of one PerformHere transfer, for its write callback.
struct DirectTransfer {
  Transfer* t = nullptr;
  const BodyHandler* handler = nullptr;
  bool decided = false;  // the final status was looked at
  bool deliver = false;  // 2xx: the body goes to the handler
  uint64_t delivered = 0;
  std::string small_body;  // any other response's body (bounded)
  std::optional<oci::Error> error;

  // Calls on_response once the final 2xx status is known.
  bool Decide() {
    decided = true;
    HttpResponse view;
    {
      std::lock_guard lock(t->mu);
      view.status = t->status;
      view.headers = t->headers;
    }
    if (view.status < 200 || view.status > 299) return true;
    deliver = true;
    if (!handler->on_response) return true;
    auto status = handler->on_response(view);
    if (!status) error = status.error();
    return status.has_value();
  }
};

constexpr size_t kSmallBodyLimit = 64 << 10;

size_t OnWriteDirect(char* data, size_t size, size_t n, void* userdata) {
  auto* d = static_cast<DirectTransfer*>(userdata);
  size_t len = size * n;
  if (!d->decided && !d->Decide()) return 0;  // aborts: CURLE_WRITE_ERROR
  if (!d->deliver) {
    d->small_body.append(
        data, std::min(len, kSmallBodyLimit - std::min(kSmallBodyLimit, d->small_body.size())));
    return len;
  }
  // The handler is the caller's code, called from inside libcurl: nothing may
  // unwind through libcurl's C frames.
  oci::Result<void> status;
  try {
    status = d->handler->on_body(std::span(reinterpret_cast<const std::byte*>(data), len));
  } catch (const std::exception& e) {
    status = oci::Fail(oci::ErrorCode::kInternal, std::string("internal error: ") + e.what());
  }
  if (!status) {
    d->error = status.error();
    return 0;
  }
  d->delivered += len;
  return len;
}

// One hop, performed by this thread on a pooled easy handle: the body of a
// 2xx reply reaches the handler straight from libcurl's receive buffer.
oci::Result<HttpResponse> CurlTransport::PerformHere(const HttpRequest& r, const UrlParts& parts,
                                                     const BodyHandler& handler) {
  if (options_.direct_send && direct_.Wants(r)) {
    auto resp = direct_.Exchange(r, parts, handler, Describe(r, r.url));
    if (resp) Trace(r, *resp);
    return resp;
  }
  Transfer t;
  t.easy = TakeEasy();
  if (!t.easy) return oci::Fail(oci::ErrorCode::kInternal, "curl_easy_init failed");
  CURL* e = t.easy;
  struct Release {
    CurlTransport* self;
    Transfer& t;
    ~Release() {
      self->ReturnEasy(t.easy);
      t.easy = nullptr;
    }
  } release{this, t};
  MC_RETURN_IF_ERROR(Configure(t, r, parts));
  DirectTransfer d;
  d.t = &t;
  d.handler = &handler;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnWriteDirect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &d);
  CURLcode rc = curl_easy_perform(e);
  std::string what = Describe(r, r.url);
  if (d.error) return std::unexpected(*d.error);
  HttpResponse resp;
  {
    std::lock_guard lock(t.mu);
    if (!t.headers_done) {
      return std::unexpected(internal::TransferError(t, rc, t.errbuf, what));
    }
    resp.status = t.status;
    resp.headers = t.headers;
  }
  if (!d.decided && !d.Decide()) return std::unexpected(*d.error);  // empty body
  if (rc != CURLE_OK && d.deliver) {
    return std::unexpected(internal::TransferError(
        t, rc, t.errbuf, what + " (after " + std::to_string(d.delivered) + " body bytes)"));
  }
  resp.effective_url = r.url;
  resp.body = std::make_unique<oci::StringReader>(std::move(d.small_body));
  Trace(r, resp);
  return resp;
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

oci::Result<HttpResponse> CurlTransport::FollowRedirects(HttpRequest request,
                                                         const BodyHandler* handler) {
  std::string original = request.url;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    MC_ASSIGN_OR_RETURN(UrlParts parts, ParseUrl(request.url));
    MC_RETURN_IF_ERROR(CheckScheme(parts, request.url));
    MC_ASSIGN_OR_RETURN(HttpResponse resp,
                        handler ? PerformHere(request, parts, *handler) : SendOnce(request, parts));
    auto location = resp.Header("location");
    if (!request.follow_redirects || !IsRedirect(resp.status) || !location) return resp;
    bool keep_method =
        resp.status == 307 || resp.status == 308 ||
        (resp.status != 303 && (request.method == "GET" || request.method == "HEAD"));
    if (keep_method && request.body_reader) return resp;  // a streamed body cannot be resent
    MC_ASSIGN_OR_RETURN(std::string next, ResolveUrl(request.url, *location));
    MC_ASSIGN_OR_RETURN(UrlParts next_parts, ParseUrl(next));
    if (IsUnsafeHostChange(parts, next_parts)) {
      return oci::Fail(oci::ErrorCode::kNetwork, Describe(request, request.url) +
                                                     ": refusing redirect to internal address " +
                                                     next_parts.HostPort());
    }
    if (next_parts.HostPort() != parts.HostPort() || next_parts.scheme != parts.scheme) {
      std::erase_if(request.headers, [](const auto& h) { return IsAuthHeader(h.first); });
    }
    if (!keep_method) {  // 303, and 301/302 after a POST: the next request is a GET
      request.method = request.method == "HEAD" ? "HEAD" : "GET";
      request.body = {};
      request.body_parts.clear();
      request.body_reader = nullptr;
      std::erase_if(request.headers, [](const auto& h) {
        return EqualsIgnoreCase(h.first, "content-type") ||
               EqualsIgnoreCase(h.first, "content-length");
      });
    }
    (void)resp.ReadBody(64 << 10);  // drain a small body so the connection can be reused
    Log()->debug("redirect {} -> {}", RedactUrl(request.url), RedactUrl(next));
    request.url = std::move(next);
  }
  return oci::Fail(oci::ErrorCode::kNetwork, "more than " + std::to_string(kMaxRedirects) +
                                                 " redirects from " + RedactUrl(original));
}

}  // namespace

std::shared_ptr<Transport> NewCurlTransport(const TransportOptions& options) {
  internal::InitCurl();  // the process's first libcurl call
  return std::make_shared<CurlTransport>(options);
}

}  // namespace mc::registry
