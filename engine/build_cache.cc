#include "engine/build_cache.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "engine/beneath.h"
#include "registry/log.h"

namespace mc::engine {
namespace fs = std::filesystem;
using nlohmann::json;

BuildCache::BuildCache(const std::string& cache_dir, const std::string& model_dir) {
  if (!cache_dir.empty()) {
    dir_.root = cache_dir;
    return;
  }
  fs::path m = fs::absolute(model_dir).lexically_normal();
  if (m.filename().empty()) m = m.parent_path();
  dir_.root = m.parent_path();
  dir_.rel = ".mc-engine-cache/" + m.filename().string();
}

std::string BuildCache::Key(const std::vector<oci::TarEntry>& entries,
                            const BuildOptions& o) const {
  json list = json::array();
  for (const auto& e : entries) {
    json row = {e.name, static_cast<int>(e.type), e.size, e.mode, e.link_target};
    if (e.type == oci::TarEntry::Type::kFile) {
      if (e.source.empty()) return "";
      struct stat st;
      if (::stat(e.source.c_str(), &st) != 0) return "";
      row.push_back(static_cast<int64_t>(st.st_mtim.tv_sec));
      row.push_back(static_cast<int64_t>(st.st_mtim.tv_nsec));
      row.push_back(static_cast<uint64_t>(st.st_ino));
    }
    list.push_back(std::move(row));
  }
  json key = {{"v", 1},
              {"entries", list},
              {"compression", std::string(oci::CompressionName(o.compression))},
              {"level", o.compression_level},
              {"maxLayerSize", o.max_layer_size},
              {"layerPerFile", o.layer_per_file},
              {"mtime", o.mtime},
              {"shard", oci::kShardSize}};
  // A ModelPack build lays the same files out differently (other layers,
  // other names, other media types): it must never reuse a modelcar's layers.
  // Modelcar keys stay as they were, so existing state files stay valid.
  if (o.kind == ArtifactKind::kModelPack) key["type"] = "modelpack";
  return oci::Digest::Of(key.dump()).hex();
}

namespace {

bool GetUint(const json& j, const char* key, uint64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return false;
  out = it->get<uint64_t>();
  return true;
}

// The layers of one build entry; "" in `why` when the shape holds.
std::optional<std::vector<BuiltLayer>> ParseLayers(const json& entry, std::string& why) {
  auto ls = entry.is_object() ? entry.find("layers") : entry.end();
  if (!entry.is_object() || ls == entry.end() || !ls->is_array() || ls->empty()) {
    why = "its entry has no \"layers\" array";
    return std::nullopt;
  }
  std::vector<BuiltLayer> layers;
  for (const auto& l : *ls) {
    if (!l.is_object()) {
      why = "a layer is not an object";
      return std::nullopt;
    }
    auto desc = l.find("descriptor");
    auto d = desc == l.end() ? oci::Result<oci::Descriptor>(
                                   oci::Fail(oci::ErrorCode::kInvalidInput, "no \"descriptor\""))
                             : oci::DescriptorFromJson(*desc);
    auto diff_it = l.find("diffId");
    auto diff = diff_it != l.end() && diff_it->is_string()
                    ? oci::Digest::Parse(diff_it->get_ref<const std::string&>())
                    : oci::Result<oci::Digest>(
                          oci::Fail(oci::ErrorCode::kInvalidInput, "no string \"diffId\""));
    BuiltLayer b;
    uint64_t files = 0;
    if (!d || !diff || !GetUint(l, "tarSize", b.tar_size) ||
        !GetUint(l, "fileBytes", b.file_bytes) || !GetUint(l, "files", files)) {
      why = "a layer is malformed (" +
            (!d      ? d.error().message
             : !diff ? diff.error().message
                     : std::string("tarSize, fileBytes or files is not an unsigned number")) +
            ")";
      return std::nullopt;
    }
    b.descriptor = *d;
    b.diff_id = *diff;
    b.files = static_cast<size_t>(files);
    layers.push_back(std::move(b));
  }
  return layers;
}

}  // namespace

json BuildCache::Load(bool warn) const {
  fs::path file = dir_.path() / kStateFile;
  // Nothing below the cache directory is followed (beneath.h).
  auto root = dir_.Open(/*create=*/false);
  auto bytes = root ? ReadFileAt(*root, kStateFile, 16 << 20)
                    : oci::Result<std::string>(std::unexpected(root.error()));
  if (!bytes) {
    if (warn && bytes.error().code != oci::ErrorCode::kNotFound) {
      registry::Log()->warn("ignoring the build cache {}: {}; it will be rewritten", file.string(),
                            bytes.error().message);
    }
    return json::object();
  }
  json j = json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  std::string why;
  if (j.is_discarded()) {
    why = "not valid JSON";
  } else if (!j.is_object()) {
    why = "not a JSON object";
  } else if (auto b = j.find("builds"); b != j.end() && !b->is_object()) {
    why = "\"builds\" is not an object";
  }
  if (!why.empty()) {
    if (warn) {
      registry::Log()->warn("ignoring the build cache {}: {}; it will be rewritten", file.string(),
                            why);
    }
    return json::object();
  }
  return j;
}

std::optional<std::vector<BuiltLayer>> BuildCache::Lookup(const std::string& key) const {
  if (key.empty()) return std::nullopt;
  json j = Load(/*warn=*/true);
  auto builds = j.find("builds");
  if (builds == j.end()) return std::nullopt;
  auto entry = builds->find(key);
  if (entry == builds->end()) return std::nullopt;
  std::string why;
  auto layers = ParseLayers(*entry, why);
  if (!layers) {
    registry::Log()->warn("ignoring the build cache entry {} in {}: {}; it will be rewritten",
                          key.substr(0, 12), (dir_.path() / kStateFile).string(), why);
  }
  return layers;
}

void BuildCache::Store(const std::string& key, const std::vector<BuiltLayer>& layers) const {
  if (key.empty()) return;
  json j = Load(/*warn=*/false);  // Lookup already said what was wrong
  json ls = json::array();
  for (const auto& l : layers) {
    ls.push_back({{"descriptor", oci::DescriptorToJson(l.descriptor)},
                  {"diffId", l.diff_id.String()},
                  {"tarSize", l.tar_size},
                  {"fileBytes", l.file_bytes},
                  {"files", l.files}});
  }
  json& builds = j["builds"];  // Load guarantees an object or nothing
  if (!builds.is_object()) builds = json::object();
  // Keep the state small: the last few builds are enough for re-runs.
  if (builds.size() > 16) builds = json::object();
  builds[key] = {{"layers", ls}};
  auto root = dir_.Open(/*create=*/true);
  auto r = root ? WriteFileAtomicAt(*root, kStateFile, j.dump(1))
                : oci::Result<void>(std::unexpected(root.error()));
  if (!r) registry::Log()->warn("build cache not saved: {}", r.error().message);
}

}  // namespace mc::engine
