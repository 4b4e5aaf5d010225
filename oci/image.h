// Image metadata: descriptors, manifests, indexes and configs.
//
// These are plain values. We parse manifests into structs for reading, but a
// manifest we received is always forwarded as the exact bytes we got: its
// digest is over those bytes (protocols.md 1.5). Manifests we create are
// serialised once, with sorted keys, and hashed after serialisation.
//
// Image configs stay nlohmann::json so unknown fields of a base config survive.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "oci/error.h"

namespace mc::oci {

struct Platform {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
  std::string os_version;

  // "linux/amd64" or "linux/arm64/v8".
  std::string String() const;
  // Parses "os/arch[/variant]". kInvalidInput on anything else.
  static Result<Platform> Parse(std::string_view s);
  // True when `other` satisfies this requested platform (an empty variant matches any).
  bool Matches(const Platform& other) const;
  friend bool operator==(const Platform&, const Platform&) = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  std::vector<std::string> urls;
  std::optional<std::string> artifact_type;

  friend bool operator==(const Descriptor&, const Descriptor&) = default;
};

struct Manifest {
  int schema_version = 2;
  std::string media_type{"application/vnd.oci.image.manifest.v1+json"};
  std::optional<std::string> artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
};

struct Index {
  int schema_version = 2;
  std::string media_type{"application/vnd.oci.image.index.v1+json"};
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
};

nlohmann::json DescriptorToJson(const Descriptor& d);
Result<Descriptor> DescriptorFromJson(const nlohmann::json& j);

// Serialisation is canonical (sorted keys, no whitespace): the same value gives
// the same bytes, hence the same digest, on every run.
std::string SerializeManifest(const Manifest& m);
std::string SerializeIndex(const Index& i);
// Parse with a clear kInvalidInput error; `what` names the source for messages.
Result<Manifest> ParseManifest(std::string_view bytes, std::string_view what = "manifest");
Result<Index> ParseIndex(std::string_view bytes, std::string_view what = "index");
Result<nlohmann::json> ParseJson(std::string_view bytes, std::string_view what);

// The media type of manifest bytes: the `mediaType` field when present, else
// inferred from the shape (`manifests` → OCI index, `layers` → OCI manifest).
Result<std::string> DetectManifestMediaType(std::string_view bytes);

// Canonical JSON bytes of any value (sorted keys, no whitespace).
std::string CanonicalJson(const nlohmann::json& j);

// A raw manifest (or index) as stored: its exact bytes plus what we know of it.
struct RawManifest {
  std::string bytes;
  std::string media_type;
  Digest digest;  // sha256 of `bytes`

  static RawManifest FromBytes(std::string bytes, std::string media_type);
  Descriptor ToDescriptor() const;
};

// RFC 3339 UTC time of a Unix timestamp, whole seconds, as Go's time.Time
// marshals it ("1970-01-01T00:00:00Z"): image config `created`, annotations.
std::string Rfc3339(int64_t unix_seconds);

}  // namespace mc::oci
