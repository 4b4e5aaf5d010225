// `inspect`'s summary of an image, in the shape of `skopeo inspect`'s JSON
// (field names, order, and values as skopeo fills them), so scripts written
// for skopeo read ours unchanged:
//   Name          docker://: HOST/REPO (no tag); oci: omitted
//   Digest        digest of the manifest REF names (an index's, for a multi-arch image)
//   RepoTags      docker://: every tag of the repository (tags/list, all pages;
//                 [] with a warning when the registry refuses to list); oci: []
//   Created       the config's created time (RFC 3339 as Go prints it), or null
//   DockerVersion the config's docker_version ("" for OCI images)
//   Labels        config.Labels, or null
//   Architecture, Variant (only when set), Os
//   Layers        the layer digests; LayersData: MIMEType, Digest, Size, Annotations
//   Env           config.Env, or null
// For an index, the image of `platform` is summarised (skopeo takes the
// machine's platform; our default linux/amd64 is the same on the machines we run on).
// Blocking; one thread at a time per source.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "engine/go_template.h"
#include "engine/image_ref.h"
#include "oci/error.h"
#include "oci/image.h"

namespace mc::engine {

// list_tags false: RepoTags is [] without asking the registry (skopeo's --no-tags).
oci::Result<nlohmann::ordered_json> InspectSummary(OpenedSource& src, const ImageLocation& loc,
                                                   const std::string& platform,
                                                   bool list_tags = true);

// The image `top` (fetched from `src`) stands for on `platform`
// ("os/arch[/variant]"): `top` itself, or the matching child of an index
// (kNotFound naming the reference otherwise).
oci::Result<oci::RawManifest> ManifestForPlatform(OpenedSource& src, const oci::RawManifest& top,
                                                  const ImageLocation& loc,
                                                  const std::string& platform);

// How --format templates read the summary (Labels and Annotations are maps,
// Created is a time).
const TemplateSchema& InspectSummarySchema();

}  // namespace mc::engine
