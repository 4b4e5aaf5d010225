// What is attached to an image: cosign's tag-named attachments and OCI 1.1
// referrers (formats only; registry/ fetches them, engine/ copies them).
//
// cosign stores a signature of the manifest sha256:HEX as an image under the
// tag "sha256-HEX.sig" in the same repository (attestations ".att", SBOMs
// ".sbom"): an OCI manifest whose layers are "simple signing" payloads
//   {"critical":{"identity":{"docker-reference":REPO},
//                "image":{"docker-manifest-digest":DIGEST},
//                "type":"cosign container image signature"},"optional":null}
// (media type application/vnd.dev.cosign.simplesigning.v1+json), each with the
// base64 DER signature in the layer annotation dev.cosignproject.cosign/signature,
// and a config as go-containerregistry's empty image has it (rootfs.diff_ids =
// the payload digests, one empty history entry per layer).
//
// OCI 1.1 referrers carry `subject`; a registry without the referrers API
// lists them in an image index under the fallback tag "sha256-HEX"
// (image-spec/distribution-spec: algorithm cut to 32 characters, hex to 64).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "oci/error.h"
#include "oci/image.h"

namespace mc::oci::attach {

inline constexpr std::string_view kSimpleSigning =
    "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr std::string_view kSignatureAnnotation = "dev.cosignproject.cosign/signature";
inline constexpr std::string_view kSignatureType = "cosign container image signature";
// Artifact types that are signatures (dropped by --remove-signatures).
inline constexpr std::string_view kCosignSigArtifact =
    "application/vnd.dev.cosign.artifact.sig.v1+json";
inline constexpr std::string_view kNotarySignature = "application/vnd.cncf.notary.signature";
inline constexpr std::string_view kSigstoreBundlePrefix = "application/vnd.dev.sigstore.bundle";

// "sha256-HEX": the referrers fallback tag and the stem of cosign's tags.
std::string DigestTag(const Digest& d);
// The cosign suffixes, in the order they are copied.
inline const std::vector<std::string>& CosignSuffixes() {
  static const std::vector<std::string> s = {".sig", ".att", ".sbom"};
  return s;
}

// The simple-signing payload for `docker_reference` (HOST/REPO, no tag) and
// `digest`, as cosign writes it (compact JSON, "optional": null).
std::string SimpleSigningPayload(const std::string& docker_reference, const Digest& digest);

// A cosign signature image: its config bytes and manifest.
struct SignatureImage {
  std::string config;  // JSON bytes
  Manifest manifest;
};

// `existing` (nullopt: none yet) plus one more signature layer: the payload
// blob `payload` with `signature_b64` in its annotation. Existing layers and
// annotations stay as they were; the config gets the payload's diff_id and a
// history entry.
Result<SignatureImage> AppendSignature(const std::optional<Manifest>& existing,
                                       const std::optional<std::string>& existing_config,
                                       const Descriptor& payload, const std::string& signature_b64);

// A cosign tag (.sig, .att) the destination already holds with other content
// (a mirror's own signatures): `dest` plus the layers of `src` it does not
// have (same digest and annotations), config as AppendSignature keeps it;
// nullopt when `dest` has every layer of `src` already.
Result<std::optional<SignatureImage>> MergeSignatureImages(
    const Manifest& dest, const std::optional<std::string>& dest_config, const Manifest& src);

// The `subject` of a manifest or index (nullopt when it has none or is not JSON).
std::optional<Descriptor> SubjectOf(std::string_view manifest_bytes);
// What a referrers index lists for a manifest: its media type, digest, size,
// artifactType (the manifest's artifactType, else its config's media type)
// and its annotations.
Result<Descriptor> ReferrerDescriptor(const RawManifest& manifest);
// True when a referrer of this artifact type is a signature.
bool IsSignatureType(std::string_view artifact_type);

// An index of `referrers` (the fallback tag's content and the referrers API's answer).
std::string ReferrersIndex(const std::vector<Descriptor>& referrers);
// `existing` (an index's bytes, or "" for none) plus the descriptors of
// `add` whose digest it does not list yet, in order. Unchanged bytes when
// nothing is new; `changed` says which.
Result<std::string> MergeReferrersIndex(std::string_view existing,
                                        const std::vector<Descriptor>& add, bool* changed);

}  // namespace mc::oci::attach
