// skopeo's directory transport (containers-transports(5) "dir:PATH"):
//   DIR/version                "Directory Transport Version: 1.1\n"
//   DIR/manifest.json          the top manifest (an image, or an index)
//   DIR/<hex>.manifest.json    the images of an index, by digest
//   DIR/<hex>                  blobs (layers, configs), named by their sha256 hex
//
// A dir: holds one image and has no tags. Blobs are written to DIR/.tmp-* and
// renamed to their digest once complete; manifests are replaced atomically.
// Like skopeo, opening an existing dir: directory as a destination empties it
// first (a directory that is not empty and has no version file is refused).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "oci/store.h"

namespace mc::oci {

inline constexpr std::string_view kDirVersion = "Directory Transport Version: 1.1\n";

// Thread guarantee: safe for concurrent use.
class DirDestination final : public ImageDestination {
 public:
  // Creates DIR when missing. kInvalidInput when DIR is not a directory or is
  // a non-empty directory without a version file; kIo on failure.
  static Result<std::unique_ptr<DirDestination>> Open(const std::filesystem::path& dir);

  Result<bool> Exists(const Digest& digest) override;
  Result<std::unique_ptr<BlobWriter>> Begin(const BlobHint& hint) override;
  // The tag is ignored (dir: has none): the manifest becomes manifest.json.
  Result<void> PutManifest(const RawManifest& manifest,
                           const std::optional<std::string>& tag) override;
  // An image of an index: <hex>.manifest.json.
  Result<void> PutChildManifest(const RawManifest& manifest) override;
  std::string Describe() const override { return "dir:" + dir_.string(); }

  const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit DirDestination(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

// Thread guarantee: safe for concurrent use.
class DirSource final : public ImageSource {
 public:
  // kNotFound when DIR does not exist; kInvalidInput when it has no version file.
  static Result<std::unique_ptr<DirSource>> Open(const std::filesystem::path& dir);

  // "" = manifest.json; "sha256:..." = that image of the index (or the top
  // manifest when it has that digest); kInvalidInput for a tag.
  Result<RawManifest> GetManifest(const std::string& tag_or_digest) override;
  Result<std::unique_ptr<Reader>> OpenBlob(const Descriptor& desc) override;
  std::string Describe() const override { return "dir:" + dir_.string(); }

 private:
  explicit DirSource(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

}  // namespace mc::oci
