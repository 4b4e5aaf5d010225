// A real registry for integration tests: Debian's docker-registry
// (distribution v2.8) on a random loopback port with filesystem storage in a
// TempDir, plus the servers that surround it in production (a Bearer token
// server, a fault-injecting proxy).
//
// Every process started here is stopped (SIGTERM, then SIGKILL) by the
// destructor. Construction never throws: check ok() / error() and skip or
// fail the test with the message (it names the command that failed).
//
// Thread guarantee: one thread at a time; the accessors that read logs may be
// called while a client is talking to the registry.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/paths.h"

namespace mc::testing {

// A child process with stdout+stderr appended to a log file.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Starts argv[0] (PATH lookup) with extra environment entries "K=V".
  bool Start(const std::vector<std::string>& argv, const std::filesystem::path& log,
             const std::vector<std::string>& env = {});
  // SIGTERM, wait up to 5 s, then SIGKILL. Idempotent.
  void Stop();
  // SIGKILL now (simulates a crash). Idempotent.
  void Kill();
  bool Running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A loopback TCP port that was free a moment ago.
int FreeLoopbackPort();

// Waits until `url` answers any HTTP status (TLS verified with `ca_file` when
// not empty). Returns the status, or 0 on timeout.
int WaitForHttp(const std::string& url, const std::string& ca_file,
                std::chrono::milliseconds timeout = std::chrono::seconds(15));

// One HTTP request with libcurl (for tests that poke a server directly).
struct SimpleResponse {
  int status = 0;  // 0: transport error
  std::string headers;
  std::string body;
};
SimpleResponse HttpRequestSimple(const std::string& method, const std::string& url,
                                 const std::string& body = "",
                                 const std::vector<std::string>& headers = {},
                                 const std::string& ca_file = "");

struct RegistryOptions {
  bool tls = false;            // https with a CA made by openssl (cert_dir() has ca.crt)
  bool htpasswd = false;       // Basic auth with user()/password()
  bool token_auth = false;     // Bearer tokens from tests/support/token_server.py
  bool relative_urls = false;  // http.relativeurls: Location headers without scheme/host
  bool tmpfs_storage = false;  // storage under /dev/shm (benchmarks)
  std::string user = "mcuser";
  std::string password = "mc-secret-pw";
};

class RegistryFixture {
 public:
  explicit RegistryFixture(RegistryOptions options = {});
  ~RegistryFixture();
  RegistryFixture(const RegistryFixture&) = delete;
  RegistryFixture& operator=(const RegistryFixture&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  const RegistryOptions& options() const { return options_; }
  // "127.0.0.1:PORT": what goes into docker://HOST/repo references.
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // "http://127.0.0.1:PORT" or "https://…".
  std::string url() const;
  // Directory with ca.crt (for --cert-dir and skopeo --cert-dir); empty without TLS.
  std::filesystem::path cert_dir() const { return options_.tls ? dir_ / "certs" : ""; }
  std::filesystem::path ca_file() const { return options_.tls ? dir_ / "certs/ca.crt" : ""; }
  std::filesystem::path storage_dir() const { return storage_; }
  const std::filesystem::path& work_dir() const { return dir_.path(); }
  const std::string& user() const { return options_.user; }
  const std::string& password() const { return options_.password; }
  // Token server base URL ("http://127.0.0.1:PORT"); empty without token auth.
  std::string token_url() const;

  // Everything the registry printed (the access log is in it, one line per
  // request in combined log format: `"PATCH /v2/… HTTP/1.1" 202 …`).
  std::string Log() const;
  // Access-log lines whose request line has `method` and contains `needle`.
  std::vector<std::string> Requests(const std::string& method,
                                    const std::string& needle = "") const;
  int CountRequests(const std::string& method, const std::string& needle = "") const {
    return static_cast<int>(Requests(method, needle).size());
  }
  // Lines of the token server's log (one per token issued: "token user=… scope=…").
  std::string TokenLog() const;

  // Writes a containers auth.json with an entry for host() and returns its path.
  std::filesystem::path WriteAuthFile(const std::string& user, const std::string& password,
                                      const std::string& name = "auth.json") const;
  // skopeo flags that reach this registry: --tls-verify/--cert-dir, --creds.
  std::string SkopeoFlags(const std::string& prefix = "") const;

  // Stops and restarts the registry on the same port and storage.
  bool Restart();

 private:
  bool Setup();
  bool MakeTls();
  bool MakeTokenKeys();
  bool StartRegistry();
  bool StartTokenServer();
  void WriteConfig();

  RegistryOptions options_;
  TempDir dir_;
  std::filesystem::path storage_;
  std::unique_ptr<TempDir> shm_dir_;
  int port_ = 0;
  int token_port_ = 0;
  ChildProcess registry_;
  ChildProcess token_server_;
  std::string error_;
};

// tests/support/fault_proxy.py in front of a server: forwards HTTP/1.1 to
// `upstream` and injects faults. Faults (each off when 0 / empty):
struct FaultOptions {
  // Cut the connection after forwarding this many bytes of a request body
  // whose method is cut_method (PATCH/PUT/any ""), for the first cut_times requests.
  int64_t cut_request_after = 0;
  std::string cut_method = "PATCH";
  int cut_times = 1;
  int cut_skip = 0;  // let this many matching requests through first
  // Read each request body whole before forwarding it (nginx's default
  // proxy_request_buffering): a cut or killed client never leaves a partial
  // PATCH at the registry, so distribution's session stays resumable.
  bool buffer_requests = false;
  // Cut the connection after this many bytes of a response body (GET of blobs).
  int64_t cut_response_after = 0;
  // Answer the first fail_first requests with fail_status (+ Retry-After when > 0 s).
  int fail_first = 0;
  int fail_status = 503;
  int retry_after_seconds = 0;
  // Flip one byte at this offset of the first blob GET response body.
  int64_t flip_byte_at = -1;
  // Only requests whose path contains this string are faulted ("" = all).
  std::string path_filter;
  // Forward the first drop_response_times requests with this method, then
  // drop the connection instead of relaying the registry's answer.
  std::string drop_response_method;
  int drop_response_times = 1;
  // With buffer_requests: hold the (stall_skip+1)-th cut_method request after
  // this many body bytes, forwarding nothing of it ("stalled" in Log()).
  int64_t stall_request_after = 0;
  int stall_skip = 0;
  // At the stall, stop reading altogether (a dead link) instead of reading
  // and dropping the rest of the body (a proxy that never answers).
  bool stall_stop_reading = false;
  // SO_RCVBUF of the proxy's client connections (0: the kernel's autotuning):
  // with stall_stop_reading, a small one makes the stall reach the client as
  // unacknowledged bytes.
  int recv_buffer = 0;
  // Forward the bodies of the first throttle_times cut_method requests at
  // this many bytes/s (a slow link; "throttled … passed" in Log() after 1 MiB).
  int64_t throttle_rate = 0;
  int throttle_times = 1;
};

// One request as the proxy forwarded it.
struct ProxyRequest {
  std::string method;
  std::string path;
  uint64_t body_bytes = 0;  // request body bytes that reached the registry
  std::string status;       // "202", "201", … or "cut" / "dropped" / "incomplete"
};

class FaultProxy {
 public:
  // upstream: "127.0.0.1:PORT" (plain HTTP).
  FaultProxy(const std::string& upstream, const FaultOptions& options);
  ~FaultProxy();
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // One line per fault injected ("cut PATCH /v2/… after 1048576 bytes").
  std::string Log() const;
  // Every request so far, in order.
  std::vector<ProxyRequest> Traffic() const;
  // Request body bytes of `method` requests that reached the registry.
  uint64_t BodyBytes(const std::string& method) const;

 private:
  TempDir dir_;
  int port_ = 0;
  ChildProcess proc_;
  std::string error_;
};

}  // namespace mc::testing
