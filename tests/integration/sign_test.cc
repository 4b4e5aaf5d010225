// `build --sign-by-sigstore-private-key` and `sign` against the real
// docker-registry: the cosign signature image they write is accepted for the
// right public key and rejected for another, by skopeo's sigstoreSigned
// policy where skopeo supports it and by tests/support/cosign_verify.py
// (sigstore_helpers.h). Encrypted cosign keys come from tests/support/testdata.
#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/registry_fixture.h"
#include "tests/support/sigstore_helpers.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Q(const fs::path& p) { return Quote(p.string()); }

TEST(SignTest, BuildSignsAndOnlyTheRightKeyIsAccepted) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  ASSERT_TRUE(MakeSigningKeys(tmp.path()));
  std::string ref = reg.host() + "/models/signed:v1";
  fs::path meta = tmp / "publish-metadata.json";
  std::string digest = BuildSmallImage(
      tmp.path(), ref,
      "--sign-by-sigstore-private-key " + Q(tmp / "key.pem") + " --metadata " + Q(meta));
  ASSERT_FALSE(digest.empty());

  json m = json::parse(ReadFile(meta));
  ASSERT_EQ(m["image"]["signatures"].size(), 1u) << m.dump();
  EXPECT_EQ(m["image"]["digest"], digest);
  EXPECT_EQ(m["image"]["signatures"][0]["digest"], digest);
  EXPECT_EQ(m["image"]["signatures"][0]["tag"], "sha256-" + DigestHex(digest) + ".sig");
  EXPECT_EQ(m["image"]["signatures"][0]["type"], "cosign");

  // The signature image as cosign stores it.
  std::string sig_ref = reg.host() + "/models/signed:sha256-" + DigestHex(digest) + ".sig";
  json sig = json::parse(RawManifestAt(sig_ref));
  ASSERT_EQ(sig["layers"].size(), 1u) << sig.dump();
  EXPECT_EQ(sig["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(sig["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
  EXPECT_EQ(sig["layers"][0]["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
  EXPECT_TRUE(sig["layers"][0]["annotations"].contains("dev.cosignproject.cosign/signature"));
  EXPECT_EQ(m["image"]["signatures"][0]["signatureManifest"],
            DigestOfBytes(RawManifestAt(sig_ref)));

  std::string why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", ref, "", &why)) << why;
  EXPECT_FALSE(SignatureAccepted(tmp.path(), tmp / "other_pub.pem", ref, "", &why)) << why;
  // The identity is the repository: another repository's requirement does not match.
  EXPECT_FALSE(
      SignatureAccepted(tmp.path(), tmp / "pub.pem", ref, reg.host() + "/models/other", &why))
      << why;

  // Signing again with the same key adds nothing; another key appends a layer.
  std::string out;
  ASSERT_EQ(Sh(SigEngine() + " sign " + Quote("docker://" + ref) +
                   " --sign-by-sigstore-private-key " + Q(tmp / "key.pem"),
               &out),
            0)
      << out;
  EXPECT_NE(out.find("already signed"), std::string::npos) << out;
  EXPECT_EQ(json::parse(RawManifestAt(sig_ref))["layers"].size(), 1u);
  ASSERT_EQ(
      Sh(SigEngine() + " sign " + Quote("docker://" + ref) + " --sign-by-sigstore-private-key " +
             Q(tmp / "other.pem") + " --metadata " + Q(meta),
         &out),
      0)
      << out;
  json sig2 = json::parse(RawManifestAt(sig_ref));
  ASSERT_EQ(sig2["layers"].size(), 2u);
  EXPECT_EQ(sig2["layers"][0], sig["layers"][0]);
  EXPECT_EQ(json::parse(ReadFile(meta))["image"]["signatures"].size(), 2u);
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", ref, "", &why)) << why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "other_pub.pem", ref, "", &why)) << why;

  // An oci: destination has no place for the signature.
  EXPECT_EQ(Sh(SigEngine() + " build " + Q(tmp / "model") + " " +
                   Quote("oci:" + (tmp / "layout").string()) + " --sign-by-sigstore-private-key " +
                   Q(tmp / "key.pem"),
               &out),
            2)
      << out;
}

TEST(SignTest, EncryptedCosignKeyRightAndWrongPassphrase) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  fs::path key = SourceDir() / "tests/support/testdata/cosign_passphrase_123.key";
  WriteFile(tmp / "right", "123\n");
  WriteFile(tmp / "wrong", "s3cr3t-wrong\n");
  fs::create_directories(tmp / "model");
  WriteFile(tmp / "model/config.json", "{}");
  WriteFile(tmp / "model/weights.bin", std::string(4096, 'w'));
  std::string ref = reg.host() + "/models/enc:v1";

  std::string out;
  int rc = Sh(SigEngine() + " build " + Q(tmp / "model") + " " + Quote("docker://" + ref) +
                  " --sign-by-sigstore-private-key " + Q(key) + " --sign-passphrase-file " +
                  Q(tmp / "wrong"),
              &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("wrong passphrase"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(out.find("s3cr3t"), std::string::npos) << out;
  EXPECT_EQ(out.find("BEGIN"), std::string::npos) << out;
  EXPECT_EQ(out.find("eyJrZGYi"), std::string::npos) << out;  // the key file's base64
  EXPECT_EQ(reg.CountRequests("PUT", "/manifests/"), 0) << "nothing is pushed with a bad key";
  // No passphrase at all: the same exit code.
  EXPECT_EQ(Sh(SigEngine() + " sign " + Quote("docker://" + ref) +
                   " --sign-by-sigstore-private-key " + Q(key),
               &out),
            2)
      << out;

  std::string digest = BuildSmallImage(
      tmp.path(), ref,
      "--sign-by-sigstore-private-key " + Q(key) + " --sign-passphrase-file " + Q(tmp / "right"));
  ASSERT_FALSE(digest.empty());
  // The public key, derived independently (Python + libsodium + openssl).
  ASSERT_EQ(Sh("python3 " + Q(SourceDir() / "tests/support/cosign_key_pub.py") + " " + Q(key) +
                   " 123 > " + Q(tmp / "enc_pub.pem"),
               &out),
            0)
      << out;
  std::string why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "enc_pub.pem", ref, "", &why)) << why;

  // A key written by `cosign generate-key-pair` with an empty passphrase.
  fs::path cosign_key = SourceDir() / "tests/support/testdata/cosign_empty_passphrase.key";
  std::string other = reg.host() + "/models/enc2:v1";
  ASSERT_FALSE(BuildSmallImage(tmp.path(), other).empty());
  ASSERT_EQ(Sh(SigEngine() + " sign " + Quote("docker://" + other) +
                   " --sign-by-sigstore-private-key " + Q(cosign_key),
               &out),
            0)
      << out;
  ASSERT_EQ(Sh("python3 " + Q(SourceDir() / "tests/support/cosign_key_pub.py") + " " +
                   Q(cosign_key) + " '' > " + Q(tmp / "cosign_pub.pem"),
               &out),
            0)
      << out;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "cosign_pub.pem", other, "", &why)) << why;
  EXPECT_FALSE(SignatureAccepted(tmp.path(), tmp / "enc_pub.pem", other, "", &why)) << why;
}

TEST(SignTest, SignAllSignsTheIndexAndEachImage) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  ASSERT_TRUE(MakeSigningKeys(tmp.path()));
  std::string image = BuildSmallImage(tmp.path(), reg.host() + "/models/multi:image");
  ASSERT_FALSE(image.empty());
  std::string manifest = RawManifestAt(reg.host() + "/models/multi:image");
  json index = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.index.v1+json"},
      {"manifests", json::array({{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                  {"digest", image},
                                  {"size", manifest.size()},
                                  {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}})}};
  std::string index_bytes = index.dump();
  PushManifestBytes(reg.url(), "models/multi", "v1", "application/vnd.oci.image.index.v1+json",
                    index_bytes);
  std::string out;
  ASSERT_EQ(Sh(SigEngine() + " sign " + Quote("docker://" + reg.host() + "/models/multi:v1") +
                   " --sign-all --sign-by-sigstore-private-key " + Q(tmp / "key.pem"),
               &out, false),
            0)
      << out;
  EXPECT_EQ(out, DigestOfBytes(index_bytes) + "\n" + image + "\n");
  EXPECT_NE(RawManifestAt(reg.host() + "/models/multi:sha256-" +
                          DigestHex(DigestOfBytes(index_bytes)) + ".sig"),
            "");
  std::string why;
  EXPECT_TRUE(
      SignatureAccepted(tmp.path(), tmp / "pub.pem", reg.host() + "/models/multi:v1", "", &why))
      << why;
  EXPECT_TRUE(IndexSignatureAccepted(tmp / "pub.pem", reg.host() + "/models/multi:v1", "", &why))
      << why;
  EXPECT_FALSE(
      IndexSignatureAccepted(tmp / "other_pub.pem", reg.host() + "/models/multi:v1", "", &why))
      << why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", reg.host() + "/models/multi@" + image,
                                "", &why))
      << why;
}

}  // namespace
}  // namespace mc::testing
