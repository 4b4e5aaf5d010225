// Image assembly for `mc-engine build`.
//
// Order matters and follows protocols.md 3.9: the model layers are built
// (streamed into the destination) and the base layers made present first,
// then the config (which needs the diff_ids only known after the layers), then
// the manifest, and for --platform all the index last. A manifest is only
// stored after every blob it names is present, so a failed build never leaves
// a tag pointing at an incomplete image.
//
// Everything that goes into the config and manifest is deterministic: the
// created time comes from SOURCE_DATE_EPOCH (or 0), serialisation is canonical,
// and local paths never enter the image metadata.
#include "engine/build.h"

#include <ctime>
#include <filesystem>
#include <future>
#include <set>

#include "engine/build_cache.h"
#include "engine/build_internal.h"
#include "engine/builtin_base.h"
#include "engine/cancel.h"
#include "engine/copy.h"
#include "engine/download.h"
#include "engine/executor.h"
#include "engine/resume_slot.h"
#include "oci/media_types.h"
#include "oci/tar_list.h"
#include "registry/log.h"

namespace mc::engine {
namespace {

using nlohmann::json;
using oci::ErrorCode;
using oci::Result;

struct BaseImage {
  json config;
  std::vector<oci::Descriptor> layers;  // media types converted to OCI
  oci::Platform platform;
  std::optional<oci::Digest> manifest_digest;
};

BaseImage ScratchBase(const oci::Platform& p) {
  BaseImage b;
  b.platform = p;
  b.config = {{"architecture", p.architecture},
              {"os", p.os},
              {"config", json::object()},
              {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
  if (!p.variant.empty()) b.config["variant"] = p.variant;
  return b;
}

Result<BaseImage> LoadBaseManifest(oci::ImageSource& src, const oci::RawManifest& raw,
                                   const std::string& what) {
  MC_ASSIGN_OR_RETURN(oci::Manifest m, oci::ParseManifest(raw.bytes, what));
  MC_ASSIGN_OR_RETURN(std::string cfg_bytes, src.ReadBlob(m.config));
  MC_ASSIGN_OR_RETURN(json cfg, oci::ParseJson(cfg_bytes, what + " config"));
  if (!cfg.is_object())
    return oci::Fail(ErrorCode::kInvalidInput, what + ": config is not an object");
  BaseImage b;
  b.config = std::move(cfg);
  b.manifest_digest = raw.digest;
  b.platform.os = b.config.value("os", "linux");
  b.platform.architecture = b.config.value("architecture", "amd64");
  b.platform.variant = b.config.value("variant", "");
  for (auto l : m.layers) {
    l.media_type = oci::media::ToOci(l.media_type);
    b.layers.push_back(std::move(l));
  }
  if (!b.config.contains("rootfs") || !b.config["rootfs"].contains("diff_ids") ||
      b.config["rootfs"]["diff_ids"].size() != b.layers.size()) {
    return oci::Fail(ErrorCode::kInvalidInput,
                     what + ": config rootfs.diff_ids does not match the manifest's layers");
  }
  return b;
}

Result<std::vector<BaseImage>> LoadBase(const BuildOptions& o) {
  if (!o.base) return std::vector<BaseImage>{ScratchBase(o.platform)};
  std::string what = "base image " + o.base_name;
  MC_ASSIGN_OR_RETURN(oci::RawManifest raw, o.base->GetManifest(o.base_ref));
  if (!oci::media::IsIndex(raw.media_type)) {
    MC_ASSIGN_OR_RETURN(BaseImage b, LoadBaseManifest(*o.base, raw, what));
    if (!o.all_platforms && !o.platform.Matches(b.platform)) {
      return oci::Fail(ErrorCode::kInvalidInput,
                       what + " is " + b.platform.String() + ", not the requested " +
                           o.platform.String() + " (use --platform " + b.platform.String() + ")");
    }
    return std::vector<BaseImage>{std::move(b)};
  }
  MC_ASSIGN_OR_RETURN(oci::Index index, oci::ParseIndex(raw.bytes, what));
  std::vector<BaseImage> out;
  std::string available;
  for (const auto& d : index.manifests) {
    if (!d.platform || d.platform->os == "unknown") continue;  // attestations
    available += (available.empty() ? "" : ", ") + d.platform->String();
    if (!o.all_platforms && !o.platform.Matches(*d.platform)) continue;
    MC_ASSIGN_OR_RETURN(oci::RawManifest child, o.base->GetManifest(d.digest.String()));
    MC_ASSIGN_OR_RETURN(BaseImage b,
                        LoadBaseManifest(*o.base, child, what + " " + d.platform->String()));
    b.platform = *d.platform;
    out.push_back(std::move(b));
    if (!o.all_platforms) break;
  }
  if (out.empty()) {
    return oci::Fail(ErrorCode::kInvalidInput, what + " has no " + o.platform.String() +
                                                   " image (available: " + available + ")");
  }
  return out;
}

// The KServe sidecar runs `sh -c 'mkdir -p … && ln -sf … && sleep infinity'`
// (mkdir for a model path other than the default) and the init container
// `ls`: the base must provide them. We list the base layers' names
// (bases are small: a few MiB for ubi-micro or busybox) and report what is
// missing; a base over 512 MiB is not read, only trusted.
std::optional<std::string> MissingBaseTools(oci::ImageSource& src, const BaseImage& base) {
  int64_t total = 0;
  for (const auto& l : base.layers) total += l.size;
  if (total > (int64_t{512} << 20)) return std::nullopt;
  std::set<std::string> names;
  for (const auto& l : base.layers) {
    auto raw = src.OpenBlob(l);
    if (!raw) return std::nullopt;
    oci::VerifyingReader in(std::move(*raw), l.digest, l.size, "base layer " + l.digest.Short());
    auto listed = oci::ListTar(in, [&](const oci::TarListEntry& e) { names.insert(e.name); });
    if (!listed) {
      registry::Log()->debug("cannot list base layer {}: {}", l.digest.Short(),
                             listed.error().message);
      return std::nullopt;
    }
  }
  // Every directory of a usual PATH is looked at by its real name, so a
  // merged-/usr base (bin → usr/bin) is found through usr/bin.
  auto has = [&](const std::string& tool) {
    for (const char* dir : {"bin/", "usr/bin/", "sbin/", "usr/sbin/", "usr/local/bin/"}) {
      if (names.contains(dir + tool)) return true;
    }
    return false;
  };
  std::string missing;
  for (const char* tool : {"sh", "ln", "sleep", "ls", "mkdir"}) {
    if (!has(tool)) missing += std::string(missing.empty() ? "" : ", ") + tool;
  }
  if (missing.empty()) return std::nullopt;
  return missing;
}

// config.User of the image built on `base`: --user, else the base's, else the default.
std::string ImageUser(const BaseImage& base, const BuildOptions& o) {
  if (!o.user.empty()) return o.user;
  auto c = base.config.find("config");
  if (c != base.config.end() && c->is_object()) {
    auto u = c->find("User");
    if (u != c->end() && u->is_string() && !u->get<std::string>().empty()) return *u;
  }
  return std::string(kDefaultUser);
}

// KServe modelcar contract (design.md, protocols.md 4.2).
std::vector<std::string> CheckContract(const std::vector<oci::TarEntry>& entries,
                                       const std::vector<BaseImage>& bases, const BuildOptions& o) {
  std::vector<std::string> warnings;
  bool any_file = false;
  for (const auto& e : entries) any_file |= e.type == oci::TarEntry::Type::kFile;
  if (!any_file)
    warnings.push_back(
        "the model has no files: KServe's modelcar init container fails on an empty " + o.prefix);
  if (!o.base) {
    warnings.push_back(
        "the base is scratch: KServe's modelcar sidecar (oci://) needs sh, ln, sleep, ls and "
        "mkdir; leave --base out for the built-in base, or use a small image that has a shell "
        "(e.g. --base docker://registry.access.redhat.com/ubi9/ubi-micro)");
  }
  for (const auto& b : bases) {
    const json& c = b.config.contains("config") ? b.config["config"] : json::object();
    if (c.contains("Entrypoint") && !c["Entrypoint"].is_null() && !c["Entrypoint"].empty()) {
      warnings.push_back(
          "the base image sets an Entrypoint: KServe passes the sidecar command as "
          "args, so it would be appended to it; use a base without Entrypoint");
      break;
    }
  }
  if (o.base) {
    for (const auto& b : bases) {
      if (auto missing = MissingBaseTools(*o.base, b)) {
        warnings.push_back("the base image " + o.base_name + " (" + b.platform.String() +
                           ") lacks " + *missing +
                           ": KServe's modelcar containers run "
                           "sh, ln, sleep, ls and mkdir; use a base that has them");
        break;
      }
    }
  }
  for (const auto& b : bases) {
    std::string user = ImageUser(b, o);
    std::string uid = user.substr(0, user.find(':'));
    bool numeric = !uid.empty() && uid.find_first_not_of("0123456789") == std::string::npos;
    if (!numeric) {
      warnings.push_back("config.User \"" + user +
                         "\" (the base's) is not numeric: Kubernetes' runAsNonRoot cannot "
                         "verify it; give a numeric --user UID[:GID]");
      break;
    }
    if (uid.find_first_not_of('0') == std::string::npos) {
      warnings.push_back("config.User \"" + user +
                         "\" is root: Kubernetes' runAsNonRoot refuses to start it; give a "
                         "non-root --user UID[:GID]");
      break;
    }
  }
  if (o.prefix != "/models" && o.prefix != "/models/") {
    warnings.push_back("--prefix " + o.prefix + ": KServe modelcars expect the model in /models");
  }
  return warnings;
}

// KServe's oci+fetch:// storage initializer unpacks gzip and uncompressed tar
// layers only. Not part of the contract (--strict): the image still works with
// oci:// and oci+native://.
std::optional<std::string> FetchModeWarning(const std::vector<BaseImage>& bases,
                                            const BuildOptions& o) {
  const std::string why =
      ": KServe's oci+fetch:// mode cannot read zstd layers (oci:// and oci+native:// can); "
      "use --compression gzip or none for an image that works in all three modes";
  if (o.compression == oci::Compression::kZstd) return "--compression zstd" + why;
  for (const auto& b : bases) {
    for (const auto& l : b.layers) {
      if (l.media_type.ends_with("+zstd") && !o.base_builtin) {
        return "the base image " + o.base_name + " has zstd-compressed layers" + why;
      }
    }
  }
  return std::nullopt;
}

// Registry uploads survive the process: after every acknowledged chunk the
// session URL and offset go to a resume slot in the cache dir; a re-run (same
// build key) asks the registry how much of that session it holds and resumes
// it, regenerating and hashing the bytes before that offset but not sending
// them. The layer stream is deterministic, which is what makes this sound —
// and what lets us build and send a layer again when the registry lost its
// session mid-blob (distribution drops a session that a broken PATCH wrote
// into): kTransient from the sink means exactly that.
std::shared_ptr<oci::ResumeSlot> LayerSlot(const BuildCache* cache, const std::string& key,
                                           size_t layer) {
  if (!cache || key.empty()) return nullptr;
  return UploadResumeSlot(cache->dir(), key + "-" + std::to_string(layer));
}

constexpr int kLayerAttempts = 3;

Result<BuiltLayer> BuildOneLayer(const std::vector<oci::TarEntry>& group, LayerBuildOptions lo,
                                 oci::BlobSink& sink, const BuildCache* cache,
                                 const std::string& key, size_t index) {
  for (int attempt = 1;; ++attempt) {
    lo.resume = LayerSlot(cache, key, index);
    auto r = BuildLayer(group, lo, sink);
    if (r || r.error().code != ErrorCode::kTransient || attempt >= kLayerAttempts || Cancelled()) {
      if (!r && r.error().code == ErrorCode::kTransient) {
        // Out of whole-layer attempts: a network failure after retries (exit 6).
        oci::Error e = r.error().Wrap("after " + std::to_string(attempt) + " attempts");
        e.code = ErrorCode::kNetwork;
        return std::unexpected(e);
      }
      return r;
    }
    registry::Log()->warn("layer {}: {}; building and sending it again (attempt {} of {})",
                          index + 1, r.error().message, attempt + 1, kLayerAttempts);
  }
}

}  // namespace

Result<std::vector<BuiltLayer>> BuildModelLayers(
    const std::vector<std::vector<oci::TarEntry>>& groups, const ModelInput& input,
    const BuildOptions& o, oci::BlobSink& sink, Progress* progress, const BuildCache* cache,
    const std::string& key, const std::vector<std::string>& media_types) {
  std::vector<BuiltLayer> layers(groups.size());
  std::vector<std::optional<oci::Error>> errors(groups.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  auto work = [&] {
    for (size_t i = next++; i < groups.size() && !stop; i = next++) {
      if (Cancelled()) {
        errors[i] = oci::Error{ErrorCode::kCancelled, "interrupted"};
        continue;
      }
      uint64_t total = 0;
      for (const auto& e : groups[i]) total += e.size + 512;
      LayerBuildOptions lo;
      lo.compression = o.compression;
      lo.compression_level = o.compression_level;
      lo.jobs = o.jobs;
      lo.mtime = o.mtime;
      lo.content = input.content;
      if (i < media_types.size()) lo.media_type = media_types[i];
      if (progress) {
        lo.progress = progress->Start("build", "layer " + std::to_string(i + 1), total);
      }
      auto r = BuildOneLayer(groups[i], std::move(lo), sink, cache, key, i);
      if (r) {
        layers[i] = std::move(*r);
      } else {
        errors[i] = r.error();
      }
    }
  };
  size_t parallel = std::min<size_t>(groups.size(), std::max(1, o.parallel_layers));
  {
    // Each layer's own stages run on executors of their own (layer_builder.cc),
    // so these tasks never wait for a task of this one.
    // A layer whose task threw has no result: stop, and fail the build below.
    Executor layers_at_once(static_cast<int>(parallel), "layer build",
                            [&](const oci::Error&) { stop = true; });
    for (size_t t = 0; t < parallel; ++t) layers_at_once.Post(work);
    layers_at_once.Join();
    if (auto e = layers_at_once.error()) return std::unexpected(*e);
  }
  for (size_t i = 0; i < errors.size(); ++i) {
    if (errors[i]) {
      if (groups.size() == 1) return std::unexpected(*errors[i]);
      return std::unexpected(errors[i]->Wrap("layer " + std::to_string(i + 1) + " of " +
                                             std::to_string(groups.size())));
    }
  }
  return layers;
}

Result<oci::Descriptor> PutSmallBlob(oci::BlobSink& sink, const std::string& bytes,
                                     std::string media_type) {
  oci::Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = oci::Digest::Of(bytes);
  d.size = static_cast<int64_t>(bytes.size());
  MC_ASSIGN_OR_RETURN(bool have, sink.Exists(d.digest));
  if (have) return d;
  oci::BlobHint hint{d.digest, d.size, d.media_type, std::nullopt};
  MC_ASSIGN_OR_RETURN(auto w, sink.Begin(hint));
  if (!w->done()) MC_RETURN_IF_ERROR(w->Write(oci::AsBytes(bytes)));
  MC_RETURN_IF_ERROR(w->Commit(d.digest, bytes.size()));
  return d;
}

std::string ModelTitle(const ModelInput& input) {
  std::string s = input.source.empty() ? input.dir : input.source;
  while (!s.empty() && s.back() == '/') s.pop_back();
  size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

namespace {

json MakeConfig(const BaseImage& base, const std::vector<BuiltLayer>& layers, const BuildOptions& o,
                const std::string& created) {
  json cfg = base.config;
  cfg["created"] = created;
  json& diff_ids = cfg["rootfs"]["diff_ids"];
  for (const auto& l : layers) diff_ids.push_back(l.diff_id.String());
  if (!cfg.contains("config") || !cfg["config"].is_object()) cfg["config"] = json::object();
  json& c = cfg["config"];
  if (!o.labels.empty()) {
    if (!c.contains("Labels") || !c["Labels"].is_object()) c["Labels"] = json::object();
    for (const auto& [k, v] : o.labels) c["Labels"][k] = v;
  }
  c["User"] = ImageUser(base, o);
  if (!cfg.contains("history") || !cfg["history"].is_array()) cfg["history"] = json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string by = "mc-engine build --prefix " + o.prefix;
    if (layers.size() > 1)
      by += " (model layer " + std::to_string(i + 1) + " of " + std::to_string(layers.size()) + ")";
    cfg["history"].push_back(
        {{"created", created}, {"created_by", by}, {"comment", "model files"}});
  }
  return cfg;
}

}  // namespace

// `mc-engine download` keeps its state in DIR/.mc-download: it is not part of
// the model, so it stays out of the image; its record of the source and pinned
// commit gives a directory build the same annotations (and so the same
// manifest digest) as a build straight from hf://.
Result<void> SkipDownloadState(std::vector<oci::TarEntry>& entries, const std::string& prefix,
                               ModelInput& in) {
  MC_ASSIGN_OR_RETURN(std::string root, oci::NormalizePrefix(prefix));
  const std::string state = root + "/" + std::string(kDownloadStateDir);
  std::erase_if(entries, [&](const oci::TarEntry& e) {
    return e.name == state || e.name.starts_with(state + "/");
  });
  auto bytes =
      oci::ReadFileToString(std::filesystem::path(in.dir) / kDownloadStateDir / "manifest.json");
  if (!bytes) return {};
  json j = json::parse(*bytes, nullptr, false);
  if (!j.is_object()) return {};
  // Advisory: a field of the wrong type is ignored, never an exception.
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string source = text("source");
  std::string commit = text("commit");
  if (source.starts_with("hf://") && !commit.empty()) {
    // "hf://org/name@rev" → "hf://org/name", as a streamed build records it.
    size_t at = source.find('@');
    in.source = source.substr(0, at);
    in.revision = commit;
  }
  return {};
}

Result<std::string> ParseUser(std::string_view value) {
  auto bad = [&] {
    return oci::Fail(ErrorCode::kInvalidInput,
                     "--user \"" + std::string(value) +
                         "\" is not UID or UID:GID (decimal numbers up to 4294967294, e.g. "
                         "--user 1001 or --user 1001:0)");
  };
  auto id = [](std::string_view s) {
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string_view::npos)
      return false;
    return std::stoull(std::string(s)) <= 4294967294ull;
  };
  size_t colon = value.find(':');
  if (!id(value.substr(0, colon))) return bad();
  if (colon != std::string_view::npos && !id(value.substr(colon + 1))) return bad();
  return std::string(value);
}

Result<BuildResult> BuildImage(const ModelInput& input, const BuildOptions& o,
                               oci::ImageDestination& dest, Progress* progress) {
  if (o.kind == ArtifactKind::kModelPack) return BuildModelPack(input, o, dest, progress);
  BuildResult result;
  std::vector<oci::TarEntry> entries = input.entries;
  ModelInput in = input;
  if (!input.dir.empty()) {
    MC_ASSIGN_OR_RETURN(
        entries, oci::ScanDirectory(input.dir, oci::ScanOptions{o.prefix, o.follow_symlinks}));
    MC_RETURN_IF_ERROR(SkipDownloadState(entries, o.prefix, in));
  }
  for (const auto& e : entries) {
    if (e.type == oci::TarEntry::Type::kFile) {
      ++result.files;
      result.bytes += e.size;
    }
  }
  MC_ASSIGN_OR_RETURN(std::vector<BaseImage> bases, LoadBase(o));
  result.warnings = CheckContract(entries, bases, o);
  if (o.strict && !result.warnings.empty()) {
    return oci::Fail(ErrorCode::kInvalidInput,
                     "modelcar contract (--strict): " + result.warnings.front());
  }
  if (auto w = FetchModeWarning(bases, o)) result.warnings.push_back(*w);
  for (const auto& w : result.warnings) registry::Log()->warn("{}", w);

  // Base layers first (cheap when present or mountable), then the model.
  CopyOptions base_copy;
  base_copy.mount_from = o.base_mount_from;
  for (const auto& b : bases) {
    for (const auto& l : b.layers) {
      auto r = CopyBlob(*o.base, l, dest, base_copy);
      if (!r) return std::unexpected(r.error().Wrap("copying base layer " + l.digest.Short()));
    }
  }
  // A re-run whose layers are all at the destination does not read the model.
  std::optional<BuildCache> cache;
  std::string key;
  if (!input.dir.empty() && o.use_cache) {
    cache.emplace(o.cache_dir, input.dir);
    key = cache->Key(entries, o);
    if (auto hit = cache->Lookup(key)) {
      bool all = true;
      for (const auto& l : *hit) {
        auto have = dest.Exists(l.descriptor.digest);
        all = all && have && *have;
      }
      if (all) {
        registry::Log()->info("model layers unchanged and present at {}: not re-reading the model",
                              dest.Describe());
        result.layers = std::move(*hit);
        result.from_cache = true;
      }
    }
  }
  if (!result.from_cache) {
    auto groups = oci::PlanLayers(entries, o.max_layer_size, o.layer_per_file);
    MC_ASSIGN_OR_RETURN(result.layers, BuildModelLayers(groups, input, o, dest, progress,
                                                        cache ? &*cache : nullptr, key));
    if (cache) cache->Store(key, result.layers);
  }

  const std::string created = oci::Rfc3339(o.mtime);
  std::vector<oci::RawManifest> manifests;
  for (const auto& b : bases) {
    json cfg = MakeConfig(b, result.layers, o, created);
    MC_ASSIGN_OR_RETURN(
        oci::Descriptor cfg_desc,
        PutSmallBlob(dest, oci::CanonicalJson(cfg), std::string(oci::media::kOciConfig)));
    result.config = cfg_desc;
    oci::Manifest m;
    m.config = cfg_desc;
    m.layers = b.layers;
    for (const auto& l : result.layers) m.layers.push_back(l.descriptor);
    m.annotations["org.opencontainers.image.created"] = created;
    m.annotations["org.opencontainers.image.title"] = ModelTitle(in);
    if (in.source.starts_with("hf://"))
      m.annotations["org.opencontainers.image.source"] = in.source;
    if (!in.revision.empty()) m.annotations["org.opencontainers.image.revision"] = in.revision;
    if (!o.base_annotation.empty())
      m.annotations["org.opencontainers.image.base.name"] = o.base_annotation;
    if (o.base && !o.base_builtin && b.manifest_digest)
      m.annotations["org.opencontainers.image.base.digest"] = b.manifest_digest->String();
    for (const auto& [k, v] : o.annotations) m.annotations[k] = v;
    manifests.push_back(oci::RawManifest::FromBytes(oci::SerializeManifest(m),
                                                    std::string(oci::media::kOciManifest)));
  }
  if (manifests.size() == 1 && !o.all_platforms) {
    result.manifest = manifests.front();
    MC_RETURN_IF_ERROR(dest.PutManifest(result.manifest, o.tag));
    return result;
  }
  oci::Index index;
  for (size_t i = 0; i < manifests.size(); ++i) {
    MC_RETURN_IF_ERROR(dest.PutChildManifest(manifests[i]));
    oci::Descriptor d = manifests[i].ToDescriptor();
    d.platform = bases[i].platform;
    index.manifests.push_back(d);
  }
  result.manifest =
      oci::RawManifest::FromBytes(oci::SerializeIndex(index), std::string(oci::media::kOciIndex));
  MC_RETURN_IF_ERROR(dest.PutManifest(result.manifest, o.tag));
  return result;
}

}  // namespace mc::engine
