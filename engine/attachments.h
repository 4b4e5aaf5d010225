// What belongs to an image in a registry, found and mirrored
// (oci/attachments.h has the formats):
//   - cosign's tag-named attachments of a manifest digest D: the tags
//     "sha256-HEX.sig", ".att", ".sbom" in the same repository;
//   - OCI 1.1 referrers of D: from the referrers API
//     (GET /v2/<name>/referrers/D, when the registry has it) and from the
//     fallback tag "sha256-HEX" (an index of referrers), merged by digest.
// Both recursively: a signature of an SBOM is attached to the SBOM.
//
// Mirroring keeps every manifest byte-identical, so each referrer's subject
// digest holds at the destination. A referrer is pushed by digest; when the
// destination's answer carries OCI-Subject it has indexed it (referrers API),
// otherwise the destination's fallback tag of the subject gets the referrer
// merged into its index. A referrer whose `subject` is not the manifest it
// is listed for, or whose subject the copy would not keep (an index's
// attachments when --platform picks one image of it), is kInvalidInput.
//
// Blocking; registry sources and destinations only (others have no tags to
// hold attachments: nothing is listed or copied).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/copy.h"
#include "oci/error.h"
#include "oci/image.h"
#include "oci/store.h"

namespace mc::engine {

struct Attachment {
  enum class Kind { kCosignTag, kReferrer };
  Kind kind = Kind::kReferrer;
  std::string tag;             // cosign: "sha256-HEX.sig"; "" for referrers
  oci::Descriptor descriptor;  // the attached manifest (artifactType, annotations)
  oci::Digest subject;         // the manifest it is attached to
  std::string found_by;        // "tag", "referrers-api", "fallback-tag"
  int depth = 1;               // 1: attached to a root; 2: to an attachment; …
};

struct AttachmentOptions {
  bool signatures = true;  // false: leave out .sig tags and signature referrers
  bool referrers = true;   // false: nothing at all (cosign tags nor referrers)
  int max_depth = 8;
};

// Everything attached to `roots` (recursively) at `src`, parents before
// their own attachments. An empty list for a source that is not a registry.
oci::Result<std::vector<Attachment>> ListAttachments(oci::ImageSource& src,
                                                     const std::vector<oci::Digest>& roots,
                                                     const AttachmentOptions& options = {});

struct AttachmentCopyResult {
  size_t cosign_tags = 0;        // tag-named attachments copied
  size_t referrers = 0;          // referrers copied
  size_t fallback_updates = 0;   // fallback-tag indexes written at the destination
  bool destination_api = false;  // the destination indexed a referrer itself (OCI-Subject)
  bool skipped = false;          // source or destination is not a registry
};

// Mirrors what is attached to the image that CopyImage copied: `source_top`
// is the digest of the manifest the source reference named, `copied` the top
// manifest stored at the destination (they differ when a platform was
// picked from an index). Blobs go through CopyBlob with `copy_options`.
oci::Result<AttachmentCopyResult> CopyAttachments(
    oci::ImageSource& src, const oci::Digest& source_top, const oci::RawManifest& copied,
    oci::ImageDestination& dest, const AttachmentOptions& options, const CopyOptions& copy_options);

// kInvalidInput when something is attached to the index `index_digest` at
// `src` (a --platform copy would drop their subject): checked before
// copying, so nothing is written. Nothing to check for a non-registry source
// or with options.referrers false.
oci::Result<void> RefuseAttachedIndex(oci::ImageSource& src, const oci::Digest& index_digest,
                                      const AttachmentOptions& options);

// inspect --referrers: {"Digest": top, "Attachments": [{"type", "found", "tag",
// "digest", "mediaType", "artifactType", "subject", "annotations"}, …]}.
nlohmann::ordered_json AttachmentsJson(const oci::Digest& top,
                                       const std::vector<Attachment>& attachments);

}  // namespace mc::engine
