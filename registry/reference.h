// Image references: `[host[:port]/]path[:tag][@digest]`, parsed and
// normalised like distribution's reference grammar (ParseNormalizedNamed).
//
//   "ubuntu"                      → docker.io/library/ubuntu
//   "quay.io/org/model:v1"        → registry quay.io, repository org/model, tag v1
//   "localhost:5000/m@sha256:…"   → registry localhost:5000, digest
//   "[::1]:5000/m:t"              → IPv6 literal registry
//
// The first path component is a registry when it contains '.' or ':', is
// "localhost", or is a bracketed IPv6 literal; otherwise the reference is on
// Docker Hub (docker.io, API host registry-1.docker.io) and a single-component
// name gets the "library/" prefix. Repository components follow protocols.md
// 1.1 (lowercase); tags are `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`; `host/name`
// is at most 255 characters. Errors are kInvalidInput and quote the input.
//
// Value type; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/error.h"

namespace mc::registry {

class Reference {
 public:
  // Parses a reference without a transport prefix ("docker://" is stripped
  // by the caller).
  static oci::Result<Reference> Parse(std::string_view text);

  // "docker.io", "quay.io", "127.0.0.1:5000", "[::1]:5000".
  const std::string& registry() const { return registry_; }
  // "library/ubuntu", "org/model".
  const std::string& repository() const { return repository_; }
  const std::optional<std::string>& tag() const { return tag_; }
  const std::optional<oci::Digest>& digest() const { return digest_; }

  // The host the API is served on: registry-1.docker.io for docker.io.
  std::string ApiHost() const;
  // The host without port, lower case, IPv6 without brackets.
  std::string Hostname() const;
  // "registry/repository".
  std::string Name() const { return registry_ + "/" + repository_; }
  // What a manifest request names: the digest when given, else the tag,
  // else "latest".
  std::string Identifier() const;
  // Canonical form: "registry/repository[:tag][@digest]".
  std::string String() const;
  // Token scope for this repository: "repository:org/model:pull,push".
  std::string Scope(std::string_view actions) const;

  // Copies with another tag / digest / repository (same registry).
  Reference WithTag(std::string tag) const;
  Reference WithDigest(oci::Digest digest) const;
  Reference WithRepository(std::string repository) const;

  friend bool operator==(const Reference&, const Reference&) = default;

 private:
  std::string registry_;
  std::string repository_;
  std::optional<std::string> tag_;
  std::optional<oci::Digest> digest_;
};

// Checks a repository path ("org/model") against the name grammar.
oci::Result<void> ValidateRepository(std::string_view repository);
// Checks a tag against the tag grammar.
bool IsValidTag(std::string_view tag);

}  // namespace mc::registry
