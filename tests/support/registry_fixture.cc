#include "tests/support/registry_fixture.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace mc::testing {
namespace {

namespace fs = std::filesystem;

std::string Base64(const std::string& in) {
  static const char* kTable = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kTable[(n >> s) & 63];
    i += 3;
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += kTable[(n >> 18) & 63];
    out += kTable[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kTable[(n >> 18) & 63];
    out += kTable[(n >> 12) & 63];
    out += kTable[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

size_t AppendToString(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

bool RunOk(const std::string& cmd, std::string* error) {
  std::string out;
  if (Run(cmd, &out) != 0) {
    *error = "command failed: " + cmd + ": " + out;
    return false;
  }
  return true;
}

std::string ScriptPath(const std::string& name) {
  return (SourceDir() / "tests/support" / name).string();
}

}  // namespace

// ---------------------------------------------------------------- ChildProcess

ChildProcess::~ChildProcess() { Stop(); }

bool ChildProcess::Start(const std::vector<std::string>& argv, const fs::path& log,
                         const std::vector<std::string>& env) {
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    return false;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(fd);
  pid_ = pid;
  return true;
}

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int status;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Kill();
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

// ---------------------------------------------------------------- helpers

int FreeLoopbackPort() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(s);
  return port;
}

SimpleResponse HttpRequestSimple(const std::string& method, const std::string& url,
                                 const std::string& body, const std::vector<std::string>& headers,
                                 const std::string& ca_file) {
  SimpleResponse r;
  CURL* c = curl_easy_init();
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (!body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (!ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, AppendToString);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, AppendToString);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  if (curl_easy_perform(c) == CURLE_OK) {
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    r.status = static_cast<int>(code);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return r;
}

int WaitForHttp(const std::string& url, const std::string& ca_file,
                std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    SimpleResponse r = HttpRequestSimple("GET", url, "", {}, ca_file);
    if (r.status != 0) return r.status;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

// ---------------------------------------------------------------- RegistryFixture

RegistryFixture::RegistryFixture(RegistryOptions options) : options_(std::move(options)) {
  if (!Setup() && error_.empty()) error_ = "registry fixture setup failed";
}

RegistryFixture::~RegistryFixture() {
  registry_.Stop();
  token_server_.Stop();
}

std::string RegistryFixture::url() const {
  return std::string(options_.tls ? "https://" : "http://") + host();
}

std::string RegistryFixture::token_url() const {
  if (!options_.token_auth) return "";
  return "http://127.0.0.1:" + std::to_string(token_port_);
}

bool RegistryFixture::Setup() {
  if (options_.tmpfs_storage) {
    const char* old = std::getenv("TMPDIR");
    std::string saved = old ? old : "";
    ::setenv("TMPDIR", "/dev/shm", 1);
    shm_dir_ = std::make_unique<TempDir>();
    if (saved.empty())
      ::unsetenv("TMPDIR");
    else
      ::setenv("TMPDIR", saved.c_str(), 1);
    storage_ = shm_dir_->path() / "storage";
  } else {
    storage_ = dir_ / "storage";
  }
  fs::create_directories(storage_);
  if (options_.tls && !MakeTls()) return false;
  if (options_.htpasswd &&
      !RunOk("htpasswd -Bbn " + Quote(options_.user) + " " + Quote(options_.password) + " > " +
                 Quote((dir_ / "htpasswd").string()),
             &error_)) {
    return false;
  }
  if (options_.token_auth && (!MakeTokenKeys() || !StartTokenServer())) return false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreeLoopbackPort();
    if (StartRegistry()) return true;
  }
  return false;
}

bool RegistryFixture::MakeTls() {
  fs::path d = dir_ / "tls";
  fs::create_directories(d);
  fs::create_directories(dir_ / "certs");
  std::string q = Quote(d.string());
  std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  WriteFile(d / "ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  if (!RunOk("cd " + q + " && openssl req -x509" + ec +
                 "-keyout ca.key -out ca.crt -days 2 -subj /CN=mc-test-ca && openssl req" + ec +
                 "-keyout server.key -out server.csr -subj /CN=127.0.0.1 && openssl x509 -req "
                 "-in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt "
                 "-days 2 -extfile ext",
             &error_)) {
    return false;
  }
  fs::copy_file(d / "ca.crt", dir_ / "certs/ca.crt", fs::copy_options::overwrite_existing);
  return true;
}

bool RegistryFixture::MakeTokenKeys() {
  fs::path d = dir_ / "token";
  fs::create_directories(d);
  // RS256: what distribution's libtrust verifies with PKCS#1 v1.5 + SHA-256,
  // and what `openssl dgst -sha256 -sign` produces.
  return RunOk("cd " + Quote(d.string()) +
                   " && openssl req -x509 -newkey rsa:2048 -nodes -keyout token.key "
                   "-out token.crt -days 2 -subj /CN=mc-test-token-issuer",
               &error_);
}

bool RegistryFixture::StartTokenServer() {
  std::string users = options_.user + ":" + options_.password;
  for (int attempt = 0; attempt < 3; ++attempt) {
    token_port_ = FreeLoopbackPort();
    fs::path d = dir_ / "token";
    if (!token_server_.Start(
            {"python3", ScriptPath("token_server.py"), "--port", std::to_string(token_port_),
             "--key", (d / "token.key").string(), "--cert", (d / "token.crt").string(), "--issuer",
             "mc-test-issuer", "--service", "mc-test-registry", "--user", users},
            d / "server.log")) {
      error_ = "cannot start token_server.py";
      return false;
    }
    if (WaitForHttp(token_url() + "/healthz", "", std::chrono::seconds(10)) == 200) return true;
    token_server_.Stop();
  }
  error_ = "token_server.py did not start: " + ReadFile(dir_ / "token/server.log");
  return false;
}

void RegistryFixture::WriteConfig() {
  std::ostringstream c;
  c << "version: 0.1\n"
    << "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
    << "storage:\n  filesystem:\n    rootdirectory: " << storage_.string() << "\n"
    << "  delete:\n    enabled: true\n"
    << "http:\n  addr: 127.0.0.1:" << port_ << "\n"
    << "  secret: mc-test-fixed-secret\n";
  if (options_.relative_urls) c << "  relativeurls: true\n";
  if (options_.tls) {
    c << "  tls:\n    certificate: " << (dir_ / "tls/server.crt").string() << "\n"
      << "    key: " << (dir_ / "tls/server.key").string() << "\n";
  }
  if (options_.htpasswd) {
    c << "auth:\n  htpasswd:\n    realm: mc-test-realm\n    path: " << (dir_ / "htpasswd").string()
      << "\n";
  } else if (options_.token_auth) {
    c << "auth:\n  token:\n    realm: " << token_url() << "/token\n"
      << "    service: mc-test-registry\n    issuer: mc-test-issuer\n"
      << "    rootcertbundle: " << (dir_ / "token/token.crt").string() << "\n";
  }
  WriteFile(dir_ / "config.yml", c.str());
}

bool RegistryFixture::StartRegistry() {
  WriteConfig();
  if (!registry_.Start({"/usr/bin/docker-registry", "serve", (dir_ / "config.yml").string()},
                       dir_ / "registry.log")) {
    error_ = "cannot start /usr/bin/docker-registry";
    return false;
  }
  int status = WaitForHttp(url() + "/v2/", ca_file().string());
  if (status == 200 || status == 401) {
    error_.clear();
    return true;
  }
  registry_.Stop();
  error_ = "docker-registry did not answer GET /v2/ on " + url() + ": " + Log();
  return false;
}

bool RegistryFixture::Restart() {
  registry_.Stop();
  return StartRegistry();
}

std::string RegistryFixture::Log() const { return ReadFile(dir_ / "registry.log"); }

std::string RegistryFixture::TokenLog() const {
  if (!options_.token_auth) return "";
  return ReadFile(dir_ / "token/server.log");
}

std::vector<std::string> RegistryFixture::Requests(const std::string& method,
                                                   const std::string& needle) const {
  std::vector<std::string> out;
  std::istringstream in(Log());
  std::string line;
  std::string request = "\"" + method + " ";
  while (std::getline(in, line)) {
    size_t p = line.find(request);
    if (p == std::string::npos) continue;
    size_t end = line.find('"', p + 1);
    std::string req =
        line.substr(p + 1, end == std::string::npos ? std::string::npos : end - p - 1);
    if (needle.empty() || req.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

fs::path RegistryFixture::WriteAuthFile(const std::string& user, const std::string& password,
                                        const std::string& name) const {
  fs::path p = dir_ / name;
  WriteFile(
      p, "{\"auths\":{\"" + host() + "\":{\"auth\":\"" + Base64(user + ":" + password) + "\"}}}\n");
  return p;
}

std::string RegistryFixture::SkopeoFlags(const std::string& prefix) const {
  std::string f;
  if (options_.tls) {
    f += " --" + prefix + "cert-dir " + Quote(cert_dir().string());
  } else {
    f += " --" + prefix + "tls-verify=false";
  }
  if (options_.htpasswd || options_.token_auth) {
    f += " --" + prefix + "creds " + Quote(options_.user + ":" + options_.password);
  }
  return f;
}

// ---------------------------------------------------------------- FaultProxy

FaultProxy::FaultProxy(const std::string& upstream, const FaultOptions& o) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreeLoopbackPort();
    std::vector<std::string> argv = {"python3",
                                     ScriptPath("fault_proxy.py"),
                                     "--port",
                                     std::to_string(port_),
                                     "--upstream",
                                     upstream,
                                     "--cut-request-after",
                                     std::to_string(o.cut_request_after),
                                     "--cut-method",
                                     o.cut_method,
                                     "--cut-times",
                                     std::to_string(o.cut_times),
                                     "--cut-skip",
                                     std::to_string(o.cut_skip),
                                     "--cut-response-after",
                                     std::to_string(o.cut_response_after),
                                     "--fail-first",
                                     std::to_string(o.fail_first),
                                     "--fail-status",
                                     std::to_string(o.fail_status),
                                     "--retry-after",
                                     std::to_string(o.retry_after_seconds),
                                     "--flip-byte-at",
                                     std::to_string(o.flip_byte_at),
                                     "--path-filter",
                                     o.path_filter,
                                     "--fault-log",
                                     (dir_ / "faults.log").string()};
    if (o.buffer_requests) argv.push_back("--buffer-requests");
    if (!o.drop_response_method.empty()) {
      argv.insert(argv.end(), {"--drop-response-method", o.drop_response_method,
                               "--drop-response-times", std::to_string(o.drop_response_times)});
    }
    argv.insert(argv.end(), {"--traffic-log", (dir_ / "traffic.log").string()});
    if (o.throttle_rate > 0) {
      argv.insert(argv.end(), {"--throttle-rate", std::to_string(o.throttle_rate),
                               "--throttle-times", std::to_string(o.throttle_times)});
    }
    if (o.stall_request_after > 0) {
      argv.insert(argv.end(), {"--stall-request-after", std::to_string(o.stall_request_after),
                               "--stall-skip", std::to_string(o.stall_skip)});
    }
    if (o.stall_stop_reading) argv.push_back("--stall-stop-reading");
    if (o.recv_buffer > 0)
      argv.insert(argv.end(), {"--recv-buffer", std::to_string(o.recv_buffer)});
    if (!proc_.Start(argv, dir_ / "proxy.log")) {
      error_ = "cannot start fault_proxy.py";
      return;
    }
    if (WaitForHttp("http://127.0.0.1:" + std::to_string(port_) + "/__proxy_health", "",
                    std::chrono::seconds(10)) == 200) {
      return;
    }
    proc_.Stop();
  }
  error_ = "fault_proxy.py did not start: " + ReadFile(dir_ / "proxy.log");
}

FaultProxy::~FaultProxy() { proc_.Stop(); }

std::string FaultProxy::Log() const { return ReadFile(dir_ / "faults.log"); }

std::vector<ProxyRequest> FaultProxy::Traffic() const {
  std::vector<ProxyRequest> out;
  std::istringstream in(ReadFile(dir_ / "traffic.log"));
  ProxyRequest r;
  while (in >> r.method >> r.path >> r.body_bytes >> r.status) out.push_back(r);
  return out;
}

uint64_t FaultProxy::BodyBytes(const std::string& method) const {
  uint64_t n = 0;
  for (const auto& r : Traffic()) {
    if (r.method == method) n += r.body_bytes;
  }
  return n;
}

}  // namespace mc::testing
