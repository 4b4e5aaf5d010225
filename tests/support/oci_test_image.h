// A two-platform OCI image written by hand for copy tests: layer tars made
// by GNU tar + gzip (not by mc-engine, so the engine is tested against
// another tool's output), configs and manifests as JSON files, an index with
// linux/amd64 and linux/arm64 children that share the model layer.
#pragma once

#include <filesystem>
#include <map>
#include <string>

namespace mc::testing {

struct TestImage {
  std::string index_digest;                     // "sha256:..." of index.json's image
  std::map<std::string, std::string> children;  // "amd64"/"arm64" → manifest digest
  std::string shared_layer;                     // digest of the model layer
  // Files of the model layer: path inside the image (under models/) → content.
  std::map<std::string, std::string> model_files;
};

// Writes an OCI layout at `dir` tagged `tag` whose model layer holds
// `model_bytes` of random data (incompressible, so the blob is that large)
// plus a small text file. Returns false (with a message in *error) when
// tar/gzip fail.
bool WriteTwoPlatformLayout(const std::filesystem::path& dir, const std::string& tag,
                            size_t model_bytes, TestImage* image, std::string* error);

// Unpacks every layer (gzip tar) of a `skopeo copy ... dir:DIR` output into
// `out` with GNU tar, in manifest order. False with a message on failure.
bool UnpackSkopeoDir(const std::filesystem::path& dir, const std::filesystem::path& out,
                     std::string* error);

}  // namespace mc::testing
