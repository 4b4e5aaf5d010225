// OCI image layout on disk (image-spec image-layout.md, protocols.md 3.8):
//   DIR/oci-layout   {"imageLayoutVersion":"1.0.0"}
//   DIR/index.json   an image index; descriptors carry org.opencontainers.image.ref.name
//   DIR/blobs/sha256/<hex>
//
// Blobs are written to DIR/blobs/sha256/.tmp-* and renamed to their digest
// only after they are complete and synced, so a crash or a full disk never
// leaves a blob under a name it does not match. A blob that already exists is
// never rewritten. index.json is replaced atomically (temp + fsync + rename)
// under an flock, so it never names a half-written image.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "oci/store.h"

namespace mc::oci {

inline constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";

// Thread guarantee: safe for concurrent use.
class LayoutDestination final : public ImageDestination {
 public:
  // Creates DIR (and the layout files) when missing. kIo on failure;
  // kInvalidInput when DIR exists and is not a layout or an empty directory.
  static Result<std::unique_ptr<LayoutDestination>> Open(const std::filesystem::path& dir);

  Result<bool> Exists(const Digest& digest) override;
  Result<std::unique_ptr<BlobWriter>> Begin(const BlobHint& hint) override;
  Result<void> PutManifest(const RawManifest& manifest,
                           const std::optional<std::string>& tag) override;
  Result<void> PutChildManifest(const RawManifest& manifest) override;
  std::string Describe() const override { return "oci:" + dir_.string(); }

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path BlobPath(const Digest& d) const;

 private:
  explicit LayoutDestination(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
  std::mutex index_mu_;
};

// Thread guarantee: safe for concurrent use.
class LayoutSource final : public ImageSource {
 public:
  // kNotFound when DIR has no index.json; kInvalidInput when it is not a layout.
  static Result<std::unique_ptr<LayoutSource>> Open(const std::filesystem::path& dir);

  // "" = the only image in index.json (error if several and none is "latest");
  // a tag = the descriptor with that ref.name; "sha256:..." = that blob.
  Result<RawManifest> GetManifest(const std::string& tag_or_digest) override;
  Result<std::unique_ptr<Reader>> OpenBlob(const Descriptor& desc) override;
  // pread-based: each reader has its own descriptor and offset.
  Result<std::unique_ptr<Reader>> OpenBlobRange(const Descriptor& desc, uint64_t offset,
                                                uint64_t length) override;
  std::string Describe() const override { return "oci:" + dir_.string(); }

 private:
  explicit LayoutSource(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

// Reads DIR/index.json.
Result<Index> ReadLayoutIndex(const std::filesystem::path& dir);

}  // namespace mc::oci
