#include "tests/support/sigstore_helpers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <sstream>

#include "oci/digest.h"
#include "tests/support/push_helpers.h"

namespace mc::testing {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string Q(const fs::path& p) { return Quote(p.string()); }

}  // namespace

std::string SigEngine() { return "timeout 120 " + Quote(EngineBinary()) + " --progress none"; }
std::string DigestHex(const std::string& digest) { return digest.substr(7); }
std::string DigestOfBytes(const std::string& bytes) { return oci::Digest::Of(bytes).String(); }

::testing::AssertionResult MakeSigningKeys(const fs::path& dir) {
  std::string out;
  if (Sh("cd " + Q(dir) +
             " && openssl ecparam -name prime256v1 -genkey -noout -out key.pem"
             " && openssl ec -in key.pem -pubout -out pub.pem"
             " && openssl ecparam -name prime256v1 -genkey -noout -out other.pem"
             " && openssl ec -in other.pem -pubout -out other_pub.pem",
         &out) != 0) {
    return ::testing::AssertionFailure() << out;
  }
  return ::testing::AssertionSuccess();
}

bool SignatureAccepted(const fs::path& dir, const fs::path& pub, const std::string& ref,
                       const std::string& identity, std::string* why) {
  static std::atomic<int> n{0};
  json signed_identity = identity.empty()
                             ? json{{"type", "matchRepository"}}
                             : json{{"type", "exactRepository"}, {"dockerRepository", identity}};
  json policy = {{"default", json::array({{{"type", "reject"}}})},
                 {"transports",
                  {{"docker",
                    {{"", json::array({{{"type", "sigstoreSigned"},
                                        {"keyPath", pub.string()},
                                        {"signedIdentity", signed_identity}}})}}},
                   {"dir", {{"", json::array({{{"type", "insecureAcceptAnything"}}})}}}}}};
  int id = n++;
  fs::path policy_file = dir / ("policy-" + std::to_string(id) + ".json");
  WriteFile(policy_file, policy.dump(2));
  fs::create_directories(dir / "registries.d");
  WriteFile(dir / "registries.d/default.yaml",
            "default-docker:\n  use-sigstore-attachments: true\n");
  std::string skopeo_out;
  int skopeo =
      Sh("timeout 120 skopeo --policy " + Q(policy_file) + " --registries.d " +
             Q(dir / "registries.d") + " copy --remove-signatures --src-tls-verify=false " +
             Quote("docker://" + ref) + " " +
             Quote("dir:" + (dir / ("skopeo-" + std::to_string(id))).string()),
         &skopeo_out);
  bool skopeo_works = skopeo_out.find("sigstore disabled") == std::string::npos;
  std::string py_out;
  int py =
      Sh("timeout 120 python3 " + Q(SourceDir() / "tests/support/cosign_verify.py") + " --key " +
             Q(pub) + (identity.empty() ? "" : " --identity " + Quote(identity)) + " " + Quote(ref),
         &py_out);
  if (why) {
    *why = "cosign_verify.py: " + py_out +
           (skopeo_works ? " skopeo: " + skopeo_out : " (skopeo has no sigstore support)");
  }
  if (skopeo_works) {
    EXPECT_EQ(skopeo == 0, py == 0) << "skopeo and cosign_verify.py disagree on " << ref
                                    << ": skopeo " << skopeo_out << " cosign_verify.py " << py_out;
  }
  return py == 0;
}

bool IndexSignatureAccepted(const fs::path& pub, const std::string& ref,
                            const std::string& identity, std::string* why) {
  std::string out;
  int rc = Sh("timeout 120 python3 " + Q(SourceDir() / "tests/support/cosign_verify.py") +
                  " --index --key " + Q(pub) +
                  (identity.empty() ? "" : " --identity " + Quote(identity)) + " " + Quote(ref),
              &out);
  if (why) *why = out;
  return rc == 0;
}

std::string RawManifestAt(const std::string& ref) {
  std::string out;
  if (Sh("timeout 60 skopeo inspect --raw --tls-verify=false " + Quote("docker://" + ref), &out,
         false) != 0) {
    return "";
  }
  return out;
}

std::string PushBlobBytes(const std::string& base, const std::string& repo,
                          const std::string& bytes) {
  std::string digest = DigestOfBytes(bytes);
  SimpleResponse post = HttpRequestSimple("POST", base + "/v2/" + repo + "/blobs/uploads/", "",
                                          {"Content-Length: 0"});
  EXPECT_EQ(post.status, 202) << post.body;
  std::string loc;
  std::istringstream hs(post.headers);
  for (std::string line; std::getline(hs, line);) {
    std::string lower = line.substr(0, 9);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "location:") {
      loc = line.substr(9);
      while (!loc.empty() && loc.front() == ' ') loc.erase(0, 1);
      while (!loc.empty() && (loc.back() == '\r' || loc.back() == '\n')) loc.pop_back();
    }
  }
  if (!loc.starts_with("http")) loc = base + loc;
  loc += (loc.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
  SimpleResponse put =
      HttpRequestSimple("PUT", loc, bytes, {"Content-Type: application/octet-stream"});
  EXPECT_EQ(put.status, 201) << put.body;
  return digest;
}

void PushManifestBytes(const std::string& base, const std::string& repo, const std::string& ref,
                       const std::string& media_type, const std::string& bytes) {
  SimpleResponse r = HttpRequestSimple("PUT", base + "/v2/" + repo + "/manifests/" + ref, bytes,
                                       {"Content-Type: " + media_type});
  EXPECT_EQ(r.status, 201) << r.body;
}

std::string ArtifactWithSubject(const std::string& base, const std::string& repo,
                                const std::string& artifact_type, const std::string& content,
                                const json& subject) {
  std::string cfg = PushBlobBytes(base, repo, "{}");
  std::string layer = PushBlobBytes(base, repo, content);
  json m = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"artifactType", artifact_type},
      {"config",
       {{"mediaType", "application/vnd.oci.empty.v1+json"}, {"digest", cfg}, {"size", 2}}},
      {"layers",
       json::array({{{"mediaType", artifact_type}, {"digest", layer}, {"size", content.size()}}})},
      {"subject", subject},
      {"annotations", {{"org.opencontainers.image.created", "2026-01-01T00:00:00Z"}}}};
  return m.dump();
}

json SubjectOfManifest(const std::string& manifest_bytes) {
  return {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
          {"digest", DigestOfBytes(manifest_bytes)},
          {"size", manifest_bytes.size()}};
}

std::string BuildSmallImage(const fs::path& dir, const std::string& ref, const std::string& flags) {
  if (!fs::exists(dir / "model")) MakeModel(dir / "model", 64 << 10);
  std::string out;
  int rc =
      Sh(SigEngine() + " build " + Q(dir / "model") + " " + Quote("docker://" + ref) + " " + flags,
         &out, false);
  EXPECT_EQ(rc, 0) << out;
  if (rc != 0 || out.size() < 71) return "";
  return out.substr(0, 71);
}

}  // namespace mc::testing
