// Why the summary mirrors skopeo field for field: `skopeo inspect` is what
// users and scripts already parse (jq '.Digest', --format '{{.Created}}'),
// so a second shape would only mean a second set of scripts. We take every
// value from the same place skopeo does (containers/image's Inspect): the
// manifest for the layers, the config for the rest, and the registry's tag
// list for RepoTags, and we print times as Go's encoding/json does.
#include "engine/inspect.h"

#include "oci/media_types.h"
#include "registry/log.h"
#include "registry/remote.h"

namespace mc::engine {

using ojson = nlohmann::ordered_json;

namespace {

// An ordered_json copy of `j`. nlohmann::json keeps object keys sorted, which is
// also the order Go prints maps in, so the copy needs no sorting.
ojson Ordered(const nlohmann::json& j) { return ojson::parse(j.dump()); }

oci::Result<std::vector<std::string>> RepoTags(OpenedSource& src, const ImageLocation& loc) {
  if (loc.kind != ImageLocation::Kind::kDocker) return std::vector<std::string>{};
  auto* remote = dynamic_cast<registry::RegistrySource*>(src.source.get());
  if (!remote) return std::vector<std::string>{};
  auto tags = remote->client().ListTags();
  if (!tags && tags.error().code == oci::ErrorCode::kUnauthorized) {
    // As skopeo: some registries (or credentials) forbid listing tags.
    registry::Log()->warn("the registry refuses to list the tags of {}; RepoTags stays empty",
                          src.canonical);
    return std::vector<std::string>{};
  }
  return tags;
}

bool IsModelPack(const oci::Manifest& m) {
  return (m.artifact_type && oci::media::IsModelPackManifest(*m.artifact_type)) ||
         oci::media::IsModelPackConfig(m.config.media_type);
}

// A ModelPack artifact has no image config: skopeo's fields stay empty (as
// skopeo leaves them for an artifact) except Created, which the model's
// descriptor carries, and we add what a reader wants to see instead: the
// artifact type and the model's descriptor and config (modelfs is the layer
// list again, so it stays out).
void AddModelPack(ojson& out, const oci::Manifest& man, const nlohmann::json& cfg) {
  auto descriptor = cfg.find("descriptor");
  auto config = cfg.find("config");
  if (descriptor != cfg.end() && descriptor->is_object()) {
    auto created = descriptor->find("createdAt");
    if (created != descriptor->end() && created->is_string()) {
      if (auto t = GoRfc3339(created->get<std::string>())) out["Created"] = *t;
    }
  }
  out["ArtifactType"] = man.artifact_type.value_or(std::string(oci::media::kModelPackManifest));
  ojson model = ojson::object();
  model["descriptor"] =
      descriptor != cfg.end() && descriptor->is_object() ? Ordered(*descriptor) : ojson::object();
  model["config"] = config != cfg.end() && config->is_object() ? Ordered(*config) : ojson::object();
  out["ModelPack"] = model;
}

}  // namespace

const TemplateSchema& InspectSummarySchema() {
  static const TemplateSchema schema{{"Labels", "Annotations", "ModelPack"},
                                     {"Created"},
                                     {"RepoTags", "Layers", "LayersData", "Env"}};
  return schema;
}

oci::Result<oci::RawManifest> ManifestForPlatform(OpenedSource& src, const oci::RawManifest& top,
                                                  const ImageLocation& loc,
                                                  const std::string& platform) {
  oci::RawManifest image = top;
  if (oci::media::IsIndex(top.media_type)) {
    MC_ASSIGN_OR_RETURN(oci::Index idx, oci::ParseIndex(top.bytes));
    MC_ASSIGN_OR_RETURN(oci::Platform want, oci::Platform::Parse(platform));
    const oci::Descriptor* pick = nullptr;
    for (const auto& d : idx.manifests) {
      if (d.platform && want.Matches(*d.platform)) {
        pick = &d;
        break;
      }
    }
    if (!pick) {
      return oci::Fail(oci::ErrorCode::kNotFound, "no " + platform + " image in " + loc.original +
                                                      " (choose one with --platform)");
    }
    MC_ASSIGN_OR_RETURN(image, src.source->GetManifest(pick->digest.String()));
  }
  return image;
}

oci::Result<ojson> InspectSummary(OpenedSource& src, const ImageLocation& loc,
                                  const std::string& platform, bool list_tags) {
  MC_ASSIGN_OR_RETURN(oci::RawManifest top, src.source->GetManifest(src.tag_or_digest));
  MC_ASSIGN_OR_RETURN(oci::RawManifest image, ManifestForPlatform(src, top, loc, platform));
  MC_ASSIGN_OR_RETURN(oci::Manifest man, oci::ParseManifest(image.bytes));
  MC_ASSIGN_OR_RETURN(std::string cfg_bytes, src.source->ReadBlob(man.config));
  MC_ASSIGN_OR_RETURN(nlohmann::json cfg, oci::ParseJson(cfg_bytes, "config"));
  if (!cfg.is_object())
    return oci::Fail(oci::ErrorCode::kInvalidInput, "the image config is not a JSON object");
  const nlohmann::json& c = cfg.contains("config") && cfg["config"].is_object()
                                ? cfg["config"]
                                : nlohmann::json::object();
  auto str = [](const nlohmann::json& j, const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };

  ojson out = ojson::object();
  if (loc.kind == ImageLocation::Kind::kDocker)
    out["Name"] = src.registry_host + "/" + src.repository;
  out["Digest"] = top.digest.String();
  std::vector<std::string> tags;
  if (list_tags) {
    MC_ASSIGN_OR_RETURN(tags, RepoTags(src, loc));
  }
  out["RepoTags"] = tags;
  std::optional<std::string> created;
  if (cfg.contains("created") && cfg["created"].is_string())
    created = GoRfc3339(cfg["created"].get<std::string>());
  out["Created"] = created ? ojson(*created) : ojson(nullptr);
  out["DockerVersion"] = str(cfg, "docker_version");
  out["Labels"] =
      c.contains("Labels") && c["Labels"].is_object() ? Ordered(c["Labels"]) : ojson(nullptr);
  out["Architecture"] = str(cfg, "architecture");
  if (std::string variant = str(cfg, "variant"); !variant.empty()) out["Variant"] = variant;
  out["Os"] = str(cfg, "os");
  ojson layers = ojson::array(), data = ojson::array();
  for (const auto& l : man.layers) {
    layers.push_back(l.digest.String());
    ojson annotations = nullptr;
    if (!l.annotations.empty()) {
      annotations = ojson::object();
      for (const auto& [k, v] : l.annotations) annotations[k] = v;
    }
    data.push_back(ojson{{"MIMEType", l.media_type},
                         {"Digest", l.digest.String()},
                         {"Size", l.size},
                         {"Annotations", annotations}});
  }
  out["Layers"] = layers;
  out["LayersData"] = data;
  out["Env"] = c.contains("Env") && c["Env"].is_array() ? Ordered(c["Env"]) : ojson(nullptr);
  if (IsModelPack(man)) AddModelPack(out, man, cfg);
  return out;
}

}  // namespace mc::engine
