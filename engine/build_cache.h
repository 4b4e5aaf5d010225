// The build state file: remembers, per model file list (names, sizes, mtimes,
// modes) and layer-relevant build options, the layers that were built. A re-run
// whose layers already exist at the destination then skips reading the model
// at all (design.md "Re-runs, resume").
//
// The file lives in --cache-dir (default: DIR/../.mc-engine-cache/<basename of DIR>)
// and is advisory: when it cannot be read or written we build normally. A
// file or entry of the wrong shape (not JSON, wrong types, missing fields)
// is ignored with a warning naming it and rewritten by the next Store; every
// field is read with checked accessors, so no JSON exception comes out.
// Thread guarantee: one thread at a time.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/beneath.h"
#include "engine/build.h"

namespace mc::engine {

class BuildCache {
 public:
  // cache_dir "" = the default beside model_dir.
  BuildCache(const std::string& cache_dir, const std::string& model_dir);

  // Key of the layers of `entries` built with `options`; empty when an entry
  // has no source file (streamed inputs are not cached).
  std::string Key(const std::vector<oci::TarEntry>& entries, const BuildOptions& options) const;

  // The layers stored under `key`; nullopt when none or malformed (warned).
  std::optional<std::vector<BuiltLayer>> Lookup(const std::string& key) const;
  void Store(const std::string& key, const std::vector<BuiltLayer>& layers) const;

  // --cache-dir as given, or the model's parent with ".mc-engine-cache/<name>"
  // below it (opened without following links: beneath.h).
  const StateDir& dir() const { return dir_; }

 private:
  static constexpr const char* kStateFile = "state.json";
  // state.json as an object whose "builds", if present, is an object; {} when
  // missing or malformed (warned about when `warn`).
  nlohmann::json Load(bool warn) const;

  StateDir dir_;
};

}  // namespace mc::engine
