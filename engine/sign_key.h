// The private key of `--sign-by-sigstore-private-key` and the signatures it makes.
//
// Key files, told apart by their PEM label:
//   EC PRIVATE KEY / PRIVATE KEY        plain PEM (`openssl ecparam -genkey`, PKCS#8)
//   ENCRYPTED PRIVATE KEY               PKCS#8 encrypted by OpenSSL (the passphrase opens it)
//   ENCRYPTED SIGSTORE PRIVATE KEY      cosign's format (also the older ENCRYPTED COSIGN
//                                       PRIVATE KEY): base64 of the JSON
//     {"kdf":{"name":"scrypt","params":{"N":…,"r":8,"p":1},"salt":B64},
//      "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}
//     where ciphertext = secretbox(PKCS#8 DER, nonce, scrypt(passphrase, salt, 32 bytes)),
//     as go-securesystemslib's `encrypted` package writes it; only the scrypt
//     parameters that package accepts (N = 2^15, 2^16, 2^17; r = 8; p = 1) are taken.
// The key must be ECDSA on P-256 (what cosign generates and containers/image
// verifies); signatures are ECDSA over SHA-256, DER-encoded.
//
// Errors are kInvalidInput (exit 2) with one line naming the file and what is
// wrong ("wrong passphrase or damaged key"), never key bytes or the passphrase.
// Thread guarantee: a loaded key may sign from several threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "oci/error.h"

namespace mc::engine {

class SigningKey {
 public:
  ~SigningKey();
  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;

  // Reads `path`; `passphrase` opens an encrypted key (nullopt: none given,
  // which is the empty passphrase for cosign keys, as cosign's COSIGN_PASSWORD="").
  static oci::Result<SigningKey> Load(const std::string& path,
                                      const std::optional<std::string>& passphrase);
  // The same from the file's bytes; `name` is used in messages.
  static oci::Result<SigningKey> FromPem(std::string_view pem, const std::string& name,
                                         const std::optional<std::string>& passphrase);

  // ECDSA P-256 over SHA-256 of `data`: the DER-encoded signature.
  oci::Result<std::string> Sign(std::string_view data) const;
  // True when `signature` (DER) is this key's signature of `data`.
  bool Verify(std::string_view data, std::string_view signature) const;
  // The public key as PEM (SubjectPublicKeyInfo), as `cosign public-key` prints it.
  std::string PublicKeyPem() const;

 private:
  struct Impl;
  explicit SigningKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Decrypts go-securesystemslib's `encrypted` JSON (the body of a cosign key).
// kInvalidInput "wrong passphrase or damaged key" when the box does not open.
oci::Result<std::string> DecryptSecretBoxJson(std::string_view json, std::string_view passphrase);

// Reads a passphrase file: its first line, without the line end (skopeo's
// --sign-passphrase-file).
oci::Result<std::string> ReadPassphraseFile(const std::string& path);

}  // namespace mc::engine
