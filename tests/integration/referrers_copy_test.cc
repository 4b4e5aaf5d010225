// `copy` brings what belongs to an image: cosign signature tags, an SBOM
// attached by the referrers fallback tag (distribution 2.8, the real
// docker-registry) or listed by the referrers API (tests/support/
// referrers_proxy.py in front of the real registry), and the SBOM's own
// signature (recursion). The mirror's signatures verify with the same
// requirement as the source's (sigstore_helpers.h); --remove-signatures and
// --referrers=false opt out; inspect --referrers lists it all.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/process.h"
#include "tests/support/registry_fixture.h"
#include "tests/support/sigstore_helpers.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Q(const fs::path& p) { return Quote(p.string()); }
constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kIndexType = "application/vnd.oci.image.index.v1+json";

// At HOST/REPO:v1: a signed image, an SBOM whose subject is the image
// (listed by the fallback tag when asked), and a cosign signature of the SBOM.
struct AttachedImage {
  std::string digest;
  std::string sbom_bytes;
  std::string sbom_digest;
};

AttachedImage MakeAttachedImage(const fs::path& dir, const std::string& host,
                                const std::string& repo, bool fallback_tag) {
  const std::string base = "http://" + host;
  AttachedImage a;
  a.digest = BuildSmallImage(dir, host + "/" + repo + ":v1",
                             "--sign-by-sigstore-private-key " + Q(dir / "key.pem"));
  std::string manifest = RawManifestAt(host + "/" + repo + ":v1");
  a.sbom_bytes = ArtifactWithSubject(base, repo, "application/spdx+json",
                                     R"({"spdxVersion":"SPDX-2.3","name":"model"})",
                                     SubjectOfManifest(manifest));
  a.sbom_digest = DigestOfBytes(a.sbom_bytes);
  PushManifestBytes(base, repo, a.sbom_digest, kManifestType, a.sbom_bytes);
  if (fallback_tag) {
    json idx = {{"schemaVersion", 2},
                {"mediaType", kIndexType},
                {"manifests", json::array({{{"mediaType", kManifestType},
                                            {"digest", a.sbom_digest},
                                            {"size", a.sbom_bytes.size()},
                                            {"artifactType", "application/spdx+json"}}})}};
    PushManifestBytes(base, repo, "sha256-" + DigestHex(a.digest), kIndexType, idx.dump());
  }
  std::string out;
  EXPECT_EQ(
      Sh(SigEngine() + " sign " + Quote("docker://" + host + "/" + repo + "@" + a.sbom_digest) +
             " --sign-by-sigstore-private-key " + Q(dir / "key.pem"),
         &out),
      0)
      << out;
  return a;
}

TEST(ReferrersCopyTest, MirrorsSignaturesAndFallbackReferrers) {
  RegistryFixture src;
  RegistryFixture dst;
  ASSERT_TRUE(src.ok()) << src.error();
  ASSERT_TRUE(dst.ok()) << dst.error();
  TempDir tmp;
  ASSERT_TRUE(MakeSigningKeys(tmp.path()));
  AttachedImage a = MakeAttachedImage(tmp.path(), src.host(), "models/signed", true);
  ASSERT_FALSE(a.digest.empty());
  std::string src_ref = src.host() + "/models/signed:v1";
  std::string dst_ref = dst.host() + "/mirror/signed:v1";

  std::string out;
  ASSERT_EQ(
      Sh(SigEngine() + " copy " + Quote("docker://" + src_ref) + " " + Quote("docker://" + dst_ref),
         &out),
      0)
      << out;
  EXPECT_NE(out.find("2 signature/attachment tag(s) and 1 referrer(s)"), std::string::npos) << out;
  // Byte-identical signatures, SBOM and the SBOM's signature; the fallback index lists the SBOM.
  for (const std::string& tag :
       {"sha256-" + DigestHex(a.digest) + ".sig", "sha256-" + DigestHex(a.sbom_digest) + ".sig"}) {
    std::string s = RawManifestAt(src.host() + "/models/signed:" + tag);
    ASSERT_NE(s, "") << tag;
    EXPECT_EQ(RawManifestAt(dst.host() + "/mirror/signed:" + tag), s) << tag;
  }
  EXPECT_EQ(RawManifestAt(dst.host() + "/mirror/signed@" + a.sbom_digest), a.sbom_bytes);
  json idx =
      json::parse(RawManifestAt(dst.host() + "/mirror/signed:sha256-" + DigestHex(a.digest)));
  ASSERT_EQ(idx["manifests"].size(), 1u) << idx.dump();
  EXPECT_EQ(idx["manifests"][0]["digest"], a.sbom_digest);
  EXPECT_EQ(idx["manifests"][0]["artifactType"], "application/spdx+json");

  // The same requirement accepts source and mirror (the signed identity is the
  // source repository); another key is rejected at the mirror.
  const std::string identity = src.host() + "/models/signed";
  std::string why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", src_ref, identity, &why)) << why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", dst_ref, identity, &why)) << why;
  EXPECT_FALSE(SignatureAccepted(tmp.path(), tmp / "other_pub.pem", dst_ref, identity, &why))
      << why;

  // inspect --referrers: the signature, the SBOM, and the SBOM's signature one level down.
  ASSERT_EQ(Sh(SigEngine() + " inspect --referrers " + Quote("docker://" + dst_ref), &out, false),
            0)
      << out;
  json listed = json::parse(out);
  EXPECT_EQ(listed["Digest"], a.digest);
  ASSERT_EQ(listed["Attachments"].size(), 3u) << out;
  EXPECT_EQ(listed["Attachments"][0]["type"], "cosign-tag");
  EXPECT_EQ(listed["Attachments"][0]["tag"], "sha256-" + DigestHex(a.digest) + ".sig");
  EXPECT_EQ(listed["Attachments"][1]["type"], "referrer");
  EXPECT_EQ(listed["Attachments"][1]["found"], "fallback-tag");
  EXPECT_EQ(listed["Attachments"][1]["digest"], a.sbom_digest);
  EXPECT_EQ(listed["Attachments"][1]["artifactType"], "application/spdx+json");
  EXPECT_EQ(listed["Attachments"][1]["annotations"]["org.opencontainers.image.created"],
            "2026-01-01T00:00:00Z");
  EXPECT_EQ(listed["Attachments"][2]["subject"], a.sbom_digest);

  // The mirror signs the image too; copying again keeps both signatures and
  // leaves the fallback tag alone.
  ASSERT_EQ(Sh(SigEngine() + " sign " + Quote("docker://" + dst_ref) +
                   " --sign-by-sigstore-private-key " + Q(tmp / "other.pem"),
               &out),
            0)
      << out;
  const std::string index_put = "/manifests/sha256-" + DigestHex(a.digest) + " ";
  int index_puts = dst.CountRequests("PUT", index_put);
  EXPECT_EQ(index_puts, 1);
  ASSERT_EQ(
      Sh(SigEngine() + " copy " + Quote("docker://" + src_ref) + " " + Quote("docker://" + dst_ref),
         &out),
      0)
      << out;
  EXPECT_EQ(dst.CountRequests("PUT", index_put), index_puts);
  const std::string dst_sig = dst.host() + "/mirror/signed:sha256-" + DigestHex(a.digest) + ".sig";
  EXPECT_EQ(json::parse(RawManifestAt(dst_sig))["layers"].size(), 2u);
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", dst_ref, identity, &why)) << why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "other_pub.pem", dst_ref, "", &why)) << why;
  // A new signature at the source joins them on the next copy.
  fs::create_directories(tmp / "third");
  ASSERT_TRUE(MakeSigningKeys(tmp / "third"));
  ASSERT_EQ(Sh(SigEngine() + " sign " + Quote("docker://" + src_ref) +
                   " --sign-by-sigstore-private-key " + Q(tmp / "third/key.pem"),
               &out),
            0)
      << out;
  ASSERT_EQ(
      Sh(SigEngine() + " copy " + Quote("docker://" + src_ref) + " " + Quote("docker://" + dst_ref),
         &out),
      0)
      << out;
  EXPECT_EQ(json::parse(RawManifestAt(dst_sig))["layers"].size(), 3u);
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "third/pub.pem", dst_ref, identity, &why)) << why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "other_pub.pem", dst_ref, "", &why)) << why;

  // --remove-signatures: the SBOM without signatures; --referrers=false: the image alone.
  std::string nosig = dst.host() + "/nosig/signed:v1";
  ASSERT_EQ(Sh(SigEngine() + " copy --remove-signatures " + Quote("docker://" + src_ref) + " " +
                   Quote("docker://" + nosig),
               &out),
            0)
      << out;
  EXPECT_EQ(RawManifestAt(dst.host() + "/nosig/signed:sha256-" + DigestHex(a.digest) + ".sig"), "");
  EXPECT_EQ(RawManifestAt(dst.host() + "/nosig/signed:sha256-" + DigestHex(a.sbom_digest) + ".sig"),
            "");
  EXPECT_EQ(RawManifestAt(dst.host() + "/nosig/signed@" + a.sbom_digest), a.sbom_bytes);
  EXPECT_FALSE(SignatureAccepted(tmp.path(), tmp / "pub.pem", nosig, identity, &why)) << why;
  std::string bare = dst.host() + "/bare/signed:v1";
  ASSERT_EQ(Sh(SigEngine() + " copy --referrers=false " + Quote("docker://" + src_ref) + " " +
                   Quote("docker://" + bare),
               &out),
            0)
      << out;
  EXPECT_EQ(RawManifestAt(dst.host() + "/bare/signed:sha256-" + DigestHex(a.digest) + ".sig"), "");
  EXPECT_EQ(RawManifestAt(dst.host() + "/bare/signed:sha256-" + DigestHex(a.digest)), "");
  EXPECT_EQ(RawManifestAt(dst.host() + "/bare/signed@" + a.sbom_digest), "");
}

TEST(ReferrersCopyTest, ReferrersApiAtSourceAndDestination) {
  RegistryFixture src;
  RegistryFixture dst;
  ASSERT_TRUE(src.ok()) << src.error();
  ASSERT_TRUE(dst.ok()) << dst.error();
  auto src_api = StartPythonServer("referrers_proxy.py", {"--upstream", src.host()});
  auto dst_api = StartPythonServer("referrers_proxy.py", {"--upstream", dst.host()});
  const std::string src_host = "127.0.0.1:" + std::to_string(src_api->port());
  const std::string dst_host = "127.0.0.1:" + std::to_string(dst_api->port());
  TempDir tmp;
  ASSERT_TRUE(MakeSigningKeys(tmp.path()));
  // The SBOM is listed by the API only (no fallback tag); a signature
  // artifact whose subject is the SBOM is a referrer of the SBOM.
  AttachedImage a = MakeAttachedImage(tmp.path(), src_host, "models/api", false);
  ASSERT_FALSE(a.digest.empty());
  std::string sbom_sig = ArtifactWithSubject("http://" + src_host, "models/api",
                                             "application/vnd.dev.cosign.artifact.sig.v1+json",
                                             "signature-bytes", SubjectOfManifest(a.sbom_bytes));
  PushManifestBytes("http://" + src_host, "models/api", DigestOfBytes(sbom_sig), kManifestType,
                    sbom_sig);
  ASSERT_EQ(RawManifestAt(src.host() + "/models/api:sha256-" + DigestHex(a.digest)), "");

  std::string out;
  ASSERT_EQ(Sh(SigEngine() + " copy " + Quote("docker://" + src_host + "/models/api:v1") + " " +
                   Quote("docker://" + dst_host + "/mirror/api:v1"),
               &out),
            0)
      << out;
  EXPECT_NE(out.find("referrers API"), std::string::npos) << out;
  EXPECT_NE(src_api->Output().find("referrers models/api " + a.digest + " 1"), std::string::npos)
      << src_api->Output();
  // The destination indexed both referrers itself: no fallback tag is written there.
  EXPECT_NE(dst_api->Output().find("indexed mirror/api " + a.sbom_digest + " -> " + a.digest),
            std::string::npos)
      << dst_api->Output();
  EXPECT_NE(dst_api->Output().find("indexed mirror/api " + DigestOfBytes(sbom_sig) + " -> " +
                                   a.sbom_digest),
            std::string::npos)
      << dst_api->Output();
  EXPECT_EQ(RawManifestAt(dst.host() + "/mirror/api:sha256-" + DigestHex(a.digest)), "");
  SimpleResponse listed =
      HttpRequestSimple("GET", "http://" + dst_host + "/v2/mirror/api/referrers/" + a.digest);
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(json::parse(listed.body)["manifests"][0]["digest"], a.sbom_digest);
  EXPECT_EQ(RawManifestAt(dst.host() + "/mirror/api@" + DigestOfBytes(sbom_sig)), sbom_sig);
  EXPECT_NE(RawManifestAt(dst.host() + "/mirror/api:sha256-" + DigestHex(a.digest) + ".sig"), "");
  std::string why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", dst.host() + "/mirror/api:v1",
                                src_host + "/models/api", &why))
      << why;

  // From the API to a registry without it: fallback tags, one per subject.
  ASSERT_EQ(Sh(SigEngine() + " copy " + Quote("docker://" + src_host + "/models/api:v1") + " " +
                   Quote("docker://" + dst.host() + "/plain/api:v1"),
               &out),
            0)
      << out;
  json idx = json::parse(RawManifestAt(dst.host() + "/plain/api:sha256-" + DigestHex(a.digest)));
  EXPECT_EQ(idx["manifests"][0]["digest"], a.sbom_digest);
  json idx2 =
      json::parse(RawManifestAt(dst.host() + "/plain/api:sha256-" + DigestHex(a.sbom_digest)));
  EXPECT_EQ(idx2["manifests"][0]["digest"], DigestOfBytes(sbom_sig));
  EXPECT_EQ(idx2["manifests"][0]["artifactType"],
            "application/vnd.dev.cosign.artifact.sig.v1+json");

  // --remove-signatures leaves out the signature referrer and the .sig tags.
  ASSERT_EQ(Sh(SigEngine() + " copy --remove-signatures " +
                   Quote("docker://" + src_host + "/models/api:v1") + " " +
                   Quote("docker://" + dst.host() + "/nosig/api:v1"),
               &out),
            0)
      << out;
  EXPECT_EQ(RawManifestAt(dst.host() + "/nosig/api@" + a.sbom_digest), a.sbom_bytes);
  EXPECT_EQ(RawManifestAt(dst.host() + "/nosig/api@" + DigestOfBytes(sbom_sig)), "");
  EXPECT_EQ(RawManifestAt(dst.host() + "/nosig/api:sha256-" + DigestHex(a.sbom_digest)), "");
  EXPECT_EQ(RawManifestAt(dst.host() + "/nosig/api:sha256-" + DigestHex(a.digest) + ".sig"), "");

  // inspect --referrers through the API.
  ASSERT_EQ(
      Sh(SigEngine() + " inspect --referrers " + Quote("docker://" + src_host + "/models/api:v1"),
         &out, false),
      0)
      << out;
  json l = json::parse(out);
  bool via_api = false;
  for (const auto& e : l["Attachments"]) via_api |= e["found"] == "referrers-api";
  EXPECT_TRUE(via_api) << out;
  EXPECT_EQ(l["Attachments"].size(), 4u) << out;  // .sig, SBOM, SBOM's .sig, signature referrer
}

TEST(ReferrersCopyTest, ReferrerOfAnotherSubjectIsRefused) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  std::string digest = BuildSmallImage(tmp.path(), reg.host() + "/models/lie:v1");
  ASSERT_FALSE(digest.empty());
  // An artifact about another manifest, listed under this image's fallback tag.
  json elsewhere = {
      {"mediaType", kManifestType}, {"digest", DigestOfBytes("something else")}, {"size", 14}};
  std::string art =
      ArtifactWithSubject(reg.url(), "models/lie", "application/spdx+json", "{}", elsewhere);
  PushManifestBytes(reg.url(), "models/lie", DigestOfBytes(art), kManifestType, art);
  json idx = {{"schemaVersion", 2},
              {"mediaType", kIndexType},
              {"manifests", json::array({{{"mediaType", kManifestType},
                                          {"digest", DigestOfBytes(art)},
                                          {"size", art.size()}}})}};
  PushManifestBytes(reg.url(), "models/lie", "sha256-" + DigestHex(digest), kIndexType, idx.dump());
  std::string out;
  EXPECT_EQ(Sh(SigEngine() + " copy " + Quote("docker://" + reg.host() + "/models/lie:v1") + " " +
                   Quote("docker://" + reg.host() + "/mirror/lie:v1"),
               &out),
            2)
      << out;
  EXPECT_NE(out.find("its subject is"), std::string::npos) << out;
  EXPECT_EQ(RawManifestAt(reg.host() + "/mirror/lie@" + DigestOfBytes(art)), "");
}

TEST(ReferrersCopyTest, PlatformOfASignedIndexIsRefusedUnlessReferrersAreOff) {
  RegistryFixture reg;
  ASSERT_TRUE(reg.ok()) << reg.error();
  TempDir tmp;
  ASSERT_TRUE(MakeSigningKeys(tmp.path()));
  std::string image = BuildSmallImage(tmp.path(), reg.host() + "/models/idx:image");
  ASSERT_FALSE(image.empty());
  std::string manifest = RawManifestAt(reg.host() + "/models/idx:image");
  json index = {
      {"schemaVersion", 2},
      {"mediaType", kIndexType},
      {"manifests", json::array({{{"mediaType", kManifestType},
                                  {"digest", image},
                                  {"size", manifest.size()},
                                  {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}})}};
  PushManifestBytes(reg.url(), "models/idx", "v1", kIndexType, index.dump());
  std::string out;
  ASSERT_EQ(Sh(SigEngine() + " sign " + Quote("docker://" + reg.host() + "/models/idx:v1") +
                   " --sign-all --sign-by-sigstore-private-key " + Q(tmp / "key.pem"),
               &out),
            0)
      << out;
  // The index's signature cannot follow one platform of it, and nothing is copied.
  EXPECT_EQ(Sh(SigEngine() + " copy --platform linux/amd64 " +
                   Quote("docker://" + reg.host() + "/models/idx:v1") + " " +
                   Quote("docker://" + reg.host() + "/mirror/idx:v1"),
               &out),
            2)
      << out;
  EXPECT_NE(out.find("--platform"), std::string::npos) << out;
  EXPECT_EQ(RawManifestAt(reg.host() + "/mirror/idx@" + image), "");
  ASSERT_EQ(Sh(SigEngine() + " copy --platform linux/amd64 --referrers=false " +
                   Quote("docker://" + reg.host() + "/models/idx:v1") + " " +
                   Quote("docker://" + reg.host() + "/mirror/idx:v1"),
               &out, false),
            0)
      << out;
  EXPECT_EQ(out, image + "\n");
  // The whole index keeps its signature.
  ASSERT_EQ(Sh(SigEngine() + " copy " + Quote("docker://" + reg.host() + "/models/idx:v1") + " " +
                   Quote("docker://" + reg.host() + "/mirror/idx:v2"),
               &out),
            0)
      << out;
  std::string why;
  EXPECT_TRUE(SignatureAccepted(tmp.path(), tmp / "pub.pem", reg.host() + "/mirror/idx:v2",
                                reg.host() + "/models/idx", &why))
      << why;
  EXPECT_TRUE(IndexSignatureAccepted(tmp / "pub.pem", reg.host() + "/mirror/idx:v2",
                                     reg.host() + "/models/idx", &why))
      << why;
}

}  // namespace
}  // namespace mc::testing
