// An in-memory ImageDestination for unit tests (like ninja's VirtualFileSystem).
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "oci/store.h"

namespace mc::testing {

class MemDestination final : public oci::ImageDestination {
 public:
  oci::Result<bool> Exists(const oci::Digest& d) override;
  oci::Result<std::unique_ptr<oci::BlobWriter>> Begin(const oci::BlobHint& hint) override;
  oci::Result<void> PutManifest(const oci::RawManifest& m,
                                const std::optional<std::string>& tag) override;
  std::string Describe() const override { return "mem:"; }

  std::map<oci::Digest, std::string> blobs;           // guarded by mu
  std::map<std::string, oci::RawManifest> tags;       // guarded by mu
  std::map<oci::Digest, oci::RawManifest> manifests;  // guarded by mu
  int begins = 0;
  std::mutex mu;
};

}  // namespace mc::testing
