// Signing keys: OpenSSL EVP for the key and ECDSA, libsodium for cosign's
// scrypt + NaCl secretbox wrapping (engine/sign_key.h).
#include "engine/sign_key.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include <cstring>
#include <mutex>

#include <nlohmann/json.hpp>

#include "oci/io.h"
#include "registry/http_util.h"

namespace mc::engine {
namespace {

using oci::ErrorCode;

constexpr size_t kMaxKeyFile = 64 << 10;

// The key stays in memory only as long as we use it.
struct Wiped {
  std::string bytes;
  ~Wiped() {
    if (!bytes.empty()) sodium_memzero(bytes.data(), bytes.size());
  }
};

struct PemBlock {
  std::string label;
  std::string body;  // base64 text between the lines
};

std::optional<PemBlock> FirstPemBlock(std::string_view pem) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  size_t b = pem.find(kBegin);
  if (b == std::string_view::npos) return std::nullopt;
  size_t label_end = pem.find("-----", b + kBegin.size());
  if (label_end == std::string_view::npos) return std::nullopt;
  PemBlock out;
  out.label = std::string(pem.substr(b + kBegin.size(), label_end - b - kBegin.size()));
  size_t body_start = label_end + 5;
  size_t end = pem.find("-----END " + out.label + "-----", body_start);
  if (end == std::string_view::npos) return std::nullopt;
  out.body = std::string(pem.substr(body_start, end - body_start));
  return out;
}

std::unexpected<oci::Error> Bad(const std::string& name, const std::string& what) {
  ERR_clear_error();  // OpenSSL's queue may describe the key; it never reaches a message
  return oci::Fail(ErrorCode::kInvalidInput, "signing key " + name + ": " + what);
}

bool SodiumReady() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

oci::Result<std::string> B64Field(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return oci::Fail(ErrorCode::kInvalidInput, std::string("no \"") + key + "\" field");
  }
  auto bytes = registry::Base64Decode(it->get<std::string>());
  if (!bytes) return oci::Fail(ErrorCode::kInvalidInput, std::string("bad base64 in ") + key);
  return *bytes;
}

int PassphraseCallback(char* buf, int size, int /*rwflag*/, void* u) {
  const auto* pass = static_cast<const std::optional<std::string>*>(u);
  if (!pass || !*pass) return 0;  // no passphrase given: OpenSSL fails to decrypt
  int n = static_cast<int>((*pass)->size());
  if (n > size) return 0;
  std::memcpy(buf, (*pass)->data(), static_cast<size_t>(n));
  return n;
}

}  // namespace

struct SigningKey::Impl {
  EVP_PKEY* pkey = nullptr;
  ~Impl() { EVP_PKEY_free(pkey); }
};

SigningKey::SigningKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SigningKey::~SigningKey() = default;
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;

oci::Result<std::string> DecryptSecretBoxJson(std::string_view json_text,
                                              std::string_view passphrase) {
  if (!SodiumReady()) return oci::Fail(ErrorCode::kInternal, "libsodium failed to initialise");
  auto j = nlohmann::json::parse(json_text, nullptr, false);
  if (!j.is_object() || !j.contains("kdf") || !j["kdf"].is_object() || !j.contains("cipher") ||
      !j["cipher"].is_object()) {
    return oci::Fail(ErrorCode::kInvalidInput, "not an encrypted key (no kdf/cipher)");
  }
  const auto& kdf = j["kdf"];
  const auto& cipher = j["cipher"];
  if (kdf.value("name", "") != "scrypt") {
    return oci::Fail(ErrorCode::kInvalidInput, "unsupported key derivation (only scrypt)");
  }
  if (cipher.value("name", "") != "nacl/secretbox") {
    return oci::Fail(ErrorCode::kInvalidInput, "unsupported cipher (only nacl/secretbox)");
  }
  const auto params = kdf.value("params", nlohmann::json::object());
  uint64_t n = 0, r = 0, p = 0;
  try {
    n = params.at("N").get<uint64_t>();
    r = params.at("r").get<uint64_t>();
    p = params.at("p").get<uint64_t>();
  } catch (const nlohmann::json::exception&) {
    return oci::Fail(ErrorCode::kInvalidInput, "bad scrypt parameters");
  }
  // go-securesystemslib's Legacy, Standard and OWASP settings, nothing else:
  // a key file must not make us spend unbounded memory.
  if (!((n == 1u << 15 || n == 1u << 16 || n == 1u << 17) && r == 8 && p == 1)) {
    return oci::Fail(ErrorCode::kInvalidInput, "unsupported scrypt parameters");
  }
  MC_ASSIGN_OR_RETURN(std::string salt, B64Field(kdf, "salt"));
  MC_ASSIGN_OR_RETURN(std::string nonce, B64Field(cipher, "nonce"));
  MC_ASSIGN_OR_RETURN(std::string box, B64Field(j, "ciphertext"));
  if (nonce.size() != crypto_secretbox_NONCEBYTES || box.size() < crypto_secretbox_MACBYTES) {
    return oci::Fail(ErrorCode::kInvalidInput, "bad nonce or ciphertext length");
  }
  unsigned char key[crypto_secretbox_KEYBYTES];
  if (crypto_pwhash_scryptsalsa208sha256_ll(
          reinterpret_cast<const uint8_t*>(passphrase.data()), passphrase.size(),
          reinterpret_cast<const uint8_t*>(salt.data()), salt.size(), n, static_cast<uint32_t>(r),
          static_cast<uint32_t>(p), key, sizeof key) != 0) {
    sodium_memzero(key, sizeof key);
    return oci::Fail(ErrorCode::kInternal, "scrypt failed (out of memory?)");
  }
  std::string plain(box.size() - crypto_secretbox_MACBYTES, '\0');
  int rc =
      crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()),
                                 reinterpret_cast<const unsigned char*>(box.data()), box.size(),
                                 reinterpret_cast<const unsigned char*>(nonce.data()), key);
  sodium_memzero(key, sizeof key);
  if (rc != 0) {
    sodium_memzero(plain.data(), plain.size());
    return oci::Fail(ErrorCode::kInvalidInput, "wrong passphrase or damaged key");
  }
  return plain;
}

oci::Result<SigningKey> SigningKey::FromPem(std::string_view pem, const std::string& name,
                                            const std::optional<std::string>& passphrase) {
  auto block = FirstPemBlock(pem);
  if (!block) return Bad(name, "not a PEM private key");
  auto impl = std::make_unique<Impl>();
  if (block->label == "ENCRYPTED SIGSTORE PRIVATE KEY" ||
      block->label == "ENCRYPTED COSIGN PRIVATE KEY") {
    auto json = registry::Base64Decode(block->body);
    if (!json) return Bad(name, "bad base64 in the PEM block");
    Wiped der;
    auto plain = DecryptSecretBoxJson(*json, passphrase.value_or(""));
    if (!plain) return Bad(name, plain.error().message);
    der.bytes = std::move(*plain);
    const auto* p = reinterpret_cast<const unsigned char*>(der.bytes.data());
    impl->pkey = d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.bytes.size()));
    if (!impl->pkey) return Bad(name, "the decrypted key is not a PKCS#8 private key");
  } else if (block->label == "EC PRIVATE KEY" || block->label == "PRIVATE KEY" ||
             block->label == "ENCRYPTED PRIVATE KEY") {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (!bio) return Bad(name, "out of memory");
    impl->pkey = PEM_read_bio_PrivateKey(bio, nullptr, PassphraseCallback,
                                         const_cast<std::optional<std::string>*>(&passphrase));
    BIO_free(bio);
    if (!impl->pkey) {
      if (block->label == "ENCRYPTED PRIVATE KEY") {
        return Bad(name, passphrase ? "wrong passphrase or damaged key"
                                    : "the key is encrypted: give --sign-passphrase-file");
      }
      return Bad(name, "damaged " + block->label);
    }
  } else {
    return Bad(name, "unsupported PEM type \"" + block->label +
                         "\" (want EC PRIVATE KEY, PRIVATE KEY or ENCRYPTED SIGSTORE PRIVATE "
                         "KEY)");
  }
  char group[64] = {0};
  size_t group_len = 0;
  if (EVP_PKEY_get_base_id(impl->pkey) != EVP_PKEY_EC ||
      !EVP_PKEY_get_utf8_string_param(impl->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                      &group_len) ||
      std::string_view(group, group_len) != "prime256v1") {
    return Bad(name, "only ECDSA P-256 keys are supported (as cosign generates)");
  }
  ERR_clear_error();
  return SigningKey(std::move(impl));
}

oci::Result<SigningKey> SigningKey::Load(const std::string& path,
                                         const std::optional<std::string>& passphrase) {
  Wiped pem;
  auto text = oci::ReadFileToString(path, kMaxKeyFile);
  if (!text) {  // a missing or unreadable key is bad input (exit 2), like a damaged one
    return oci::Fail(ErrorCode::kInvalidInput, "reading signing key: " + text.error().message);
  }
  pem.bytes = std::move(*text);
  return FromPem(pem.bytes, path, passphrase);
}

oci::Result<std::string> SigningKey::Sign(std::string_view data) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return oci::Fail(ErrorCode::kInternal, "out of memory");
  std::string sig;
  size_t len = 0;
  bool ok = EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, impl_->pkey) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                           data.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  if (!ok) return oci::Fail(ErrorCode::kInternal, "ECDSA signing failed");
  return sig;
}

bool SigningKey::Verify(std::string_view data, std::string_view signature) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, impl_->pkey) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

std::string SigningKey::PublicKeyPem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return "";
  std::string out;
  if (PEM_write_bio_PUBKEY(bio, impl_->pkey) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

oci::Result<std::string> ReadPassphraseFile(const std::string& path) {
  auto text = oci::ReadFileToString(path, kMaxKeyFile);
  if (!text) {
    return oci::Fail(ErrorCode::kInvalidInput,
                     "reading --sign-passphrase-file: " + text.error().message);
  }
  std::string pass = text->substr(0, text->find('\n'));
  if (!pass.empty() && pass.back() == '\r') pass.pop_back();
  sodium_memzero(text->data(), text->size());
  return pass;
}

}  // namespace mc::engine
