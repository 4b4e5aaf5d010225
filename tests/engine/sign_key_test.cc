// Signing keys: the formats openssl and cosign write, wrong passphrases, and
// the secretbox decryption against go-securesystemslib's published vectors.
#include "engine/sign_key.h"

#include <gtest/gtest.h>

#include "tests/support/paths.h"

namespace mc::engine {
namespace {

namespace fs = std::filesystem;
using mc::testing::Quote;
using mc::testing::SourceDir;
using mc::testing::TempDir;

fs::path TestData(const std::string& name) { return SourceDir() / "tests/support/testdata" / name; }

TEST(SignKeyTest, DecryptsSecureSystemsLibVector) {
  // go-securesystemslib encrypted/encrypted_test.go TestDecrypt.
  const std::string enc =
      R"({"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="})";
  auto plain = DecryptSecretBoxJson(enc, "supersecret");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(*plain, "reallyimportant");
  auto wrong = DecryptSecretBoxJson(enc, "supersecreT");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_NE(wrong.error().message.find("wrong passphrase"), std::string::npos);
}

TEST(SignKeyTest, RefusesUnboundedScryptParameters) {
  // go-securesystemslib TestUnsupportedKDFParameters.
  const std::string enc =
      R"({"kdf":{"name":"scrypt","params":{"N":99,"r":99,"p":99},"salt":"cZFcQJdwPhPyhU1R4qkl0qVOIjZd4V/7LYYAavq166k="},"cipher":{"name":"nacl/secretbox","nonce":"7vhRS7j0hEPBWV05skAdgLj81AkGeE7U"},"ciphertext":"6WYU/YSXVbYzl/NzaeAzmjLyfFhOOjLc0d8/GFV0aBFdJvyCcXc="})";
  auto r = DecryptSecretBoxJson(enc, "supersecret");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("unsupported scrypt parameters"), std::string::npos);
}

TEST(SignKeyTest, CosignKeysOpenWithTheirPassphraseOnly) {
  auto empty = SigningKey::Load(TestData("cosign_empty_passphrase.key"), std::nullopt);
  ASSERT_TRUE(empty) << empty.error().message;
  auto k123 = SigningKey::Load(TestData("cosign_passphrase_123.key"), std::string("123"));
  ASSERT_TRUE(k123) << k123.error().message;
  auto sig = k123->Sign("payload");
  ASSERT_TRUE(sig);
  EXPECT_TRUE(k123->Verify("payload", *sig));
  EXPECT_FALSE(k123->Verify("payloaD", *sig));
  EXPECT_FALSE(empty->Verify("payload", *sig));

  auto wrong = SigningKey::Load(TestData("cosign_passphrase_123.key"), std::string("124"));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, oci::ErrorCode::kInvalidInput);
  EXPECT_NE(wrong.error().message.find("wrong passphrase"), std::string::npos);
  EXPECT_EQ(wrong.error().message.find('\n'), std::string::npos);
  EXPECT_EQ(wrong.error().message.find("124"), std::string::npos);
  auto none = SigningKey::Load(TestData("cosign_passphrase_123.key"), std::nullopt);
  ASSERT_FALSE(none);
}

TEST(SignKeyTest, OpensslKeysSignAndVerifyWithOpenssl) {
  TempDir tmp;
  std::string out;
  ASSERT_EQ(mc::testing::Run("cd " + Quote(tmp.path().string()) +
                                 " && openssl ecparam -name prime256v1 -genkey -noout -out ec.pem"
                                 " && openssl pkcs8 -topk8 -nocrypt -in ec.pem -out p8.pem"
                                 " && openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:pw"
                                 " -in ec.pem -out enc.pem"
                                 " && openssl ec -in ec.pem -pubout -out pub.pem"
                                 " && openssl genpkey -algorithm ed25519 -out ed.pem",
                             &out),
            0)
      << out;
  for (const char* name : {"ec.pem", "p8.pem"}) {
    auto key = SigningKey::Load(tmp / name, std::nullopt);
    ASSERT_TRUE(key) << name << ": " << key.error().message;
    auto sig = key->Sign("hello");
    ASSERT_TRUE(sig);
    mc::testing::WriteFile(tmp / "data", "hello");
    mc::testing::WriteFile(tmp / "sig", *sig);
    EXPECT_EQ(mc::testing::Run("openssl dgst -sha256 -verify " + Quote((tmp / "pub.pem").string()) +
                                   " -signature " + Quote((tmp / "sig").string()) + " " +
                                   Quote((tmp / "data").string()),
                               &out),
              0)
        << out;
    EXPECT_EQ(key->PublicKeyPem(), mc::testing::ReadFile(tmp / "pub.pem"));
  }
  EXPECT_TRUE(SigningKey::Load(tmp / "enc.pem", std::string("pw")));
  auto wrong = SigningKey::Load(tmp / "enc.pem", std::string("nope"));
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("wrong passphrase"), std::string::npos);
  auto ed = SigningKey::Load(tmp / "ed.pem", std::nullopt);
  ASSERT_FALSE(ed);
  EXPECT_NE(ed.error().message.find("P-256"), std::string::npos);
  auto missing = SigningKey::Load(tmp / "missing.pem", std::nullopt);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, oci::ErrorCode::kInvalidInput);
  auto no_pass = ReadPassphraseFile(tmp / "missing-pass");
  ASSERT_FALSE(no_pass);
  EXPECT_EQ(no_pass.error().code, oci::ErrorCode::kInvalidInput);
  mc::testing::WriteFile(tmp / "pass", "line one\r\nline two\n");
  EXPECT_EQ(ReadPassphraseFile(tmp / "pass").value_or(""), "line one");
}

}  // namespace
}  // namespace mc::engine
