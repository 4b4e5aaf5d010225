// Shared helpers for the registry/ HTTP tests: the Python test server's byte
// pattern, a generated Reader, RSS, and a TLS CA made with openssl.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>

#include "oci/io.h"

namespace mc::testing {

// Byte i of the test server's /bytes/N body.
inline std::byte PatternByte(uint64_t i) { return static_cast<std::byte>(i % 251); }

// A Reader producing `size` bytes of the pattern, in uneven chunks.
class PatternReader final : public oci::Reader {
 public:
  explicit PatternReader(uint64_t size) : size_(size) {}
  oci::Result<size_t> Read(std::span<std::byte> out) override {
    size_t n = static_cast<size_t>(std::min<uint64_t>({out.size(), size_ - pos_, 100'003}));
    for (size_t i = 0; i < n; ++i) out[i] = PatternByte(pos_ + i);
    pos_ += n;
    return n;
  }

 private:
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Resident set size of this process in KiB (VmRSS).
inline long RssKiB() {
  std::string s = oci::ReadFileToString("/proc/self/status").value_or("");
  size_t p = s.find("VmRSS:");
  return p == std::string::npos ? 0 : std::stol(s.substr(p + 6));
}

// Makes ca.crt (+ ca.key), server.crt/server.key for IP 127.0.0.1 and a
// client certificate client.cert/client.key (certs.d names) in dir.
// Returns false (with output in *log) when openssl fails.
bool MakeTestCa(const std::filesystem::path& dir, std::string* log);

}  // namespace mc::testing
