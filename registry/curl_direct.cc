#include "registry/curl_direct.h"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>

#include "registry/curl_worker.h"

namespace mc::registry::internal {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Chunk size of a body sent in chunked encoding (end_body_early): what
// libcurl framed (its 2 MiB upload buffer), so SIGTERM ends a body as soon
// on a slow link as before, and the framing costs nothing.
constexpr size_t kFrame = 2 << 20;
constexpr size_t kRecvBlock = 16 << 10;
constexpr size_t kMaxHead = 256 << 10;
constexpr size_t kSmallBodyLimit = 64 << 10;
constexpr size_t kMaxIdle = 8;

bool ProxyInEnvironment() {
  // The variables libcurl reads (HTTP_PROXY upper case it ignores, for CGI safety).
  for (const char* name : {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
    const char* v = std::getenv(name);
    if (v && *v) return true;
  }
  return false;
}

// "path?query" of an absolute URL ("/" when it has none).
std::string RequestTarget(const std::string& url) {
  size_t scheme = url.find("://");
  size_t start = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (start == std::string::npos) return "/";
  std::string target = url.substr(start);
  if (size_t hash = target.find('#'); hash != std::string::npos) target.resize(hash);
  return target;
}

// The Host header as libcurl writes it: the port only when not the scheme's default.
std::string HostHeader(UrlParts parts) {
  if ((parts.scheme == "https" && parts.port == "443") ||
      (parts.scheme == "http" && parts.port == "80")) {
    parts.port.clear();
  }
  return parts.HostPort();
}

std::string ConnKey(const UrlParts& parts) { return parts.scheme + "://" + parts.HostPort(); }

bool HasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (EqualsIgnoreCase(TrimWhitespace(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

struct DirectSender::Conn {
  CURL* easy = nullptr;
  curl_socket_t fd = CURL_SOCKET_BAD;
  std::string key;
  char errbuf[CURL_ERROR_SIZE] = {};
};

void DirectSender::ConnDeleter::operator()(Conn* c) const {
  if (c->easy) curl_easy_cleanup(c->easy);
  delete c;
}

DirectSender::DirectSender(const TransportOptions& options, TlsSetup tls)
    : options_(options), tls_(std::move(tls)), proxy_in_env_(ProxyInEnvironment()) {}

DirectSender::~DirectSender() = default;

bool DirectSender::Wants(const HttpRequest& r) const {
  if (proxy_in_env_ || r.body_reader) return false;
  if (r.method != "PUT" && r.method != "PATCH" && r.method != "POST") return false;
  return r.BodySize() >= kMinBody;
}

oci::Result<DirectSender::ConnPtr> DirectSender::Connect(const UrlParts& parts,
                                                         const std::string& what) {
  ConnPtr c(new Conn);
  c->key = ConnKey(parts);
  c->easy = curl_easy_init();
  if (!c->easy) return oci::Fail(oci::ErrorCode::kInternal, "curl_easy_init failed");
  CURL* e = c->easy;
  std::string url = c->key + "/";
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
  // We speak HTTP/1.1 on it: ALPN must not pick h2.
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(e, CURLOPT_SSL_ENABLE_ALPN, 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  if (!options_.tls.verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (parts.scheme == "https") MC_RETURN_IF_ERROR(tls_(e, parts));
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) return std::unexpected(TransferError(rc, c->errbuf, what));
  curl_socket_t fd = CURL_SOCKET_BAD;
  if (curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) {
    return std::unexpected(TransferError(CURLE_COULDNT_CONNECT, "no socket", what));
  }
  c->fd = fd;
  opened_++;
  return c;
}

DirectSender::ConnPtr DirectSender::TakeIdle(const std::string& key) {
  std::lock_guard lock(mu_);
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    if ((*it)->key != key) continue;
    ConnPtr c = std::move(*it);
    idle_.erase(it);
    // An idle connection has nothing to say: readable means the server
    // closed it (or broke the protocol); either way it is not reused.
    pollfd p{c->fd, POLLIN, 0};
    if (poll(&p, 1, 0) != 0) return nullptr;
    return c;
  }
  return nullptr;
}

void DirectSender::ReturnIdle(ConnPtr c) {
  std::lock_guard lock(mu_);
  if (idle_.size() >= kMaxIdle) idle_.erase(idle_.begin());
  idle_.push_back(std::move(c));
}

namespace {

// One request/response on a connection: the socket loop with the stall,
// cancel and early-answer rules (see the header).
class Exchanger {
 public:
  Exchanger(CURL* easy, curl_socket_t fd, bool plain, const TransportOptions& o,
            const std::string& what)
      : easy_(easy), fd_(fd), plain_(plain), o_(o), what_(what), moved_at_(Clock::now()) {}

  // Sends all of `data`; false when the server started answering first.
  // `more`: more bytes follow at once (plain TCP holds a small piece back to
  // go out with them, MSG_MORE, instead of in a segment of its own).
  oci::Result<bool> Send(std::span<const std::byte> data, bool more = false) {
    while (!data.empty()) {
      size_t n = 0;
      CURLcode rc = CURLE_OK;
      if (plain_) {
        // libcurl's plain-socket send is send(2); with a flag it is ours.
        ssize_t k = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (k >= 0) {
          n = static_cast<size_t>(k);
        } else if (errno == EINTR) {
          continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
          rc = CURLE_AGAIN;
        } else {
          return std::unexpected(Error(CURLE_SEND_ERROR, std::strerror(errno)));
        }
      } else {
        rc = curl_easy_send(easy_, data.data(), data.size(), &n);
      }
      if (rc == CURLE_OK) {
        data = data.subspan(n);
        Moved();
        continue;
      }
      if (rc != CURLE_AGAIN) return std::unexpected(Error(rc, "sending the request"));
      MC_ASSIGN_OR_RETURN(short ev, Wait(POLLOUT | POLLIN));
      if (ev & (POLLIN | POLLHUP | POLLERR)) {
        MC_ASSIGN_OR_RETURN(long got, RecvSome());
        if (got > 0) return false;  // an early answer: stop sending
        if (got == 0) {
          return std::unexpected(
              Error(CURLE_SEND_ERROR, "the server closed the connection during the request"));
        }
      }
    }
    return true;
  }
  oci::Result<bool> Send(std::string_view s, bool more = false) {
    return Send(std::span(reinterpret_cast<const std::byte*>(s.data()), s.size()), more);
  }

  void BodySent() { body_sent_ = true; }

  // After a failed send: whether a whole response head already arrived (a
  // server that answered and closed; its answer is still readable).
  bool AnswerArrived() {
    for (;;) {
      auto got = RecvSome();
      if (!got || *got <= 0) break;
    }
    return in_.find("\r\n\r\n", pos_) != std::string::npos;
  }

  // Reads until `in_` holds at least `want` bytes; false at end of stream.
  oci::Result<bool> Fill(size_t want) {
    while (in_.size() - pos_ < want) {
      MC_ASSIGN_OR_RETURN(long got, RecvSome());
      if (got == 0) return false;
      if (got < 0) MC_RETURN_IF_ERROR(Wait(POLLIN));
    }
    return true;
  }

  // Position of "\r\n" at or after pos_, reading more as needed; nullopt at
  // end of stream or past `limit` bytes.
  oci::Result<std::optional<size_t>> Line(size_t limit) {
    size_t from = pos_;
    for (;;) {
      size_t eol = in_.find("\r\n", from);
      if (eol != std::string::npos) return eol;
      if (in_.size() - pos_ > limit) return std::nullopt;
      from = std::max(in_.size(), pos_ + 1) - 1;
      MC_ASSIGN_OR_RETURN(bool more, Fill(in_.size() - pos_ + 1));
      if (!more) return std::nullopt;
    }
  }

  std::string in_;  // received bytes; [pos_, size) not yet consumed
  size_t pos_ = 0;

  void Consume(size_t n) {
    pos_ += n;
    if (pos_ > (1 << 20) && pos_ * 2 > in_.size()) {
      in_.erase(0, pos_);
      pos_ = 0;
    }
  }

  oci::Error Error(CURLcode code, std::string detail) const {
    return TransferError(code, detail, what_);
  }

 private:
  void Moved() { moved_at_ = Clock::now(); }

  // >0 bytes appended to in_, 0 end of stream, -1 nothing yet.
  oci::Result<long> RecvSome() {
    char block[kRecvBlock];
    size_t n = 0;
    CURLcode rc = curl_easy_recv(easy_, block, sizeof block, &n);
    if (rc == CURLE_AGAIN) return -1;
    if (rc != CURLE_OK) return std::unexpected(Error(rc, "reading the response"));
    if (n > 0) {
      in_.append(block, n);
      Moved();
    }
    return static_cast<long>(n);
  }

  // Waits for `events`, applying the stall and cancel rules.
  oci::Result<short> Wait(short events) {
    for (;;) {
      auto now = Clock::now();
      // Bytes leaving the socket's send queue move too: on a slow link the
      // kernel may not take more for seconds (it wakes a writer only when a
      // third of the buffer is free) while the peer keeps reading.
      int queued = 0;
      if (ioctl(fd_, SIOCOUTQ, &queued) == 0) {
        if (queued < queued_) moved_at_ = now;
        queued_ = queued;
      }
      if (o_.cancelled && o_.cancelled()) {
        if (!cancel_seen_) cancel_seen_ = now;
        // A request whose body went out awaits its answer until the deadline;
        // one that moves nothing ends after the grace.
        bool stalled = !body_sent_ && now - std::max(moved_at_, *cancel_seen_) >= o_.cancel_grace;
        if (stalled || now - *cancel_seen_ >= o_.cancel_deadline) {
          return std::unexpected(
              oci::Error{oci::ErrorCode::kCancelled, what_ + ": interrupted", 0, std::nullopt});
        }
      }
      if (now - moved_at_ >= o_.stall_timeout) {
        return std::unexpected(
            Error(CURLE_OPERATION_TIMEDOUT,
                  "no data moved for " + std::to_string(o_.stall_timeout.count() / 1000) + " s"));
      }
      auto slice = std::chrono::duration_cast<milliseconds>(o_.stall_timeout - (now - moved_at_));
      slice = std::min(slice, milliseconds(o_.cancelled ? 100 : 1000));
      pollfd p{fd_, events, 0};
      int r = poll(&p, 1, static_cast<int>(std::max<int64_t>(1, slice.count())));
      if (r < 0 && errno != EINTR) {
        return std::unexpected(Error(CURLE_RECV_ERROR, std::strerror(errno)));
      }
      if (r > 0) return p.revents;
    }
  }

  CURL* easy_;
  curl_socket_t fd_;
  bool plain_;  // plain TCP (no TLS): send(2) on the socket
  const TransportOptions& o_;
  const std::string& what_;
  Clock::time_point moved_at_;
  std::optional<Clock::time_point> cancel_seen_;
  int queued_ = 0;  // the send queue when last looked at (SIOCOUTQ)
  bool body_sent_ = false;
};

std::string RequestHead(const HttpRequest& r, const UrlParts& parts, const TransportOptions& o,
                        bool chunked, uint64_t size) {
  std::string head = r.method + " " + RequestTarget(r.url) + " HTTP/1.1\r\n";
  head += "Host: " + HostHeader(parts) + "\r\n";
  head += "User-Agent: " + o.user_agent + "\r\n";
  head += "Accept: */*\r\n";
  for (const auto& [k, v] : r.headers) {
    if (EqualsIgnoreCase(k, "host") || EqualsIgnoreCase(k, "content-length") ||
        EqualsIgnoreCase(k, "transfer-encoding") || EqualsIgnoreCase(k, "expect")) {
      continue;
    }
    head += k + ": " + v + "\r\n";
  }
  head += chunked ? std::string("Transfer-Encoding: chunked\r\n")
                  : "Content-Length: " + std::to_string(size) + "\r\n";
  head += "\r\n";
  return head;
}

// Sends the body; false when the server answered before it was complete.
oci::Result<bool> SendBody(Exchanger& x, const HttpRequest& r, bool chunked) {
  auto parts = r.BodyParts();
  if (!chunked) {
    for (auto part : parts) {
      MC_ASSIGN_OR_RETURN(bool all, x.Send(part));
      if (!all) return false;
    }
    return true;
  }
  // Chunked: frames of up to kFrame bytes across the parts; each frame's
  // "\r\n" and the next size line go out together, ahead of its bytes.
  std::string frame_end;
  size_t index = 0, offset = 0;  // the next byte: parts[index][offset]
  std::vector<std::span<const std::byte>> frame;
  for (;;) {
    while (index < parts.size() && offset == parts[index].size()) {
      ++index;
      offset = 0;
    }
    if (index == parts.size()) break;
    if (r.end_body_early && r.end_body_early()) break;  // SIGTERM: the registry keeps what arrived
    frame.clear();
    size_t frame_size = 0;
    while (index < parts.size() && frame_size < kFrame) {
      auto piece = parts[index].subspan(offset);
      piece = piece.first(std::min(piece.size(), kFrame - frame_size));
      if (!piece.empty()) frame.push_back(piece);
      frame_size += piece.size();
      offset += piece.size();
      if (offset == parts[index].size()) {
        ++index;
        offset = 0;
      }
    }
    char size_line[32];
    auto [p, ec] = std::to_chars(size_line, size_line + sizeof size_line, frame_size, 16);
    (void)ec;
    MC_ASSIGN_OR_RETURN(bool a, x.Send(frame_end + std::string(size_line, p) + "\r\n", true));
    if (!a) return false;
    for (auto piece : frame) {
      MC_ASSIGN_OR_RETURN(bool b, x.Send(piece));
      if (!b) return false;
    }
    frame_end = "\r\n";
  }
  return x.Send(frame_end + "0\r\n\r\n");
}

struct ParsedHead {
  int status = 0;
  bool http11 = true;
  Headers headers;
};

// Parses a response head (status line and headers); nullopt when malformed.
std::optional<ParsedHead> ParseHead(std::string_view head) {
  ParsedHead out;
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  if (!status_line.starts_with("HTTP/1.")) return std::nullopt;
  out.http11 = !status_line.starts_with("HTTP/1.0");
  size_t sp = status_line.find(' ');
  if (sp == std::string_view::npos || status_line.size() < sp + 4) return std::nullopt;
  auto code = status_line.substr(sp + 1, 3);
  auto [p, ec] = std::from_chars(code.data(), code.data() + 3, out.status);
  if (ec != std::errc() || p != code.data() + 3) return std::nullopt;
  head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
  while (!head.empty()) {
    size_t end = head.find("\r\n");
    std::string_view line = head.substr(0, end);
    head.remove_prefix(end == std::string_view::npos ? head.size() : end + 2);
    if (auto header = ParseHeaderLine(line)) out.headers.push_back(std::move(*header));
  }
  return out;
}

// The final response head (interim 1xx heads are skipped).
oci::Result<ParsedHead> ReadHead(Exchanger& x) {
  for (;;) {
    size_t end;
    while ((end = x.in_.find("\r\n\r\n", x.pos_)) == std::string::npos) {
      if (x.in_.size() - x.pos_ > kMaxHead) {
        return std::unexpected(x.Error(CURLE_WEIRD_SERVER_REPLY, "response head too large"));
      }
      MC_ASSIGN_OR_RETURN(bool more, x.Fill(x.in_.size() - x.pos_ + 1));
      if (!more) {
        return std::unexpected(
            x.Error(x.in_.size() == x.pos_ ? CURLE_GOT_NOTHING : CURLE_RECV_ERROR,
                    "the connection closed before the response ended"));
      }
    }
    auto parsed = ParseHead(std::string_view(x.in_).substr(x.pos_, end - x.pos_));
    if (!parsed) return std::unexpected(x.Error(CURLE_WEIRD_SERVER_REPLY, "malformed response"));
    x.Consume(end + 4 - x.pos_);
    if (parsed->status >= 200) return std::move(*parsed);
  }
}

// A response body, framed by Content-Length, chunked encoding or the end of
// the connection: a 2xx body goes to the handler, any other is kept (its
// first kSmallBodyLimit bytes) for the caller to read.
struct ResponseBody {
  ResponseBody(Exchanger& x, const BodyHandler& handler, bool deliver)
      : x(x), handler(handler), deliver(deliver) {}

  // Reads the body; true when it was framed (the connection may carry more).
  oci::Result<bool> Read(const HttpResponse& resp) {
    if (resp.status == 204 || resp.status == 304) return true;
    if (auto te = resp.Header("transfer-encoding"); te && HasToken(*te, "chunked")) {
      MC_RETURN_IF_ERROR(ReadChunked());
      return true;
    }
    if (auto cl = resp.Header("content-length")) {
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
      if (ec != std::errc() || p != cl->data() + cl->size()) {
        return std::unexpected(
            x.Error(CURLE_WEIRD_SERVER_REPLY, "bad Content-Length in the response"));
      }
      MC_RETURN_IF_ERROR(TakeExactly(n));
      return true;
    }
    for (;;) {  // the body ends with the connection
      MC_ASSIGN_OR_RETURN(bool more, x.Fill(1));
      if (!more) return false;
      MC_RETURN_IF_ERROR(Take(x.in_.size() - x.pos_));
    }
  }

  Exchanger& x;
  const BodyHandler& handler;
  const bool deliver;
  std::string small_body;
  uint64_t delivered = 0;

 private:
  // The next `n` buffered bytes.
  oci::Result<void> Take(size_t n) {
    std::string_view bytes = std::string_view(x.in_).substr(x.pos_, n);
    if (deliver) {
      MC_RETURN_IF_ERROR(handler.on_body(
          std::span(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size())));
      delivered += n;
    } else {
      small_body.append(
          bytes.substr(0, kSmallBodyLimit - std::min(kSmallBodyLimit, small_body.size())));
    }
    x.Consume(n);
    return {};
  }

  // The next `n` body bytes, read as they arrive.
  oci::Result<void> TakeExactly(uint64_t n) {
    while (n > 0) {
      MC_ASSIGN_OR_RETURN(bool more, x.Fill(1));
      if (!more) return std::unexpected(Truncated());
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, x.in_.size() - x.pos_));
      MC_RETURN_IF_ERROR(Take(k));
      n -= k;
    }
    return {};
  }

  oci::Result<void> ReadChunked() {
    for (;;) {
      MC_ASSIGN_OR_RETURN(auto eol, x.Line(1024));
      if (!eol) return std::unexpected(Truncated());
      std::string_view line = std::string_view(x.in_).substr(x.pos_, *eol - x.pos_);
      auto digits = TrimWhitespace(line.substr(0, line.find(';')));
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n, 16);
      if (ec != std::errc() || digits.empty()) {
        return std::unexpected(x.Error(CURLE_WEIRD_SERVER_REPLY, "bad chunk size in the response"));
      }
      x.Consume(*eol + 2 - x.pos_);
      if (n == 0) return SkipTrailers();
      MC_RETURN_IF_ERROR(TakeExactly(n));
      MC_ASSIGN_OR_RETURN(bool crlf, x.Fill(2));
      if (!crlf) return std::unexpected(Truncated());
      x.Consume(2);
    }
  }

  // Trailer lines up to the empty one.
  oci::Result<void> SkipTrailers() {
    for (;;) {
      MC_ASSIGN_OR_RETURN(auto eol, x.Line(64 << 10));
      if (!eol) return std::unexpected(Truncated());
      bool empty = *eol == x.pos_;
      x.Consume(*eol + 2 - x.pos_);
      if (empty) return {};
    }
  }

  oci::Error Truncated() const {
    return x.Error(CURLE_PARTIAL_FILE, "the connection closed in the response body (after " +
                                           std::to_string(delivered) + " body bytes)");
  }
};

}  // namespace

oci::Result<HttpResponse> DirectSender::Exchange(const HttpRequest& r, const UrlParts& parts,
                                                 const BodyHandler& handler,
                                                 const std::string& what) {
  ConnPtr conn = TakeIdle(ConnKey(parts));
  if (!conn) {
    MC_ASSIGN_OR_RETURN(conn, Connect(parts, what));
  }
  Exchanger x(conn->easy, conn->fd, parts.scheme == "http", options_, what);

  const uint64_t size = r.BodySize();
  const bool chunked = static_cast<bool>(r.end_body_early);
  auto sent = x.Send(RequestHead(r, parts, options_, chunked, size));
  if (sent && *sent) sent = SendBody(x, r, chunked);
  bool body_complete = sent && *sent;
  if (!sent && (sent.error().code == oci::ErrorCode::kCancelled || !x.AnswerArrived())) {
    return std::unexpected(sent.error());
  }
  x.BodySent();

  MC_ASSIGN_OR_RETURN(ParsedHead head, ReadHead(x));
  HttpResponse resp;
  resp.status = head.status;
  resp.headers = std::move(head.headers);
  resp.effective_url = r.url;
  ResponseBody body(x, handler, resp.status >= 200 && resp.status <= 299);
  if (body.deliver && handler.on_response) MC_RETURN_IF_ERROR(handler.on_response(resp));
  MC_ASSIGN_OR_RETURN(bool framed, body.Read(resp));
  bool keep = head.http11 && body_complete && framed && x.pos_ == x.in_.size();
  if (auto c = resp.Header("connection"); c && HasToken(*c, "close")) keep = false;
  if (keep) ReturnIdle(std::move(conn));
  resp.body = std::make_unique<oci::StringReader>(std::move(body.small_body));
  return resp;
}

}  // namespace mc::registry::internal
