#include "tests/support/push_helpers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/paths.h"

namespace mc::testing {

namespace fs = std::filesystem;

void MakeModel(const fs::path& m, size_t weight_bytes) {
  WriteFile(m / "config.json", R"({"architectures":["LlamaForCausalLM"]})");
  std::string w(weight_bytes, '\0');
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < w.size(); ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w[i] = static_cast<char>(x);
  }
  WriteFile(m / "model.safetensors", w);
  WriteFile(m / "sub/tokenizer.json", "{\"v\":1}");
}

::testing::AssertionResult ImageHoldsModel(const RegistryFixture& reg, const std::string& ref,
                                           const fs::path& model, const fs::path& scratch) {
  std::string out;
  if (Run("skopeo copy --quiet " + reg.SkopeoFlags("src-") + " docker://" + ref +
              " dir:" + Quote(scratch.string()),
          &out) != 0) {
    return ::testing::AssertionFailure() << "skopeo copy failed: " << out;
  }
  auto m = nlohmann::json::parse(ReadFile(scratch / "manifest.json"));
  std::string layer = m["layers"].back()["digest"].get<std::string>().substr(7);
  fs::create_directories(scratch / "x");
  if (Run("tar -xf " + Quote((scratch / layer).string()) + " -C " + Quote((scratch / "x").string()),
          &out) != 0) {
    return ::testing::AssertionFailure() << "GNU tar cannot extract the layer: " << out;
  }
  if (Run("diff -r " + Quote(model.string()) + " " + Quote((scratch / "x/models").string()),
          &out) != 0) {
    return ::testing::AssertionFailure() << "the image differs from the model: " << out;
  }
  return ::testing::AssertionSuccess();
}

BackgroundCommand::BackgroundCommand(const std::string& command, fs::path log)
    : log_(std::move(log)) {
  pid_ = ::fork();
  if (pid_ == 0) {
    std::string sh = "exec " + command + " >" + Quote(log_.string()) + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", sh.c_str(), nullptr);
    ::_exit(127);
  }
}

BackgroundCommand::~BackgroundCommand() {
  if (status_ < 0 && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    (void)Wait();
  }
}

bool BackgroundCommand::WaitUntil(const std::function<bool()>& ready,
                                  std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    int st = 0;
    if (status_ < 0 && ::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return ready();
    }
    if (status_ >= 0) return ready();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

void BackgroundCommand::Signal(int sig) {
  if (status_ < 0) ::kill(pid_, sig);
}

int BackgroundCommand::Wait() {
  if (status_ >= 0) return status_;
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return status_;
}

std::string BackgroundCommand::Output() const { return ReadFile(log_); }

}  // namespace mc::testing
