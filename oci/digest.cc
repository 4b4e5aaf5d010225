#include "oci/digest.h"

#include <openssl/evp.h>

namespace mc::oci {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string ToHex(const unsigned char* p, size_t n) {
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 15];
  }
  return s;
}

}  // namespace

Result<Digest> Digest::Parse(std::string_view s) {
  constexpr std::string_view kPrefix = "sha256:";
  auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidInput,
                "invalid digest \"" + std::string(s.substr(0, 80)) + "\": " + std::string(why) +
                    " (expected sha256:<64 lowercase hex digits>)");
  };
  if (!s.starts_with(kPrefix)) {
    if (s.find(':') != std::string_view::npos) return bad("unsupported algorithm");
    return bad("missing algorithm");
  }
  std::string_view hex = s.substr(kPrefix.size());
  if (hex.size() != 64) return bad("wrong length");
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return bad("not lowercase hex");
  }
  Digest d;
  d.hex_ = std::string(hex);
  return d;
}

Digest Digest::FromRaw(std::span<const unsigned char, 32> raw) {
  Digest d;
  d.hex_ = ToHex(raw.data(), raw.size());
  return d;
}

Digest Digest::Of(std::span<const std::byte> data) {
  Digester dg;
  dg.Update(data);
  return dg.Finish();
}

struct Digester::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Digester::Digester() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
}

Digester::~Digester() = default;

void Digester::Reset() {
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
  bytes_ = 0;
}

void Digester::Update(std::span<const std::byte> data) {
  EVP_DigestUpdate(ctx_->md, data.data(), data.size());
  bytes_ += data.size();
}

Result<void> Digester::Write(std::span<const std::byte> data) {
  Update(data);
  return {};
}

Digest Digester::Finish() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, ctx_->md);
  unsigned char out[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, out, &len);
  EVP_MD_CTX_free(copy);
  return Digest::FromRaw(std::span<const unsigned char, 32>(out, 32));
}

VerifyingReader::VerifyingReader(std::unique_ptr<Reader> inner, Digest expected,
                                 int64_t expected_size, std::string what)
    : inner_(std::move(inner)),
      expected_(std::move(expected)),
      expected_size_(expected_size),
      what_(std::move(what)) {}

Result<size_t> VerifyingReader::Read(std::span<std::byte> out) {
  MC_ASSIGN_OR_RETURN(size_t n, inner_->Read(out));
  if (n > 0) {
    digester_.Update(out.first(n));
    if (expected_size_ >= 0 && digester_.bytes() > static_cast<uint64_t>(expected_size_)) {
      return Fail(ErrorCode::kVerificationFailed,
                  what_ + ": more than the expected " + std::to_string(expected_size_) + " bytes");
    }
    return n;
  }
  if (!verified_) {
    if (expected_size_ >= 0 && digester_.bytes() != static_cast<uint64_t>(expected_size_)) {
      return Fail(ErrorCode::kVerificationFailed,
                  what_ + ": size mismatch: got " + std::to_string(digester_.bytes()) +
                      " bytes, expected " + std::to_string(expected_size_));
    }
    Digest got = digester_.Finish();
    if (got != expected_) {
      return Fail(ErrorCode::kVerificationFailed, what_ + ": digest mismatch: got " +
                                                      got.String() + ", expected " +
                                                      expected_.String());
    }
    verified_ = true;
  }
  return 0;
}

}  // namespace mc::oci
