// Test helper: a child process (usually a Python test server) that announces
// readiness with a line "ready PORT" on stdout and is killed when the object
// dies. Reusable by every fixture that starts a server.
//
// Thread guarantee: one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mc::testing {

class Subprocess {
 public:
  // Starts argv (argv[0] looked up in PATH) with `env` entries ("K=V") added
  // to the environment, and waits up to `ready_timeout` for "ready PORT".
  // Throws std::runtime_error when the process exits or times out first
  // (the message includes what it printed).
  explicit Subprocess(std::vector<std::string> argv,
                      std::chrono::milliseconds ready_timeout = std::chrono::seconds(15),
                      std::vector<std::string> env = {});
  ~Subprocess();  // SIGTERM, then SIGKILL after 2 s; reaps the child
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Everything the child printed on stdout so far (after the ready line too).
  std::string Output() const;
  // Stops the child now (idempotent).
  void Stop();

 private:
  void Drain();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  mutable std::mutex mu_;
  std::string output_;  // guarded by mu_
  std::thread drainer_;
};

// python3 running tests/support/<script> with args; waits for "ready PORT".
std::unique_ptr<Subprocess> StartPythonServer(const std::string& script,
                                              std::vector<std::string> args = {});

}  // namespace mc::testing
