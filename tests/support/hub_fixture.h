// Test helpers for the Hugging Face tests: a generated model directory and the
// Hub test server (tests/support/hub_server.py) serving it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/process.h"

namespace mc::testing {

// Deterministic pseudo-random bytes.
inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// A small model: git-stored small files, LFS files of a few MiB spanning
// several segments, an empty file and a nested directory. Returns path → size.
inline std::map<std::string, size_t> MakeTestModel(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files = {
      {"config.json", "{\"model_type\": \"test\", \"hidden_size\": 64}\n"},
      {"tokenizer/vocab.txt", std::string("hello\nworld\n") + RandomBytes(3000, 1)},
      {"model-00001-of-00002.safetensors", RandomBytes(3 * 1024 * 1024 + 12345, 2)},
      {"model-00002-of-00002.safetensors", RandomBytes(1536 * 1024 + 7, 3)},
      {"sub/dir/extra.bin", RandomBytes(200 * 1024, 4)},
      {"empty.txt", ""},
      {"README.md", "# test model\n"},
  };
  std::map<std::string, size_t> sizes;
  for (const auto& [name, content] : files) {
    WriteFile(dir / name, content);
    sizes[name] = content.size();
  }
  return sizes;
}

class HubServer {
 public:
  // args: extra hub_server.py options; the model at `dir` is served as org/model.
  HubServer(const std::filesystem::path& dir, std::vector<std::string> args = {}) {
    std::vector<std::string> all = {"--repo", "org/model=" + dir.string(), "--page-size", "3"};
    all.insert(all.end(), args.begin(), args.end());
    server_ = StartPythonServer("hub_server.py", all);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  nlohmann::json Stats() const {
    std::string out;
    Run("curl -s " + url() + "/_debug/stats", &out, false);
    return nlohmann::json::parse(out);
  }
  std::string Commit() const {
    std::string out;
    Run("curl -s " + url() + "/api/models/org/model/revision/main", &out, false);
    return nlohmann::json::parse(out).at("sha").get<std::string>();
  }
  // Runs the engine with HF_ENDPOINT pointing here; returns the exit status.
  int Engine(const std::string& args, std::string* output, const std::string& env = "") const {
    return Run("env -u HF_TOKEN HF_ENDPOINT=" + url() + " " + env + " timeout 120 " +
                   Quote(EngineBinary()) + " --progress none " + args,
               output);
  }

 private:
  std::unique_ptr<Subprocess> server_;
};

}  // namespace mc::testing
