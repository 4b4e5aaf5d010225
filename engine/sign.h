// Signing an image in a registry the way cosign does (oci/attachments.h):
// the simple-signing payload of the manifest digest, signed with the
// SigningKey, stored as one more layer of the image under the tag
// "sha256-HEX.sig" in the image's repository. Signatures already there are
// kept; signing again with the same key is a no-op for that digest (its
// existing signature verifies), as cosign's duplicate detection does.
//
// An index is signed by its own digest; with sign_all each child manifest
// is signed too. Blocking; one call at a time per destination.
#pragma once

#include <string>
#include <vector>

#include "engine/sign_key.h"
#include "oci/error.h"
#include "oci/image.h"
#include "registry/remote.h"

namespace mc::engine {

struct SignOptions {
  bool sign_all = false;  // also every child of an index
};

struct SignatureRecord {
  oci::Digest signed_digest;       // the manifest (or index) signed
  std::string tag;                 // "sha256-HEX.sig"
  oci::Digest signature_manifest;  // the .sig image's manifest after signing
  bool already_signed = false;     // a signature by this key was there already
};

// Signs `image`, which `dest`'s repository holds. The identity signed is
// dest's "registry/repository" (no tag): what containers/image's
// matchRepository and cosign verify compare.
oci::Result<std::vector<SignatureRecord>> SignImage(registry::RegistryDestination& dest,
                                                    const oci::RawManifest& image,
                                                    const SigningKey& key,
                                                    const SignOptions& options = {});

// Makes the small blob `bytes` present at `dest` (a config, a payload).
oci::Result<oci::Descriptor> PutBlobBytes(oci::ImageDestination& dest, const std::string& bytes,
                                          std::string media_type);

// publish-metadata.json's image.signatures[] entries.
nlohmann::json SignatureRecordsJson(const std::vector<SignatureRecord>& records);

}  // namespace mc::engine
