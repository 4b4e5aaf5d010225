// Helpers of the signing and referrers integration tests: keys made by
// openssl, signatures verified by independent clients, artifacts pushed with
// plain HTTP requests (as oras or cosign would push them).
//
// Verification: skopeo with a sigstoreSigned policy and use-sigstore-attachments
// where its build supports sigstore; Debian's skopeo 1.9 does not ("Debian-local
// change: sigstore disabled"), so every verdict is also taken from
// tests/support/cosign_verify.py (containers/image's checks in Python + openssl),
// and the two must agree where both run.
//
// Thread guarantee: one thread at a time.
#pragma once

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"
#include "tests/support/registry_fixture.h"

namespace mc::testing {

// mc-engine with --progress none, bounded by `timeout`.
std::string SigEngine();
// "sha256:HEX" → "HEX".
std::string DigestHex(const std::string& digest);
std::string DigestOfBytes(const std::string& bytes);

// key.pem/pub.pem and other.pem/other_pub.pem in `dir` (openssl ecparam -genkey).
::testing::AssertionResult MakeSigningKeys(const std::filesystem::path& dir);

// Whether the signature of `ref` (HOST/REPO:TAG over plain http) by the key
// `pub` is accepted: identity "" = matchRepository (the image's own
// repository), else exactRepository `identity`. *why gets the verifiers' output.
// For an index, the linux/amd64 image is verified (as skopeo copy and podman
// pull do: sign indexes with --sign-all for them).
bool SignatureAccepted(const std::filesystem::path& dir, const std::filesystem::path& pub,
                       const std::string& ref, const std::string& identity = "",
                       std::string* why = nullptr);
// The signature of the index `ref` names itself (cosign verify's view), by
// cosign_verify.py --index.
bool IndexSignatureAccepted(const std::filesystem::path& pub, const std::string& ref,
                            const std::string& identity = "", std::string* why = nullptr);

// The manifest bytes at docker://ref (skopeo inspect --raw; "" when absent).
std::string RawManifestAt(const std::string& ref);

// Blob and manifest pushes over plain HTTP to `base` ("http://HOST").
std::string PushBlobBytes(const std::string& base, const std::string& repo,
                          const std::string& bytes);
void PushManifestBytes(const std::string& base, const std::string& repo, const std::string& ref,
                       const std::string& media_type, const std::string& bytes);
// An OCI 1.1 artifact (image manifest with artifactType, empty config, one
// layer holding `content`) whose subject is `subject`; its blobs are pushed,
// the manifest bytes returned.
std::string ArtifactWithSubject(const std::string& base, const std::string& repo,
                                const std::string& artifact_type, const std::string& content,
                                const nlohmann::json& subject);
// The descriptor of an image manifest, as a subject.
nlohmann::json SubjectOfManifest(const std::string& manifest_bytes);

// Builds a small model (made in dir/model once) into docker://ref with extra
// flags; returns the digest printed ("" on failure, with a test failure).
std::string BuildSmallImage(const std::filesystem::path& dir, const std::string& ref,
                            const std::string& flags = "");

}  // namespace mc::testing
