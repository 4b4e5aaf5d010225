// Content digests: strict parsing and a streaming SHA-256 on OpenSSL EVP.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "oci/error.h"
#include "oci/io.h"

namespace mc::oci {

// A content digest "sha256:<64 lowercase hex>". Only sha256 is accepted: it is
// the only algorithm registries and runtimes are required to support.
class Digest {
 public:
  Digest() = default;
  // Strict: "sha256:" then exactly 64 lowercase hex digits. kInvalidInput otherwise.
  static Result<Digest> Parse(std::string_view s);
  // From 32 raw bytes.
  static Digest FromRaw(std::span<const unsigned char, 32> raw);
  // SHA-256 of a buffer.
  static Digest Of(std::span<const std::byte> data);
  static Digest Of(std::string_view data) { return Of(AsBytes(data)); }

  const std::string& hex() const { return hex_; }
  std::string algorithm() const { return "sha256"; }
  std::string String() const { return "sha256:" + hex_; }
  bool empty() const { return hex_.empty(); }
  // "sha256:abcdef012345" for messages.
  std::string Short() const { return "sha256:" + hex_.substr(0, 12); }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  std::string hex_;
};

// Streaming SHA-256. One thread at a time.
class Digester final : public Writer {
 public:
  Digester();
  ~Digester() override;
  Digester(const Digester&) = delete;
  Digester& operator=(const Digester&) = delete;

  Result<void> Write(std::span<const std::byte> data) override;
  void Update(std::span<const std::byte> data);
  // The digest of everything written so far; the digester may keep going.
  Digest Finish() const;
  uint64_t bytes() const { return bytes_; }
  void Reset();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  uint64_t bytes_ = 0;
};

// Passes reads through, hashing them; at end of stream fails with
// kVerificationFailed when the size or digest differs from the expected ones.
class VerifyingReader final : public Reader {
 public:
  // expected_size < 0 means unknown.
  VerifyingReader(std::unique_ptr<Reader> inner, Digest expected, int64_t expected_size,
                  std::string what);
  Result<size_t> Read(std::span<std::byte> out) override;
  uint64_t bytes() const { return digester_.bytes(); }

 private:
  std::unique_ptr<Reader> inner_;
  Digest expected_;
  int64_t expected_size_;
  std::string what_;
  Digester digester_;
  bool verified_ = false;
};

}  // namespace mc::oci

template <>
struct std::hash<mc::oci::Digest> {
  size_t operator()(const mc::oci::Digest& d) const { return std::hash<std::string>()(d.hex()); }
};
