// The pieces of build.cc that the ModelPack builder (modelpack.cc) shares:
// the parallel layer builder with its cache-backed resume, small blobs, and
// what a model directory's download state says about its source.
// Not part of the engine's interface.
#pragma once

#include <string>
#include <vector>

#include "engine/build.h"
#include "engine/build_cache.h"

namespace mc::engine {

// Builds one layer per group (`parallel_layers` at a time) into `sink`;
// media_types[i], when given, is layer i's media type. With a cache and a key,
// uploads resume across runs. Errors name the layer ("layer 2 of 5: …").
oci::Result<std::vector<BuiltLayer>> BuildModelLayers(
    const std::vector<std::vector<oci::TarEntry>>& groups, const ModelInput& input,
    const BuildOptions& o, oci::BlobSink& sink, Progress* progress, const BuildCache* cache,
    const std::string& key, const std::vector<std::string>& media_types = {});

// Stores a small blob (config) unless the sink has it.
oci::Result<oci::Descriptor> PutSmallBlob(oci::BlobSink& sink, const std::string& bytes,
                                          std::string media_type);

// The model's name for annotations: the last path component of the source.
std::string ModelTitle(const ModelInput& input);

// Drops DIR/.mc-download (mc-engine download's state) from `entries` (named
// under `prefix`) and takes the hf:// source and pinned commit it records
// into `in`.
oci::Result<void> SkipDownloadState(std::vector<oci::TarEntry>& entries, const std::string& prefix,
                                    ModelInput& in);

// `build --type modelpack` (engine/modelpack.cc).
oci::Result<BuildResult> BuildModelPack(const ModelInput& input, const BuildOptions& options,
                                        oci::ImageDestination& dest, Progress* progress);

}  // namespace mc::engine
