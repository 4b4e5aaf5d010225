// Internal to CurlTransport: the worker thread that drives a curl multi
// handle, and the Transfer state it shares with the calling threads.
//
// Thread guarantee: Worker methods are safe for concurrent use. Transfer
// fields marked "guarded" are only touched under Transfer::mu; the curl
// handle is only touched by the worker once submitted.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "oci/error.h"
#include "oci/io.h"
#include "registry/transport.h"

namespace mc::registry::internal {

struct Transfer {
  ~Transfer();

  // Set up by the caller before Submit; then owned by the worker.
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  std::vector<std::span<const std::byte>> body;  // in-memory request body, in parts
  uint64_t body_size = 0;
  // Worker only: read position (part index and offset in it).
  size_t body_part = 0;
  size_t part_pos = 0;
  bool streamed_body = false;       // request body fed through `upload`
  std::function<bool()> end_early;  // HttpRequest::end_body_early (in-memory bodies)
  size_t buffer_cap = 2 << 20;
  char errbuf[CURL_ERROR_SIZE] = {};
  // TransportOptions::cancelled, cancel_grace and cancel_deadline; then
  // the progress callback's state.
  std::function<bool()> stop_requested;
  std::chrono::milliseconds cancel_grace{0};
  std::chrono::milliseconds cancel_deadline{0};
  std::optional<std::chrono::steady_clock::time_point> cancel_seen;
  std::chrono::steady_clock::time_point moved_at;  // last progress after cancel_seen
  int64_t moved = -1;                              // bytes moved at moved_at
  std::atomic<bool> interrupted{false};            // aborted because of `stop_requested`
  // The read callback gave the last body byte (read by the progress
  // callback; both run on the thread that drives the handle).
  bool body_sent = false;

  std::mutex mu;
  std::condition_variable cv;
  // Guarded by mu.
  bool headers_done = false;  // final (non-1xx) header block complete
  int status = 0;
  Headers headers;
  bool finished = false;
  CURLcode result = CURLE_OK;
  std::string error_detail;
  std::string buffer;  // response bytes not yet read: buffer[head, size)
  size_t head = 0;
  uint64_t received = 0;
  bool recv_paused = false;
  bool cancelled = false;
  std::string upload;  // streamed request bytes not yet sent: upload[upload_head, size)
  size_t upload_head = 0;
  bool upload_eof = false;
  bool upload_abandoned = false;
  bool send_paused = false;
  std::optional<oci::Error> upload_error;

  size_t Buffered() const { return buffer.size() - head; }
};

class Worker {
 public:
  Worker();
  ~Worker();  // stops the thread; unfinished transfers fail
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Hands the transfer (easy handle configured) to the worker thread.
  void Submit(std::shared_ptr<Transfer> t);
  // Asks the worker to resume a paused transfer (in whatever directions
  // are no longer marked paused).
  void Unpause(std::shared_ptr<Transfer> t);
  // Asks the worker to abort a transfer nobody reads any more.
  void Cancel(std::shared_ptr<Transfer> t);

 private:
  void Loop();
  bool DrainQueues();
  void Finish(CURL* easy, CURLcode code);
  void FailAll();

  CURLM* multi_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Transfer>> incoming_, unpause_, cancel_;  // guarded by mu_
  bool stop_ = false;                                                   // guarded by mu_
  std::unordered_map<CURL*, std::shared_ptr<Transfer>> active_;         // worker thread only
  std::thread thread_;
};

// libcurl callbacks (CURLOPT_*FUNCTION), userdata = Transfer*.
size_t OnHeader(char* data, size_t size, size_t n, void* userdata);
size_t OnWrite(char* data, size_t size, size_t n, void* userdata);
size_t OnRead(char* data, size_t size, size_t n, void* userdata);
int OnSeek(void* userdata, curl_off_t offset, int origin);
// Once `stop_requested` says so, aborts the transfer when it stops moving
// (TransportOptions::cancelled).
int OnProgress(void* userdata, curl_off_t, curl_off_t, curl_off_t, curl_off_t);

// The response body: reads from the transfer's buffer, resuming the paused
// transfer when it drains; destroying it early aborts the transfer.
class BodyReader final : public oci::Reader {
 public:
  BodyReader(std::shared_ptr<Worker> worker, std::shared_ptr<Transfer> t, std::string what)
      : worker_(std::move(worker)), t_(std::move(t)), what_(std::move(what)) {}
  ~BodyReader() override;
  oci::Result<size_t> Read(std::span<std::byte> out) override;

 private:
  std::shared_ptr<Worker> worker_;
  std::shared_ptr<Transfer> t_;
  std::string what_;  // "GET https://host/path?…" for errors
};

// Maps a failed transfer to an Error ("what: reason").
oci::Error TransferError(CURLcode code, const std::string& detail, const std::string& what);
// The same for a transfer that may have been interrupted (kCancelled then).
oci::Error TransferError(const Transfer& t, CURLcode code, const std::string& detail,
                         const std::string& what);

}  // namespace mc::registry::internal
