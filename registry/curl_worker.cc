// The curl worker: one thread, one multi handle, many transfers.
//
// Why one thread: libcurl easy handles are not thread-safe, but a multi handle
// driven by a single thread multiplexes any number of transfers over shared
// connections (and HTTP/2 streams). Callers never touch curl after Submit;
// they talk to the worker through queues and curl_multi_wakeup, the shape of
// nix's filetransfer.cc.
//
// Backpressure: the write callback appends to a bounded buffer and returns
// CURL_WRITEFUNC_PAUSE when it is full; the reader asks the worker to resume
// (curl_easy_pause must run on the thread that drives the handle) once the
// buffer has drained below half. A paused receive does not count as a stall
// for CURLOPT_LOW_SPEED_TIME (libcurl skips the speed check while paused).
// Streamed request bodies work the other way round: the calling thread fills
// `upload`, the read callback drains it and pauses the send side when empty.
#include "registry/curl_worker.h"

#include <algorithm>
#include <cstring>

#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry::internal {

Transfer::~Transfer() {
  if (easy) curl_easy_cleanup(easy);
  if (header_list) curl_slist_free_all(header_list);
}

Worker::Worker() : multi_(curl_multi_init()) {
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  thread_ = std::thread([this] { Loop(); });
}

Worker::~Worker() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  curl_multi_wakeup(multi_);
  thread_.join();
  curl_multi_cleanup(multi_);
}

void Worker::Submit(std::shared_ptr<Transfer> t) {
  {
    std::lock_guard lock(mu_);
    incoming_.push_back(std::move(t));
  }
  curl_multi_wakeup(multi_);
}

void Worker::Unpause(std::shared_ptr<Transfer> t) {
  {
    std::lock_guard lock(mu_);
    unpause_.push_back(std::move(t));
  }
  curl_multi_wakeup(multi_);
}

void Worker::Cancel(std::shared_ptr<Transfer> t) {
  {
    std::lock_guard lock(mu_);
    cancel_.push_back(std::move(t));
  }
  curl_multi_wakeup(multi_);
}

// Applies queued requests; returns false when the worker must stop.
bool Worker::DrainQueues() {
  std::vector<std::shared_ptr<Transfer>> incoming, unpause, cancel;
  {
    std::lock_guard lock(mu_);
    if (stop_) return false;
    incoming.swap(incoming_);
    unpause.swap(unpause_);
    cancel.swap(cancel_);
  }
  for (auto& t : incoming) {
    CURLMcode rc = curl_multi_add_handle(multi_, t->easy);
    active_[t->easy] = t;
    if (rc != CURLM_OK) Finish(t->easy, CURLE_FAILED_INIT);
  }
  for (auto& t : unpause) {
    if (!active_.contains(t->easy)) continue;
    int mask = CURLPAUSE_CONT;
    {
      std::lock_guard lock(t->mu);
      if (t->recv_paused) mask |= CURLPAUSE_RECV;
      if (t->send_paused) mask |= CURLPAUSE_SEND;
    }
    curl_easy_pause(t->easy, mask);  // may call the callbacks right away
  }
  for (auto& t : cancel) {
    if (active_.contains(t->easy)) Finish(t->easy, CURLE_ABORTED_BY_CALLBACK);
  }
  return true;
}

void Worker::Loop() {
  while (DrainQueues()) {
    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg == CURLMSG_DONE) Finish(msg->easy_handle, msg->data.result);
    }
    curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
  }
  FailAll();
}

void Worker::Finish(CURL* easy, CURLcode code) {
  auto it = active_.find(easy);
  if (it == active_.end()) return;
  std::shared_ptr<Transfer> t = std::move(it->second);
  active_.erase(it);
  curl_multi_remove_handle(multi_, easy);
  std::lock_guard lock(t->mu);
  t->finished = true;
  t->result = code;
  t->error_detail = t->errbuf;
  t->cv.notify_all();
}

void Worker::FailAll() {
  std::vector<std::shared_ptr<Transfer>> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(incoming_);
  }
  for (auto& t : pending) active_[t->easy] = t;  // not added: remove is a no-op
  while (!active_.empty()) {
    CURL* easy = active_.begin()->first;
    std::strncpy(active_.begin()->second->errbuf, "transport shut down", CURL_ERROR_SIZE - 1);
    Finish(easy, CURLE_ABORTED_BY_CALLBACK);
  }
}

size_t OnHeader(char* data, size_t size, size_t n, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t len = size * n;
  std::string_view line(data, len);
  std::lock_guard lock(t->mu);
  if (t->headers_done) return len;  // trailers
  if (line.starts_with("HTTP/")) {  // a new status line: 1xx interim or final
    t->headers.clear();
    size_t sp = line.find(' ');
    t->status =
        sp == std::string_view::npos ? 0 : std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
    return len;
  }
  std::string_view trimmed = TrimWhitespace(line);
  if (trimmed.empty()) {
    if (t->status >= 200) {
      t->headers_done = true;
      t->cv.notify_all();
    }
    return len;
  }
  if (auto header = ParseHeaderLine(trimmed)) t->headers.push_back(std::move(*header));
  return len;
}

size_t OnWrite(char* data, size_t size, size_t n, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t len = size * n;
  std::lock_guard lock(t->mu);
  if (t->cancelled) return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  if (t->Buffered() >= t->buffer_cap) {
    t->recv_paused = true;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (t->head > 0 && t->head >= t->buffer.size() / 2) {
    t->buffer.erase(0, t->head);
    t->head = 0;
  }
  t->buffer.append(data, len);
  t->received += len;
  t->cv.notify_all();
  return len;
}

size_t OnRead(char* data, size_t size, size_t n, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t len = size * n;
  if (!t->streamed_body) {
    // Sent without a length: ending here ends the body (the last chunk).
    if (t->end_early && t->end_early()) {
      t->body_sent = true;
      return 0;
    }
    // Straight from the caller's parts into libcurl's send buffer.
    size_t k = 0;
    while (k < len && t->body_part < t->body.size()) {
      auto part = t->body[t->body_part];
      size_t m = std::min(len - k, part.size() - t->part_pos);
      std::memcpy(data + k, part.data() + t->part_pos, m);
      k += m;
      t->part_pos += m;
      if (t->part_pos == part.size()) {
        t->body_part++;
        t->part_pos = 0;
      }
    }
    if (t->body_part == t->body.size()) t->body_sent = true;
    return k;
  }
  std::lock_guard lock(t->mu);
  if (t->cancelled || t->upload_abandoned || t->upload_error) return CURL_READFUNC_ABORT;
  size_t avail = t->upload.size() - t->upload_head;
  if (avail == 0) {
    if (t->upload_eof) {
      t->body_sent = true;
      return 0;
    }
    t->send_paused = true;
    return CURL_READFUNC_PAUSE;
  }
  size_t k = std::min(len, avail);
  std::memcpy(data, t->upload.data() + t->upload_head, k);
  t->upload_head += k;
  if (t->upload_head == t->upload.size()) {
    t->upload.clear();
    t->upload_head = 0;
  }
  t->cv.notify_all();
  return k;
}

// Rewinds an in-memory body (libcurl resends on a reused connection that died).
int OnSeek(void* userdata, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userdata);
  if (t->streamed_body || origin != SEEK_SET || offset < 0 ||
      static_cast<uint64_t>(offset) > t->body_size) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  auto rest = static_cast<uint64_t>(offset);
  t->body_sent = false;
  t->body_part = 0;
  while (t->body_part < t->body.size() && rest >= t->body[t->body_part].size()) {
    rest -= t->body[t->body_part].size();
    t->body_part++;
  }
  t->part_pos = static_cast<size_t>(rest);
  return CURL_SEEKFUNC_OK;
}

int OnProgress(void* userdata, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(userdata);
  if (!t->stop_requested || !t->stop_requested()) return 0;
  // libcurl calls this whenever it runs the transfer, on a stalled link too
  // (its speed check wakes the transfer every second).
  auto now = std::chrono::steady_clock::now();
  if (!t->cancel_seen) t->cancel_seen = now;
  const int64_t moved = dlnow + ulnow;
  if (moved != t->moved) {
    t->moved = moved;
    t->moved_at = now;
  }
  // A request whose whole body went out awaits its answer (a proxy may still
  // be forwarding the body): only the deadline ends that.
  const bool stalled = !t->body_sent && now - t->moved_at >= t->cancel_grace;
  if (!stalled && now - *t->cancel_seen < t->cancel_deadline) return 0;
  t->interrupted = true;
  return 1;  // CURLE_ABORTED_BY_CALLBACK
}

BodyReader::~BodyReader() {
  bool cancel = false;
  {
    std::lock_guard lock(t_->mu);
    if (!t_->finished) {
      t_->cancelled = true;
      cancel = true;
    }
  }
  if (cancel) worker_->Cancel(t_);
}

oci::Result<size_t> BodyReader::Read(std::span<std::byte> out) {
  std::unique_lock lock(t_->mu);
  t_->cv.wait(lock, [&] { return t_->Buffered() > 0 || t_->finished; });
  size_t avail = t_->Buffered();
  if (avail > 0) {
    size_t k = std::min(avail, out.size());
    std::memcpy(out.data(), t_->buffer.data() + t_->head, k);
    t_->head += k;
    if (t_->head == t_->buffer.size()) {
      t_->buffer.clear();
      t_->head = 0;
    }
    bool resume = t_->recv_paused && t_->Buffered() < t_->buffer_cap / 2;
    if (resume) t_->recv_paused = false;
    lock.unlock();
    if (resume) worker_->Unpause(t_);
    return k;
  }
  if (t_->result == CURLE_OK) return 0;
  return std::unexpected(
      TransferError(*t_, t_->result, t_->error_detail,
                    what_ + " (after " + std::to_string(t_->received) + " body bytes)"));
}

oci::Error TransferError(const Transfer& t, CURLcode code, const std::string& detail,
                         const std::string& what) {
  if (t.interrupted) {
    return oci::Error{oci::ErrorCode::kCancelled, what + ": interrupted", 0, std::nullopt};
  }
  return TransferError(code, detail, what);
}

oci::Error TransferError(CURLcode code, const std::string& detail, const std::string& what) {
  std::string reason = curl_easy_strerror(code);
  if (!detail.empty()) reason += " (" + detail + ")";
  switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
      return oci::Error{oci::ErrorCode::kNetwork,
                        what + ": TLS verification failed: " + reason +
                            "; pass the registry's CA with --cert-dir or use --tls-verify=false",
                        0, std::nullopt};
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return oci::Error{oci::ErrorCode::kInvalidInput, what + ": " + reason, 0, std::nullopt};
    default:
      return oci::Error{oci::ErrorCode::kTransient, what + ": " + reason, 0, std::nullopt};
  }
}

}  // namespace mc::registry::internal
