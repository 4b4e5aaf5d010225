// Media types of the OCI image spec and Docker schema 2 (protocols.md 3.1),
// and of CNCF ModelPack artifacts (modelpack/model-spec specs-go/v1/mediatype.go).
#pragma once

#include <string>
#include <string_view>

namespace mc::oci::media {

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kOciEmpty = "application/vnd.oci.empty.v1+json";
inline constexpr std::string_view kOciLayoutHeader = "application/vnd.oci.layout.header.v1+json";

inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerLayerForeignGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

// CNCF ModelPack. Layer media types are "application/vnd.cncf.model.<kind>.v1.tar"
// with "+gzip"/"+zstd" variants (oci/modelpack.h builds them). Before
// 2025-06-30 the prefix was "application/vnd.cnai.model."; we write the
// current names and read both.
inline constexpr std::string_view kModelPackManifest =
    "application/vnd.cncf.model.manifest.v1+json";
inline constexpr std::string_view kModelPackConfig = "application/vnd.cncf.model.config.v1+json";

// True for a ModelPack artifact type or config media type, current or legacy
// ("application/vnd.cnai.model.manifest.v1+json").
inline bool IsModelPackManifest(std::string_view artifact_type) {
  return artifact_type == kModelPackManifest ||
         artifact_type == "application/vnd.cnai.model.manifest.v1+json";
}
inline bool IsModelPackConfig(std::string_view mt) {
  return mt == kModelPackConfig || mt == "application/vnd.cnai.model.config.v1+json";
}

// The Accept header for manifest requests: everything we can parse.
inline constexpr std::string_view kManifestAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

inline bool IsIndex(std::string_view mt) { return mt == kOciIndex || mt == kDockerManifestList; }
inline bool IsManifest(std::string_view mt) { return mt == kOciManifest || mt == kDockerManifest; }

// The OCI equivalent of a Docker layer or config media type (same bytes,
// same digest); other types are returned unchanged.
inline std::string ToOci(std::string_view mt) {
  if (mt == kDockerLayerGzip) return std::string(kOciLayerGzip);
  if (mt == kDockerConfig) return std::string(kOciConfig);
  if (mt == kDockerManifest) return std::string(kOciManifest);
  if (mt == kDockerManifestList) return std::string(kOciIndex);
  return std::string(mt);
}

}  // namespace mc::oci::media
