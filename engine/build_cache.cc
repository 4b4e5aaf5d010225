#include "engine/build_cache.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "registry/log.h"

namespace mc::engine {
namespace fs = std::filesystem;
using nlohmann::json;

BuildCache::BuildCache(const std::string& cache_dir, const std::string& model_dir) {
  if (!cache_dir.empty()) {
    dir_ = cache_dir;
    return;
  }
  fs::path m = fs::absolute(model_dir).lexically_normal();
  if (m.filename().empty()) m = m.parent_path();
  dir_ = m.parent_path() / ".mc-engine-cache" / m.filename();
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
  return oci::Digest::Of(key.dump()).hex();
}

std::optional<std::vector<BuiltLayer>> BuildCache::Lookup(const std::string& key) const {
  if (key.empty()) return std::nullopt;
  auto bytes = oci::ReadFileToString(dir_ / "state.json", 16 << 20);
  if (!bytes) return std::nullopt;
  json j = json::parse(*bytes, nullptr, false);
  if (!j.is_object() || !j.contains("builds") || !j["builds"].contains(key)) return std::nullopt;
  std::vector<BuiltLayer> layers;
  for (const auto& l : j["builds"][key]["layers"]) {
    BuiltLayer b;
    auto d = oci::DescriptorFromJson(l["descriptor"]);
    auto diff = oci::Digest::Parse(l.value("diffId", ""));
    if (!d || !diff) return std::nullopt;
    b.descriptor = *d;
    b.diff_id = *diff;
    b.tar_size = l.value("tarSize", uint64_t{0});
    b.file_bytes = l.value("fileBytes", uint64_t{0});
    b.files = l.value("files", size_t{0});
    layers.push_back(std::move(b));
  }
  return layers;
}

void BuildCache::Store(const std::string& key, const std::vector<BuiltLayer>& layers) const {
  if (key.empty()) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  json j = json::object();
  if (auto bytes = oci::ReadFileToString(dir_ / "state.json", 16 << 20)) {
    j = json::parse(*bytes, nullptr, false);
    if (!j.is_object()) j = json::object();
  }
  json ls = json::array();
  for (const auto& l : layers) {
    ls.push_back({{"descriptor", oci::DescriptorToJson(l.descriptor)},
                  {"diffId", l.diff_id.String()},
                  {"tarSize", l.tar_size},
                  {"fileBytes", l.file_bytes},
                  {"files", l.files}});
  }
  // Keep the state small: the last few builds are enough for re-runs.
  if (j.contains("builds") && j["builds"].size() > 16) j["builds"] = json::object();
  j["builds"][key] = {{"layers", ls}};
  auto r = oci::WriteFileAtomic(dir_ / "state.json", j.dump(1));
  if (!r) registry::Log()->debug("build cache not saved: {}", r.error().message);
}

}  // namespace mc::engine
