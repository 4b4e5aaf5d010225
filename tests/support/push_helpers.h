// Helpers for tests that push models with the real binary: a model with
// incompressible weights, the skopeo + GNU tar round trip that proves an
// image holds the model byte for byte, and a command run in the background
// that a test can signal once.
//
// Thread guarantee: one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/registry_fixture.h"

namespace mc::testing {

// config.json, model.safetensors (weight_bytes of xorshift noise: gzip cannot
// shrink it, so compressed and uncompressed layers have about its size) and
// sub/tokenizer.json.
void MakeModel(const std::filesystem::path& dir, size_t weight_bytes = 3 << 20);

// skopeo copies `ref` into dir:scratch, GNU tar extracts its last layer, and
// the result must equal `model` (diff -r) under models/.
::testing::AssertionResult ImageHoldsModel(const RegistryFixture& reg, const std::string& ref,
                                           const std::filesystem::path& model,
                                           const std::filesystem::path& scratch);

// `sh -c "exec COMMAND"` in the background, output to `log`.
class BackgroundCommand {
 public:
  BackgroundCommand(const std::string& command, std::filesystem::path log);
  ~BackgroundCommand();  // SIGKILL and reap, if still running
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;

  // Polls `ready` every 2 ms until it is true (true) or the command ended or
  // `timeout` passed (false).
  bool WaitUntil(const std::function<bool()>& ready,
                 std::chrono::seconds timeout = std::chrono::seconds(60));
  // Sends `sig` once.
  void Signal(int sig);
  // Waits for the end: the exit status, or 128 + the signal that killed it.
  int Wait();
  std::string Output() const;

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
  int status_ = -1;
};

}  // namespace mc::testing
