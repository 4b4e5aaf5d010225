// `build --type modelpack`: a CNCF ModelPack artifact (modelpack/model-spec).
//
// The artifact is an OCI image manifest with artifactType
// application/vnd.cncf.model.manifest.v1+json, a model config instead of an
// image config, and layers typed by what they hold (oci/modelpack.h plans
// them). The bytes flow exactly as for a modelcar: the same layer pipeline,
// the same sinks, the same resumable uploads and build cache; only the entry
// names (relative to the model root: a runtime mounting the artifact, e.g.
// CRI-O's image volumes, sees the model's own tree), the grouping, the media
// types and the config differ.
//
// The config is filled from what the model says about itself where that is
// cheap to read: config.json (family, architecture, torch dtype, quantization
// method), the safetensors headers (dtypes and element counts: precision and
// parameter size; a few KiB per file), and the model card's front matter
// (licenses, authors, languages). What cannot be read is left out, never
// guessed: the schema makes every config field optional. These reads come
// before the layers (for hf:// a few small ranged requests ahead of the
// stream); the config itself is written after them, as it holds their diffIds.
#include <algorithm>
#include <cstring>
#include <fstream>

#include "engine/build_internal.h"
#include "engine/cancel.h"
#include "oci/media_types.h"
#include "oci/modelpack.h"
#include "registry/log.h"

namespace mc::engine {
namespace {

using nlohmann::json;
using oci::ErrorCode;
using oci::Result;
namespace mp = oci::modelpack;

// Headers larger than this are not read (real ones are KiB to a few MiB).
constexpr uint64_t kMaxSafetensorsHeader = 64ull << 20;
constexpr uint64_t kMaxSmallFile = 4ull << 20;

// Reads [offset, offset+length) of a model file: from disk when the entry has
// a source, else through the input's peek (an hf:// file).
class FileReader {
 public:
  FileReader(const ModelInput& in, std::string root) : in_(in), root_(std::move(root)) {}

  Result<std::string> Read(const oci::TarEntry& e, uint64_t offset, uint64_t length) const {
    if (!e.source.empty()) {
      std::ifstream f(e.source, std::ios::binary);
      if (!f) return oci::Fail(ErrorCode::kIo, "cannot open " + e.source.string());
      f.seekg(static_cast<std::streamoff>(offset));
      std::string out(length, '\0');
      f.read(out.data(), static_cast<std::streamsize>(length));
      if (static_cast<uint64_t>(f.gcount()) != length)
        return oci::Fail(ErrorCode::kIo, "short read of " + e.source.string());
      return out;
    }
    if (!in_.peek) return oci::Fail(ErrorCode::kInternal, "no way to read " + e.name);
    oci::TarEntry named = e;
    named.name = root_ + "/" + e.name;
    return in_.peek(named, offset, length);
  }

 private:
  const ModelInput& in_;
  std::string root_;
};

uint64_t LittleEndian64(std::string_view b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[i]);
  return v;
}

const oci::TarEntry* FindFile(const std::vector<oci::TarEntry>& entries, std::string_view name) {
  for (const auto& e : entries) {
    if (e.type == oci::TarEntry::Type::kFile && e.name == name) return &e;
  }
  return nullptr;
}

// config.json's family, architecture, dtype and quantization.
void ReadHfConfig(const std::vector<oci::TarEntry>& entries, const FileReader& reader,
                  json& descriptor, json& config, std::string& torch_precision, bool& quantized) {
  const oci::TarEntry* e = FindFile(entries, "config.json");
  if (!e || e->size > kMaxSmallFile) return;
  auto bytes = reader.Read(*e, 0, e->size);
  if (!bytes) {
    registry::Log()->warn("modelpack config: {}", bytes.error().message);
    return;
  }
  json c = json::parse(*bytes, nullptr, false);
  if (!c.is_object()) return;
  if (auto t = c.find("model_type");
      t != c.end() && t->is_string() && !t->get_ref<const std::string&>().empty())
    descriptor["family"] = *t;
  if (auto a = c.find("architectures");
      a != c.end() && a->is_array() && !a->empty() && a->front().is_string())
    config["architecture"] = a->front();
  for (const char* key : {"torch_dtype", "dtype"}) {
    auto d = c.find(key);
    if (d == c.end() || !d->is_string()) continue;
    if (auto p = mp::PrecisionOfTorchDtype(d->get<std::string>())) {
      torch_precision = *p;
      break;
    }
  }
  if (auto q = c.find("quantization_config"); q != c.end() && q->is_object()) {
    quantized = true;
    if (auto m = q->find("quant_method"); m != q->end() && m->is_string())
      config["quantization"] = *m;
  }
}

// The format carrying most weight bytes, with its files.
std::string MainFormat(const std::vector<oci::TarEntry>& entries) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& e : entries) {
    if (e.type != oci::TarEntry::Type::kFile) continue;
    if (mp::Classify(e.name, e.size).kind != mp::Kind::kWeight) continue;
    std::string f = mp::WeightFormat(e.name);
    if (!f.empty()) bytes[f] += e.size;
  }
  std::string best;
  uint64_t most = 0;
  for (const auto& [f, n] : bytes) {
    if (n > most) {
      best = f;
      most = n;
    }
  }
  return best;
}

// Element counts per dtype over every safetensors file; nullopt when any
// header cannot be read (a partial count would be a wrong paramSize).
std::optional<std::map<std::string, uint64_t>> SafetensorsCounts(
    const std::vector<oci::TarEntry>& entries, const FileReader& reader) {
  std::map<std::string, uint64_t> total;
  for (const auto& e : entries) {
    if (e.type != oci::TarEntry::Type::kFile || mp::WeightFormat(e.name) != "safetensors") continue;
    if (Cancelled() || e.size < 8) return std::nullopt;
    auto len = reader.Read(e, 0, 8);
    if (!len) {
      registry::Log()->warn("modelpack config: {}", len.error().message);
      return std::nullopt;
    }
    uint64_t n = LittleEndian64(*len);
    if (n == 0 || n > kMaxSafetensorsHeader || n > e.size - 8) return std::nullopt;
    auto header = reader.Read(e, 8, n);
    if (!header) return std::nullopt;
    auto counts = mp::SafetensorsDtypeCounts(*header);
    if (!counts) {
      registry::Log()->warn("modelpack config: {}: {}", e.name, counts.error().message);
      return std::nullopt;
    }
    for (const auto& [dtype, c] : *counts) total[dtype] += c;
  }
  if (total.empty()) return std::nullopt;
  return total;
}

// "bfloat16" or "float16,int32": the dtypes by element count, largest first;
// nullopt when one has no name in the spec.
std::optional<std::string> PrecisionOf(const std::map<std::string, uint64_t>& counts) {
  std::vector<std::pair<uint64_t, std::string>> by_count;
  for (const auto& [dtype, n] : counts) {
    auto p = mp::PrecisionOfDtype(dtype);
    if (!p) return std::nullopt;
    by_count.emplace_back(n, *p);
  }
  std::sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string out;
  for (const auto& [n, name] : by_count) {
    if (out.find(name) == std::string::npos) out += (out.empty() ? "" : ",") + name;
  }
  return out;
}

void ReadCard(const std::vector<oci::TarEntry>& entries, const FileReader& reader, json& descriptor,
              json& config) {
  const oci::TarEntry* e = FindFile(entries, "README.md");
  if (!e || e->size > kMaxSmallFile) return;
  auto bytes = reader.Read(*e, 0, e->size);
  if (!bytes) return;
  mp::CardInfo card = mp::ParseModelCard(*bytes);
  if (!card.licenses.empty()) descriptor["licenses"] = card.licenses;
  if (!card.authors.empty()) descriptor["authors"] = card.authors;
  if (!card.languages.empty()) config["capabilities"] = {{"languages", card.languages}};
}

// The config's descriptor and config objects (modelfs comes with the layers).
json ModelFacts(const std::vector<oci::TarEntry>& entries, const FileReader& reader,
                const ModelInput& in, const BuildOptions& o) {
  json descriptor = json::object();
  json config = json::object();
  descriptor["createdAt"] = oci::Rfc3339(o.mtime);
  descriptor["name"] = o.name.empty() ? ModelTitle(in) : o.name;
  if (!in.version.empty()) descriptor["version"] = in.version;
  if (!in.revision.empty()) descriptor["revision"] = in.revision;
  std::string torch_precision;
  bool quantized = false;
  ReadHfConfig(entries, reader, descriptor, config, torch_precision, quantized);
  std::string format = MainFormat(entries);
  if (!format.empty()) config["format"] = format;
  std::optional<std::map<std::string, uint64_t>> counts;
  if (format == "safetensors") counts = SafetensorsCounts(entries, reader);
  if (counts) {
    if (auto p = PrecisionOf(*counts)) config["precision"] = *p;
    // Packed quantized tensors hold several parameters per element: their
    // element count is not the parameter count.
    uint64_t total = 0;
    for (const auto& [dtype, n] : *counts) total += n;
    if (!quantized && total > 0) config["paramSize"] = mp::FormatParamSize(total);
  }
  if (!config.contains("precision") && !torch_precision.empty())
    config["precision"] = torch_precision;
  ReadCard(entries, reader, descriptor, config);
  return {{"descriptor", descriptor}, {"config", config}};
}

// Entries named under the prefix ("models/a/b") → relative to the model root
// ("a/b"); the prefix directories themselves go.
std::vector<oci::TarEntry> StripPrefix(std::vector<oci::TarEntry> entries,
                                       const std::string& root) {
  const std::string p = root + "/";
  std::vector<oci::TarEntry> out;
  for (auto& e : entries) {
    if (!e.name.starts_with(p)) continue;  // root and its parents
    e.name.erase(0, p.size());
    if (e.type == oci::TarEntry::Type::kHardlink && e.link_target.starts_with(p))
      e.link_target.erase(0, p.size());
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<oci::TarEntry>> ModelEntries(const ModelInput& input, const BuildOptions& o,
                                                const std::string& root, ModelInput& in) {
  std::vector<oci::TarEntry> entries = input.entries;
  if (!input.dir.empty()) {
    MC_ASSIGN_OR_RETURN(
        entries, oci::ScanDirectory(input.dir, oci::ScanOptions{o.prefix, o.follow_symlinks}));
    MC_RETURN_IF_ERROR(SkipDownloadState(entries, o.prefix, in));
  }
  return StripPrefix(std::move(entries), root);
}

oci::Manifest MakeManifest(const oci::Descriptor& config, const std::vector<BuiltLayer>& layers,
                           const ModelInput& in, const BuildOptions& o, const json& cfg) {
  oci::Manifest m;
  m.artifact_type = std::string(oci::media::kModelPackManifest);
  m.config = config;
  for (const auto& l : layers) m.layers.push_back(l.descriptor);
  m.annotations["org.opencontainers.image.created"] = cfg["descriptor"]["createdAt"];
  m.annotations["org.opencontainers.image.title"] = cfg["descriptor"]["name"];
  if (in.source.starts_with("hf://")) m.annotations["org.opencontainers.image.source"] = in.source;
  if (!in.revision.empty()) m.annotations["org.opencontainers.image.revision"] = in.revision;
  for (const auto& [k, v] : o.annotations) m.annotations[k] = v;
  return m;
}

}  // namespace

Result<BuildResult> BuildModelPack(const ModelInput& input, const BuildOptions& o,
                                   oci::ImageDestination& dest, Progress* progress) {
  BuildResult result;
  MC_ASSIGN_OR_RETURN(std::string root, oci::NormalizePrefix(o.prefix));
  ModelInput in = input;
  MC_ASSIGN_OR_RETURN(std::vector<oci::TarEntry> entries, ModelEntries(input, o, root, in));
  if (input.content) {
    // The streamed input serves its entries by their names under the prefix.
    in.content = [inner = input.content, root](const oci::TarEntry& e) {
      oci::TarEntry named = e;
      named.name = root + "/" + e.name;
      return inner(named);
    };
  }
  for (const auto& e : entries) {
    if (e.type == oci::TarEntry::Type::kFile) {
      ++result.files;
      result.bytes += e.size;
    }
  }
  MC_ASSIGN_OR_RETURN(mp::Plan plan, mp::PlanLayers(entries));
  for (const auto& d : plan.skipped_empty_dirs) {
    result.warnings.push_back("empty directory " + d +
                              " is not packed: ModelPack layers hold files");
  }
  for (const auto& w : result.warnings) registry::Log()->warn("{}", w);

  // What the files say about the model, read before the layers: a few small
  // reads (ranged requests for hf://) that must not wait behind the big stream.
  json cfg = ModelFacts(entries, FileReader(in, root), in, o);

  std::vector<std::vector<oci::TarEntry>> groups;
  std::vector<std::string> media_types;
  for (const auto& l : plan.layers) {
    groups.push_back(l.entries);
    media_types.push_back(mp::LayerMediaType(l.kind, o.compression));
  }
  // As for modelcars: a re-run whose layers are all at the destination does
  // not read the model again (beyond the headers above).
  std::optional<BuildCache> cache;
  std::string key;
  if (!input.dir.empty() && o.use_cache) {
    cache.emplace(o.cache_dir, input.dir);
    key = cache->Key(entries, o);
    if (auto hit = cache->Lookup(key); hit && hit->size() == groups.size()) {
      bool all = true;
      for (const auto& l : *hit) {
        auto have = dest.Exists(l.descriptor.digest);
        all = all && have && *have;
      }
      if (all) {
        registry::Log()->info(
            "model layers unchanged and present at {}: not re-reading the model (only the "
            "headers the config is filled from)",
            dest.Describe());
        result.layers = std::move(*hit);
        result.from_cache = true;
      }
    }
  }
  if (!result.from_cache) {
    MC_ASSIGN_OR_RETURN(result.layers,
                        BuildModelLayers(groups, in, o, dest, progress, cache ? &*cache : nullptr,
                                         key, media_types));
    for (size_t i = 0; i < result.layers.size(); ++i) {
      const mp::PlannedLayer& p = plan.layers[i];
      auto& a = result.layers[i].descriptor.annotations;
      a[std::string(mp::kAnnotationFilepath)] = p.filepath;
      a[std::string(mp::kAnnotationFileMetadata)] = mp::FileMetadataJson(p.described, o.mtime);
      if (p.untested) a[std::string(mp::kAnnotationUntested)] = "true";
    }
    if (cache) cache->Store(key, result.layers);
  }

  json diff_ids = json::array();
  for (const auto& l : result.layers) diff_ids.push_back(l.diff_id.String());
  cfg["modelfs"] = {{"type", "layers"}, {"diffIds", diff_ids}};
  MC_ASSIGN_OR_RETURN(result.config, PutSmallBlob(dest, oci::CanonicalJson(cfg),
                                                  std::string(oci::media::kModelPackConfig)));
  oci::Manifest m = MakeManifest(result.config, result.layers, in, o, cfg);
  result.manifest =
      oci::RawManifest::FromBytes(oci::SerializeManifest(m), std::string(oci::media::kOciManifest));
  MC_RETURN_IF_ERROR(dest.PutManifest(result.manifest, o.tag));
  return result;
}

}  // namespace mc::engine
