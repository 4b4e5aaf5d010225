#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "tests/support/paths.h"

extern char** environ;

namespace mc::testing {

Subprocess::Subprocess(std::vector<std::string> argv, std::chrono::milliseconds ready_timeout,
                       std::vector<std::string> env) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  for (auto& e : env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int rc = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  out_fd_ = fds[0];
  if (rc != 0) {
    ::close(out_fd_);
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  std::string seen;
  while (port_ == 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{out_fd_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
    size_t pos = seen.find("ready ");
    if (pos != std::string::npos && seen.find('\n', pos) != std::string::npos) {
      port_ = std::atoi(seen.c_str() + pos + 6);
    }
  }
  if (port_ == 0) {
    Stop();
    throw std::runtime_error(argv[0] + " did not print 'ready PORT'; output: " + seen);
  }
  output_ = seen;
  drainer_ = std::thread([this] { Drain(); });
}

void Subprocess::Drain() {
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out_fd_, buf, sizeof buf)) > 0) {
    std::lock_guard lock(mu_);
    output_.append(buf, static_cast<size_t>(n));
  }
}

std::string Subprocess::Output() const {
  std::lock_guard lock(mu_);
  return output_;
}

void Subprocess::Stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      ::usleep(10'000);
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  if (drainer_.joinable()) drainer_.join();  // EOF once the child is gone
  if (out_fd_ >= 0) {
    ::close(out_fd_);
    out_fd_ = -1;
  }
}

Subprocess::~Subprocess() { Stop(); }

std::unique_ptr<Subprocess> StartPythonServer(const std::string& script,
                                              std::vector<std::string> args) {
  std::vector<std::string> argv = {"python3", "-u",
                                   (SourceDir() / "tests/support" / script).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<Subprocess>(std::move(argv));
}

}  // namespace mc::testing
