// Building a modelcar image: model files → layer(s) → config → manifest → destination.
//
// The model comes either from a directory (ScanDirectory) or from any list of
// tar entries whose contents a ContentOpener streams (a Hugging Face download
// feeding the tar with nothing staged on disk). Layers are built by the
// streaming pipeline of layer_builder.h straight into the destination's
// BlobSink: one read of every byte, bounded memory, both digests in one pass.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/progress.h"
#include "oci/compress.h"
#include "oci/image.h"
#include "oci/store.h"
#include "oci/tar.h"

namespace mc::engine {

// Streams the content of an entry that has no `source` path. Called from the
// tar thread, in entry order; the Reader must yield exactly entry.size bytes
// (and should verify them, e.g. against a known sha256).
using ContentOpener =
    std::function<oci::Result<std::unique_ptr<oci::Reader>>(const oci::TarEntry& entry)>;

struct ModelInput {
  // Either a directory ...
  std::string dir;
  // ... or ready entries (names already under the prefix, sorted, parents first)
  // with an opener for their contents.
  std::vector<oci::TarEntry> entries;
  ContentOpener content;
  // For annotations: "hf://org/name" or the directory, and a revision if known.
  std::string source;
  std::string revision;
  // The revision the user asked for when it is not the commit itself
  // ("hf://org/name@v1.0" → "v1.0"); the ModelPack descriptor.version.
  std::string version;
  // Reads `length` bytes at `offset` of an entry without `source` (an hf://
  // file), for the few headers a ModelPack config is filled from; may be empty.
  std::function<oci::Result<std::string>(const oci::TarEntry& entry, uint64_t offset,
                                         uint64_t length)>
      peek;
};

// What `build` makes: a KServe modelcar (an image whose layer holds the model
// under --prefix) or a CNCF ModelPack artifact (engine/modelpack.h).
enum class ArtifactKind { kModelcar, kModelPack };

struct BuildOptions {
  ArtifactKind kind = ArtifactKind::kModelcar;
  // ModelPack: descriptor.name ("" = the source's last path component).
  std::string name;
  std::string prefix = "/models";
  // Pack what symlinks leaving the model directory point to instead of
  // refusing them (oci::ScanOptions::follow_symlinks).
  bool follow_symlinks = false;
  oci::Compression compression = oci::Compression::kGzip;
  int compression_level = -1;
  int jobs = 0;  // 0 = number of CPUs
  uint64_t max_layer_size = 0;
  bool layer_per_file = false;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  int64_t mtime = 0;  // SOURCE_DATE_EPOCH or 0
  oci::Platform platform;
  // --platform all: one manifest per platform of a multi-arch base, all sharing
  // the model layers, pushed as an index.
  bool all_platforms = false;
  bool strict = false;  // modelcar contract violations are errors, not warnings
  // config.User: --user (ParseUser's result); "" = the base's User, or
  // kDefaultUser (builtin_base.h) when the base sets none.
  std::string user;
  // Base image: nullptr = scratch. The source to read the base from, and the
  // tag or digest within it.
  oci::ImageSource* base = nullptr;
  std::string base_ref;   // tag or digest in `base`; "" = its default
  std::string base_name;  // for messages ("docker.io/library/busybox:1", "oci:DIR:TAG")
  // org.opencontainers.image.base.name: the registry reference of a docker://
  // base; "" for local and built-in bases (a local path would make the image
  // digest depend on where the base sits).
  std::string base_annotation;
  // The base is the built-in one (builtin_base.h): no base.digest annotation
  // (its manifest is stored nowhere) and messages name it so.
  bool base_builtin = false;
  // Repository on the destination's registry to mount base blobs from (same host only).
  std::optional<std::string> base_mount_from;
  // State file directory for re-runs ("" = beside the model dir); use_cache off = always build.
  std::string cache_dir;
  bool use_cache = true;
  // Layers built at once when there are several (each uses `jobs` compressors).
  int parallel_layers = 2;
  // Tag at the destination (nullopt: push by digest only).
  std::optional<std::string> tag;
};

struct BuiltLayer {
  oci::Descriptor descriptor;  // compressed digest, size, media type
  oci::Digest diff_id;         // sha256 of the uncompressed tar
  uint64_t tar_size = 0;
  uint64_t file_bytes = 0;  // model bytes in this layer
  size_t files = 0;
};

struct BuildResult {
  oci::RawManifest manifest;       // the image (or index with --platform all)
  std::vector<BuiltLayer> layers;  // model layers only
  oci::Descriptor config;
  size_t files = 0;
  uint64_t bytes = 0;
  std::vector<std::string> warnings;  // modelcar contract warnings
  bool from_cache = false;            // layers reused without reading the model
};

// Checks a --user value: "UID" or "UID:GID", decimal, each at most
// 4294967294 (the largest Linux id but -1). Returns it as config.User takes it;
// kInvalidInput (one line naming --user and the form) otherwise.
oci::Result<std::string> ParseUser(std::string_view value);

// Builds and stores the image at `dest`. Blobs first, config next, manifest last.
oci::Result<BuildResult> BuildImage(const ModelInput& input, const BuildOptions& options,
                                    oci::ImageDestination& dest, Progress* progress = nullptr);

struct LayerBuildOptions {
  oci::Compression compression = oci::Compression::kGzip;
  int compression_level = -1;
  int jobs = 0;
  int64_t mtime = 0;
  ContentOpener content;  // for entries without `source`
  std::shared_ptr<ProgressTask> progress;
  // The layer's media type; "" = the OCI layer type of `compression`.
  std::string media_type;
  // Where a resumable sink keeps the upload session across runs (BlobHint::resume).
  std::shared_ptr<oci::ResumeSlot> resume;
};

// The layer pipeline: tar → shard → compress (jobs threads) → reorder → sink,
// with the diff_id hashed over the tar and the digest over the output.
// At most 2 × jobs shards are in flight, which bounds memory.
oci::Result<BuiltLayer> BuildLayer(const std::vector<oci::TarEntry>& entries,
                                   const LayerBuildOptions& options, oci::BlobSink& sink);

}  // namespace mc::engine
