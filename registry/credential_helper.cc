// docker-credential-NAME helpers (docker-credential-helpers protocol):
// `docker-credential-NAME get` reads the server URL on stdin and prints
// {"ServerURL":…,"Username":…,"Secret":…}; Username "<token>" means Secret is
// an identity token. A failure whose output says "credentials not found" is
// "no credentials", not an error.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "registry/credentials.h"
#include "registry/log.h"

extern char** environ;

namespace mc::registry {
namespace {

std::optional<std::string> FindInPath(const std::string& name, const std::string& path_env) {
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

// Writes all of data to fd without dying of SIGPIPE if the child closed stdin.
void WriteIgnoringPipe(int fd, const std::string& data) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  timespec zero{0, 0};
  while (sigtimedwait(&block, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// Runs `exe get`, feeding `input`; returns (exit status, stdout).
oci::Result<std::pair<int, std::string>> RunGet(const std::string& exe, const std::string& input) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return oci::Fail(oci::ErrorCode::kIo, "pipe failed");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return oci::Fail(oci::ErrorCode::kIo, "pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::string arg0 = exe, arg1 = "get";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    return oci::Fail(oci::ErrorCode::kIo, "cannot run " + exe + ": " + oci::ErrnoMessage(rc));
  }
  WriteIgnoringPipe(in[1], input);
  ::close(in[1]);
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || output.size() > (1 << 20)) break;
    output.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : 128, output);
}

}  // namespace

oci::Result<std::optional<Credential>> RunCredentialHelper(const std::string& name,
                                                           const std::string& server,
                                                           const std::string& path_env) {
  std::string binary = "docker-credential-" + name;
  auto exe = FindInPath(binary, path_env);
  if (!exe) {
    Log()->debug("{} is not installed; treating {} as having no credentials", binary, server);
    return std::nullopt;
  }
  MC_ASSIGN_OR_RETURN(auto result, RunGet(*exe, server));
  auto& [status, output] = result;
  if (status != 0) {
    if (output.find("credentials not found") != std::string::npos) return std::nullopt;
    std::string first_line = output.substr(0, std::min(output.find('\n'), size_t{200}));
    return oci::Fail(oci::ErrorCode::kUnauthorized, binary + " get failed for " + server +
                                                        " (exit " + std::to_string(status) +
                                                        "): " + first_line);
  }
  auto j = nlohmann::json::parse(output, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return oci::Fail(oci::ErrorCode::kUnauthorized,
                     binary + " get printed something that is not JSON for " + server);
  }
  Credential c;
  c.source = binary;
  std::string user = j.value("Username", "");
  std::string secret = j.value("Secret", "");
  if (user == "<token>") {
    c.identity_token = secret;
  } else {
    c.username = user;
    c.password = secret;
  }
  if (c.anonymous()) return std::nullopt;
  return c;
}

}  // namespace mc::registry
