// Chunked blob uploads that survive broken connections.
//
// Why one chunk is kept in memory: the layer pipeline streams a compressor's
// output straight into the upload, and a compressor cannot be rewound. The
// registry acknowledges a PATCH only with its 202, so until then the bytes
// must stay re-sendable (protocols.md 1.9 step 3). Offsets come from our own
// acknowledged PATCHes (step 4); after a failure we ask the registry (GET on
// the upload URL) and continue inside the kept chunk.
//
// Range semantics differ (protocols.md 1.8): distribution reports the last
// byte index ("0-1023" = 1024 bytes; an empty session also prints "0-0"),
// Quay's status reports the byte count with a "bytes=" prefix
// ("bytes=0-1024"). ParseUploadRange returns a preferred offset and a
// fallback to try after a 416; Quay tolerates an overlapping start, so its
// count is used directly.
//
// What distribution 2.8 does after a PATCH broke mid-body (verified against
// the real registry, registry/handlers/app.go blobUploadHandler): the bytes
// that arrived are appended, so the stored size no longer matches the offset
// HMAC'd into the `_state` of our newest Location, and the next request on
// that URL gets BLOB_UPLOAD_INVALID (404) and cancels the session. No client
// can resume that session; we restart it ourselves while the whole blob is
// still in the buffer, and otherwise report kNotFound so that the caller
// regenerates the blob (engine: the layer is deterministic). Quay keys
// sessions by UUID only and resumes.
//
// Every request here is marked no_retry: a PATCH is not idempotent and the
// recovery above is the retry (retry.h: one layer retries each operation).
// Quirks cited: Content-Range without "bytes " or total (1.3), newest
// Location always (1.3 pitfalls), `&digest=` when the URL has a query (1.3),
// 413 → smaller chunks (issue 3), empty `Expect:` (transport).
#include "registry/upload.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>
#include <thread>

#include "registry/api_error.h"
#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry {
namespace {

constexpr std::string_view kOctetStream = "application/octet-stream";

std::optional<uint64_t> ParseUint(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

bool IsRecoverableStatus(int status) {
  return status == 408 || status == 416 || status == 429 || status >= 500;
}

void Drain(HttpResponse& resp) { (void)resp.ReadBody(64 << 10); }

// A request with a chunk as its body goes through SendStreaming: the
// transport performs it on this thread and writes the body from the chunk's
// buffers (CurlTransport: without libcurl's copy, transport.h). A 2xx answer
// to an upload has no body worth keeping; any other comes back readable.
oci::Result<HttpResponse> SendChunk(Transport& transport, HttpRequest req) {
  static const BodyHandler kDiscard{
      nullptr, [](std::span<const std::byte>) -> oci::Result<void> { return {}; }};
  return transport.SendStreaming(std::move(req), kDiscard);
}

}  // namespace

std::optional<UploadRange> ParseUploadRange(std::string_view value) {
  std::string_view v = TrimWhitespace(value);
  bool count_semantics = false;
  if (v.starts_with("bytes=")) {
    v.remove_prefix(6);
    count_semantics = true;
  }
  size_t dash = v.find('-');
  if (dash == std::string_view::npos || !ParseUint(v.substr(0, dash))) return std::nullopt;
  std::string_view end = v.substr(dash + 1);
  if (end == "-1") return UploadRange{0, std::nullopt};  // Quay's empty session
  auto n = ParseUint(end);
  if (!n) return std::nullopt;
  if (count_semantics) return UploadRange{*n, std::nullopt};
  if (*n == 0) return UploadRange{0, 1};  // "0-0": empty, or one byte
  return UploadRange{*n + 1, *n};
}

std::string ResolveLocation(std::string_view request_url, std::string_view location) {
  auto r = ResolveUrl(request_url, location);
  return r ? *r : std::string(location);
}

std::string AppendQuery(std::string url, std::string_view key_value) {
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += key_value;
  return url;
}

void UploadChunk::Append(oci::Buffer buf, size_t begin) {
  size_ += buf.size() - begin;
  segments_.push_back(Segment{std::move(buf), begin, false});
}

size_t UploadChunk::Copy(std::span<const std::byte> data, size_t segment_size,
                         std::vector<oci::Buffer>& spare) {
  if (segments_.empty() || !segments_.back().own || segments_.back().buf.full()) {
    oci::Buffer b;
    if (!spare.empty() && spare.back().capacity() >= segment_size) {
      b = std::move(spare.back());
      spare.pop_back();
    } else {
      b = oci::Buffer::Heap(segment_size);
    }
    segments_.push_back(Segment{std::move(b), 0, true});
  }
  size_t n = segments_.back().buf.Append(data);
  size_ += n;
  return n;
}

std::vector<std::span<const std::byte>> UploadChunk::Slice(uint64_t offset, uint64_t len) const {
  std::vector<std::span<const std::byte>> parts;
  for (const auto& s : segments_) {
    if (len == 0) break;
    auto bytes = s.buf.bytes().subspan(s.begin);
    if (offset >= bytes.size()) {
      offset -= bytes.size();
      continue;
    }
    auto piece = bytes.subspan(static_cast<size_t>(offset));
    piece = piece.first(static_cast<size_t>(std::min<uint64_t>(piece.size(), len)));
    parts.push_back(piece);
    len -= piece.size();
    offset = 0;
  }
  return parts;
}

void UploadChunk::Clear(std::vector<oci::Buffer>& spare) {
  for (auto& s : segments_) {
    if (s.own && spare.size() < 64) {
      s.buf.Clear();
      spare.push_back(std::move(s.buf));
    }
  }
  segments_.clear();  // handed-over buffers go back to their pools here
  size_ = 0;
}

UploadSession::UploadSession(UploadTarget target, std::string url, UploadOptions options)
    : target_(std::move(target)),
      url_(std::move(url)),
      options_(std::move(options)),
      patch_size_(options_.chunk_size) {}

UploadSession::~UploadSession() {
  (void)WaitInFlight();
  if (!done_) Abort();
}

oci::Result<void> UploadSession::WaitInFlight() {
  if (!in_flight_.valid()) return {};
  return in_flight_.get();
}

void UploadSession::TakeFilled() {
  buffer_start_ = buffer_end();
  buffer_.Clear(spare_);
  std::swap(buffer_, filling_);
}

oci::Result<void> UploadSession::Rotate() {
  // The previous chunk must be acknowledged before it is dropped; then this
  // one goes up while the producer fills the next.
  MC_RETURN_IF_ERROR(WaitInFlight());
  TakeFilled();
  if (!sender_) sender_ = std::make_unique<boost::asio::thread_pool>(1);
  // An exception in Flush reaches the producer through the future.
  auto task = std::make_shared<std::packaged_task<oci::Result<void>()>>([this] { return Flush(); });
  in_flight_ = task->get_future();
  boost::asio::post(*sender_, [task] { (*task)(); });
  return {};
}

void UploadSession::Detach() {
  (void)WaitInFlight();
  done_ = true;
  ReleaseChunks();
}

oci::Result<std::unique_ptr<UploadSession>> UploadSession::Start(UploadTarget target,
                                                                 UploadOptions options) {
  HttpRequest req;
  req.method = "POST";
  req.url = target.base_url + "/v2/" + target.repository + "/blobs/uploads/";
  std::string url = req.url;
  MC_ASSIGN_OR_RETURN(auto resp, target.transport->Send(std::move(req)));
  ApiContext ctx{"start upload to " + target.describe, target.registry, true};
  if (resp.status != 202) return std::unexpected(ApiError(resp, ctx));
  auto loc = resp.Header("location");
  Drain(resp);
  if (!loc) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     ctx.what + ": registry answered 202 without a Location header");
  }
  return std::make_unique<UploadSession>(std::move(target), ResolveLocation(url, *loc),
                                         std::move(options));
}

oci::Result<std::unique_ptr<UploadSession>> UploadSession::Resume(UploadTarget target,
                                                                  std::string url,
                                                                  UploadOptions options) {
  auto s = std::make_unique<UploadSession>(std::move(target), std::move(url), std::move(options));
  HttpRequest req;
  req.url = s->url_;
  req.idempotent = true;
  MC_ASSIGN_OR_RETURN(auto resp, s->target_.transport->Send(std::move(req)));
  if (resp.status != 204 && resp.status != 200) {
    oci::Error e =
        ApiError(resp, {"resume upload to " + s->target_.describe, s->target_.registry, true});
    // distribution answers a forgotten or invalidated session with 404
    // BLOB_UPLOAD_UNKNOWN/INVALID, some registries with 400.
    if (resp.status == 400) e.code = oci::ErrorCode::kNotFound;
    s->done_ = true;  // nothing to abort
    return std::unexpected(e);
  }
  s->TakeLocation(resp, s->url_);
  auto range = ParseUploadRange(resp.Header("range").value_or("0-0"));
  Drain(resp);
  if (!range) range = UploadRange{0, std::nullopt};
  s->server_offset_ = range->offset;
  s->fallback_ = range->fallback;
  s->buffer_start_ = std::min(range->offset, range->fallback.value_or(range->offset));
  s->resume_offset_ = s->buffer_start_;
  Log()->info("resuming upload to {} at byte {}", s->target_.describe, s->resume_offset_);
  return s;
}

oci::Result<void> UploadSession::Write(std::span<const std::byte> data) {
  if (done_ || aborted_) return oci::Fail(oci::ErrorCode::kInternal, "write to a finished upload");
  if (stream_pos_ < resume_offset_) {  // regenerated bytes the registry already has
    size_t skip =
        static_cast<size_t>(std::min<uint64_t>(data.size(), resume_offset_ - stream_pos_));
    stream_pos_ += skip;
    data = data.subspan(skip);
  }
  // Own segments of up to 4 MiB: a small blob (a config) costs little, and
  // a large one written this way reuses the segments of acknowledged chunks.
  const size_t segment = std::min<size_t>(options_.chunk_size, 4 << 20);
  while (!data.empty()) {
    size_t room = static_cast<size_t>(options_.chunk_size - filling_.size());
    size_t n = filling_.Copy(data.first(std::min(data.size(), room)), segment, spare_);
    stream_pos_ += n;
    data = data.subspan(n);
    if (filling_.size() >= options_.chunk_size) MC_RETURN_IF_ERROR(Rotate());
  }
  return {};
}

oci::Result<void> UploadSession::WriteBuffer(oci::Buffer buffer) {
  if (done_ || aborted_) return oci::Fail(oci::ErrorCode::kInternal, "write to a finished upload");
  size_t begin = 0;
  if (stream_pos_ < resume_offset_) {  // regenerated bytes the registry already has
    begin = static_cast<size_t>(std::min<uint64_t>(buffer.size(), resume_offset_ - stream_pos_));
    stream_pos_ += begin;
  }
  const size_t n = buffer.size() - begin;
  if (n == 0) return {};
  if (n < buffer.capacity() / 2) return Write(buffer.bytes().subspan(begin));
  // A chunk never grows past chunk_size by a kept buffer (unless the buffer
  // alone is larger): the PATCH stays one request.
  if (!filling_.empty() && filling_.size() + n > options_.chunk_size) {
    MC_RETURN_IF_ERROR(Rotate());
  }
  filling_.Append(std::move(buffer), begin);
  stream_pos_ += n;
  if (filling_.size() >= options_.chunk_size) MC_RETURN_IF_ERROR(Rotate());
  return {};
}

oci::Result<void> UploadSession::Flush() {
  while (need_resync_ || server_offset_ < buffer_end()) {
    MC_RETURN_IF_ERROR(CheckStop());
    if (need_resync_) {
      MC_RETURN_IF_ERROR(Resync());
    } else {
      MC_RETURN_IF_ERROR(SendPiece());
    }
  }
  return {};
}

oci::Result<void> UploadSession::SendPiece() {
  uint64_t start = server_offset_;
  size_t len = static_cast<size_t>(std::min<uint64_t>(patch_size_, buffer_end() - start));
  HttpRequest req;
  req.method = "PATCH";
  req.url = url_;
  req.headers = {{"Content-Type", std::string(kOctetStream)},
                 {"Content-Range", std::to_string(start) + "-" + std::to_string(start + len - 1)}};
  req.body_parts = buffer_.Slice(start - buffer_start_, len);
  req.no_retry = true;
  req.follow_redirects = false;
  req.end_body_early = options_.cancelled;  // see the top of upload.h
  stats_.patches++;
  stats_.bytes_sent += len;
  auto resp = SendChunk(*target_.transport, std::move(req));
  if (!resp) return Recover(Context(resp.error(), "PATCH"));
  if (resp->status == 202) {
    TakeLocation(*resp, url_);
    uint64_t acked = start + len;
    if (options_.cancelled && options_.cancelled()) {
      // The body may have ended early: the registry's Range says how much it
      // holds (distribution "0-<size-1>", Quay "0-<count-1>" on a PATCH).
      auto range = ParseUploadRange(resp->Header("range").value_or(""));
      acked =
          range && range->offset >= start && range->offset <= start + len ? range->offset : start;
      if (!range) need_resync_ = true;
      if (acked < start + len) {
        Log()->info("{}: chunk stopped at byte {} (interrupted); the session is kept",
                    target_.describe, acked);
      }
    }
    Drain(*resp);
    server_offset_ = acked;
    any_patch_ = true;
    fallback_.reset();
    attempts_ = 0;
    if (options_.on_progress) options_.on_progress(UploadState{url_, server_offset_});
    return {};
  }
  if (resp->status == 413 && patch_size_ / 2 >= options_.min_chunk_size) {
    Drain(*resp);
    patch_size_ /= 2;
    Log()->warn("{}: registry refused a {}-byte chunk (413); sending {}-byte chunks",
                target_.describe, len, patch_size_);
    return {};
  }
  if (resp->status == 416 && fallback_ && *fallback_ >= buffer_start_ &&
      *fallback_ <= buffer_end()) {
    Drain(*resp);
    server_offset_ = *fallback_;  // the other reading of an ambiguous Range
    fallback_.reset();
    return {};
  }
  oci::Error e = ApiError(*resp, {"upload to " + target_.describe, target_.registry, true});
  if (IsRecoverableStatus(resp->status)) return Recover(e);
  if (resp->status == 404) return RestartSession(e);
  return std::unexpected(e);
}

void UploadSession::Backoff(const oci::Error& cause) {
  options_.backoff.Wait(attempts_ - 1, cause.retry_after);
}

oci::Result<void> UploadSession::CheckStop() const {
  if (options_.cancelled && options_.cancelled()) {
    return oci::Fail(oci::ErrorCode::kCancelled,
                     "upload to " + target_.describe + " interrupted; the session is kept");
  }
  return {};
}

oci::Result<void> UploadSession::Recover(const oci::Error& cause) {
  if (++attempts_ > options_.max_attempts) {
    // Recovery ran out: a network failure after retries (exit 6), naming the
    // request and the registry (Context), whatever the last symptom was.
    oci::Error e =
        cause.Wrap("giving up after " + std::to_string(options_.max_attempts) + " attempts");
    if (e.code == oci::ErrorCode::kTransient) e.code = oci::ErrorCode::kNetwork;
    return std::unexpected(e);
  }
  MC_RETURN_IF_ERROR(CheckStop());
  Log()->warn("{} (attempt {} of {}); asking the registry how much it holds", cause.message,
              attempts_, options_.max_attempts);
  Backoff(cause);
  need_resync_ = true;
  return {};
}

oci::Result<void> UploadSession::Resync() {
  stats_.resyncs++;
  HttpRequest req;
  req.url = url_;
  req.idempotent = true;
  req.follow_redirects = false;
  auto resp = target_.transport->Send(std::move(req));
  if (!resp) return Recover(Context(resp.error(), "upload status"));
  if (resp->status != 204 && resp->status != 200) {
    oci::Error e =
        ApiError(*resp, {"upload status of " + target_.describe, target_.registry, true});
    if (resp->status == 404 || resp->status == 400) return RestartSession(e);
    if (IsRecoverableStatus(resp->status)) return Recover(e);
    return std::unexpected(e);
  }
  TakeLocation(*resp, url_);
  auto range = ParseUploadRange(resp->Header("range").value_or("0-0"));
  Drain(*resp);
  if (!range) range = UploadRange{0, std::nullopt};
  auto usable = [&](uint64_t o) { return o >= buffer_start_ && o <= buffer_end(); };
  std::optional<uint64_t> offset, fallback;
  if (usable(range->offset)) offset = range->offset;
  if (range->fallback && usable(*range->fallback)) (offset ? fallback : offset) = range->fallback;
  if (!offset) {
    return RestartSession(
        oci::Error{oci::ErrorCode::kNotFound,
                   "upload to " + target_.describe + ": the registry holds " +
                       std::to_string(range->offset) + " bytes, outside the re-sendable range " +
                       std::to_string(buffer_start_) + "-" + std::to_string(buffer_end())});
  }
  Log()->info("{}: registry holds {} bytes; continuing there", target_.describe, *offset);
  server_offset_ = *offset;
  fallback_ = fallback;
  need_resync_ = false;
  return {};
}

oci::Result<void> UploadSession::RestartSession(const oci::Error& cause) {
  if (buffer_start_ != 0 || ++stats_.restarts > options_.max_attempts) {
    // kTransient: the caller can send the blob again with a new session.
    return oci::Fail(oci::ErrorCode::kTransient,
                     cause.message + " (the registry lost the upload session after " +
                         std::to_string(buffer_start_) + " bytes; the blob must be sent again)");
  }
  Log()->warn("{}; restarting the upload (all {} bytes are still buffered)", cause.message,
              buffer_.size());
  // This runs on the sender thread while the producer may be in Write(): it
  // must not touch done_/aborted_ (the producer's), and it deletes the old
  // URL only, never the session it is about to use.
  DeleteUrl(url_);
  MC_ASSIGN_OR_RETURN(auto fresh, Start(target_, options_));
  url_ = fresh->url_;
  fresh->done_ = true;  // its URL is ours now; don't let its destructor abort it
  server_offset_ = 0;
  fallback_.reset();
  need_resync_ = false;
  any_patch_ = false;
  return {};
}

void UploadSession::TakeLocation(const HttpResponse& resp, const std::string& request_url) {
  if (auto loc = resp.Header("location"); loc && !loc->empty()) {
    url_ = ResolveLocation(request_url, *loc);
  }
}

oci::Error UploadSession::Context(oci::Error e, std::string_view op) const {
  // Transport errors already name the method and the (redacted) URL.
  return e.Wrap(std::string(op) + " of the upload to " + target_.describe);
}

oci::Result<bool> UploadSession::BlobExists(const oci::Digest& digest) {
  HttpRequest req;
  req.method = "HEAD";
  req.url = target_.base_url + "/v2/" + target_.repository + "/blobs/" + digest.String();
  req.idempotent = true;
  auto resp = target_.transport->Send(std::move(req));
  return resp && resp->status == 200;
}

oci::Result<void> UploadSession::CheckStored(HttpResponse& resp, const oci::Digest& digest) {
  auto got = resp.Header("docker-content-digest");
  Drain(resp);
  if (got && *got != digest.String()) {
    return oci::Fail(oci::ErrorCode::kVerificationFailed, "upload to " + target_.describe +
                                                              ": registry stored " + *got +
                                                              ", expected " + digest.String());
  }
  return {};
}

oci::Result<bool> UploadSession::TryMonolithic(const oci::Digest& digest) {
  HttpRequest req;
  req.method = "PUT";
  req.url = AppendQuery(url_, "digest=" + digest.String());
  req.headers = {{"Content-Type", std::string(kOctetStream)}};
  req.body_parts = buffer_.Slice(0, buffer_.size());
  req.no_retry = true;
  req.follow_redirects = false;
  stats_.puts++;
  stats_.bytes_sent += buffer_.size();
  auto resp = SendChunk(*target_.transport, std::move(req));
  if (!resp) {
    if (*BlobExists(digest)) return true;
    MC_RETURN_IF_ERROR(Recover(Context(resp.error(), "PUT")));
    return false;
  }
  if (resp->status == 201 || resp->status == 204) {
    MC_RETURN_IF_ERROR(CheckStored(*resp, digest));
    return true;
  }
  if (resp->status == 413 && buffer_.size() / 2 >= options_.min_chunk_size) {
    Drain(*resp);
    patch_size_ = std::min(patch_size_, static_cast<size_t>(buffer_.size() / 2));
    return false;
  }
  oci::Error e = ApiError(*resp, {"upload to " + target_.describe, target_.registry, true});
  if (IsRecoverableStatus(resp->status)) {
    MC_RETURN_IF_ERROR(Recover(e));
    return false;
  }
  if (resp->status == 404) {
    MC_RETURN_IF_ERROR(RestartSession(e));
    return false;
  }
  return std::unexpected(e);
}

oci::Result<void> UploadSession::ClosingPut(const oci::Digest& digest) {
  while (true) {
    MC_RETURN_IF_ERROR(Flush());
    HttpRequest req;
    req.method = "PUT";
    req.url = AppendQuery(url_, "digest=" + digest.String());
    req.headers = {{"Content-Type", std::string(kOctetStream)}};
    req.no_retry = true;
    req.follow_redirects = false;
    stats_.puts++;
    auto resp = target_.transport->Send(std::move(req));
    if (!resp) {
      if (*BlobExists(digest)) return {};
      MC_RETURN_IF_ERROR(Recover(Context(resp.error(), "closing PUT")));
      continue;
    }
    if (resp->status == 201 || resp->status == 204) return CheckStored(*resp, digest);
    oci::Error e =
        ApiError(*resp, {"closing upload to " + target_.describe, target_.registry, true});
    if (IsRecoverableStatus(resp->status) || resp->status == 404) {
      if (*BlobExists(digest)) return {};
      MC_RETURN_IF_ERROR(resp->status == 404 ? RestartSession(e) : Recover(e));
      continue;
    }
    return std::unexpected(e);
  }
}

oci::Result<void> UploadSession::Commit(const oci::Digest& digest, uint64_t size) {
  if (done_ || aborted_) return oci::Fail(oci::ErrorCode::kInternal, "commit of a finished upload");
  if (stream_pos_ != size) {
    return oci::Fail(oci::ErrorCode::kInternal,
                     "upload to " + target_.describe + ": " + std::to_string(stream_pos_) +
                         " bytes written but Commit says " + std::to_string(size));
  }
  MC_RETURN_IF_ERROR(WaitInFlight());
  if (!filling_.empty() || buffer_.empty()) TakeFilled();
  if (!any_patch_ && buffer_start_ == 0 && server_offset_ == 0 && !need_resync_ &&
      buffer_.size() < options_.chunk_size) {
    MC_ASSIGN_OR_RETURN(bool ok, TryMonolithic(digest));
    if (ok) {
      done_ = true;
      ReleaseChunks();
      return {};
    }
  }
  MC_RETURN_IF_ERROR(ClosingPut(digest));
  done_ = true;
  ReleaseChunks();
  return {};
}

void UploadSession::Abort() {
  (void)WaitInFlight();
  Delete();
  ReleaseChunks();
}

void UploadSession::ReleaseChunks() {
  buffer_.Clear(spare_);
  filling_.Clear(spare_);
  spare_.clear();
}

void UploadSession::Delete() {
  if (done_ || aborted_ || url_.empty()) return;
  aborted_ = true;
  DeleteUrl(url_);
}

void UploadSession::DeleteUrl(const std::string& url) {
  HttpRequest req;
  req.method = "DELETE";
  req.url = url;
  req.no_retry = true;
  req.follow_redirects = false;
  auto resp = target_.transport->Send(std::move(req));
  if (resp) Drain(*resp);
}

}  // namespace mc::registry
