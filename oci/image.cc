#include "oci/image.h"

#include <ctime>

#include "oci/media_types.h"

namespace mc::oci {

using nlohmann::json;

std::string Platform::String() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

Result<Platform> Platform::Parse(std::string_view s) {
  Platform p;
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    parts.emplace_back(s.substr(start, slash == std::string_view::npos ? s.npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  bool ok = (parts.size() == 2 || parts.size() == 3);
  for (const auto& part : parts) ok = ok && !part.empty();
  if (!ok) {
    return Fail(ErrorCode::kInvalidInput, "invalid platform \"" + std::string(s) +
                                              "\": expected OS/ARCH[/VARIANT], e.g. linux/amd64");
  }
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

bool Platform::Matches(const Platform& other) const {
  if (os != other.os || architecture != other.architecture) return false;
  if (variant.empty() || other.variant.empty()) return true;
  return variant == other.variant;
}

json DescriptorToJson(const Descriptor& d) {
  json j = {{"mediaType", d.media_type}, {"digest", d.digest.String()}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (d.artifact_type) j["artifactType"] = *d.artifact_type;
  if (d.platform) {
    json p = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) p["variant"] = d.platform->variant;
    if (!d.platform->os_version.empty()) p["os.version"] = d.platform->os_version;
    j["platform"] = p;
  }
  return j;
}

namespace {

Result<std::map<std::string, std::string>> StringMap(const json& j, std::string_view what) {
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object())
    return Fail(ErrorCode::kInvalidInput, std::string(what) + " is not an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) {
      return Fail(ErrorCode::kInvalidInput,
                  std::string(what) + " value of \"" + it.key() + "\" is not a string");
    }
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

}  // namespace

Result<Descriptor> DescriptorFromJson(const json& j) {
  if (!j.is_object()) return Fail(ErrorCode::kInvalidInput, "descriptor is not an object");
  Descriptor d;
  auto mt = j.find("mediaType");
  if (mt == j.end() || !mt->is_string()) {
    return Fail(ErrorCode::kInvalidInput, "descriptor has no mediaType");
  }
  d.media_type = mt->get<std::string>();
  auto dg = j.find("digest");
  if (dg == j.end() || !dg->is_string()) {
    return Fail(ErrorCode::kInvalidInput, "descriptor has no digest");
  }
  MC_ASSIGN_OR_RETURN(d.digest, Digest::Parse(dg->get<std::string>()));
  auto sz = j.find("size");
  if (sz == j.end() || !sz->is_number_integer() || sz->get<int64_t>() < 0) {
    return Fail(ErrorCode::kInvalidInput, "descriptor " + d.digest.Short() + " has no valid size");
  }
  d.size = sz->get<int64_t>();
  if (auto a = j.find("annotations"); a != j.end()) {
    MC_ASSIGN_OR_RETURN(d.annotations, StringMap(*a, "annotations"));
  }
  if (auto u = j.find("urls"); u != j.end() && u->is_array()) {
    for (const auto& v : *u) {
      if (v.is_string()) d.urls.push_back(v.get<std::string>());
    }
  }
  if (auto at = j.find("artifactType"); at != j.end() && at->is_string()) {
    d.artifact_type = at->get<std::string>();
  }
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    Platform plat;
    plat.os = p->value("os", "");
    plat.architecture = p->value("architecture", "");
    plat.variant = p->value("variant", "");
    plat.os_version = p->value("os.version", "");
    d.platform = plat;
  }
  return d;
}

std::string CanonicalJson(const json& j) { return j.dump(); }

std::string SerializeManifest(const Manifest& m) {
  json j = {{"schemaVersion", m.schema_version}, {"mediaType", m.media_type}};
  if (m.artifact_type) j["artifactType"] = *m.artifact_type;
  j["config"] = DescriptorToJson(m.config);
  j["layers"] = json::array();
  for (const auto& l : m.layers) j["layers"].push_back(DescriptorToJson(l));
  if (!m.annotations.empty()) j["annotations"] = m.annotations;
  return CanonicalJson(j);
}

std::string SerializeIndex(const Index& i) {
  json j = {{"schemaVersion", i.schema_version}, {"mediaType", i.media_type}};
  j["manifests"] = json::array();
  for (const auto& d : i.manifests) j["manifests"].push_back(DescriptorToJson(d));
  if (!i.annotations.empty()) j["annotations"] = i.annotations;
  return CanonicalJson(j);
}

Result<json> ParseJson(std::string_view bytes, std::string_view what) {
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Fail(ErrorCode::kInvalidInput, std::string(what) + " is not valid JSON");
  }
  return j;
}

Result<Manifest> ParseManifest(std::string_view bytes, std::string_view what) {
  MC_ASSIGN_OR_RETURN(json j, ParseJson(bytes, what));
  auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidInput, std::string(what) + ": " + std::string(why));
  };
  if (!j.is_object()) return bad("not a JSON object");
  Manifest m;
  if (j.value("schemaVersion", 0) != 2) return bad("schemaVersion is not 2");
  m.media_type = j.value("mediaType", std::string(media::kOciManifest));
  if (!media::IsManifest(m.media_type)) return bad("not an image manifest (" + m.media_type + ")");
  if (auto at = j.find("artifactType"); at != j.end() && at->is_string()) {
    m.artifact_type = at->get<std::string>();
  }
  auto cfg = j.find("config");
  if (cfg == j.end()) return bad("no config descriptor");
  auto c = DescriptorFromJson(*cfg);
  if (!c) return bad("config: " + c.error().message);
  m.config = *c;
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return bad("no layers array");
  for (const auto& l : *layers) {
    auto d = DescriptorFromJson(l);
    if (!d) return bad("layer: " + d.error().message);
    m.layers.push_back(*d);
  }
  if (auto a = j.find("annotations"); a != j.end()) {
    auto ann = StringMap(*a, "annotations");
    if (!ann) return bad(ann.error().message);
    m.annotations = *ann;
  }
  return m;
}

Result<Index> ParseIndex(std::string_view bytes, std::string_view what) {
  MC_ASSIGN_OR_RETURN(json j, ParseJson(bytes, what));
  auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidInput, std::string(what) + ": " + std::string(why));
  };
  if (!j.is_object()) return bad("not a JSON object");
  Index idx;
  if (j.value("schemaVersion", 0) != 2) return bad("schemaVersion is not 2");
  idx.media_type = j.value("mediaType", std::string(media::kOciIndex));
  if (!media::IsIndex(idx.media_type)) return bad("not an image index (" + idx.media_type + ")");
  auto ms = j.find("manifests");
  if (ms == j.end() || !ms->is_array()) return bad("no manifests array");
  for (const auto& m : *ms) {
    auto d = DescriptorFromJson(m);
    if (!d) return bad("manifest entry: " + d.error().message);
    idx.manifests.push_back(*d);
  }
  if (auto a = j.find("annotations"); a != j.end()) {
    auto ann = StringMap(*a, "annotations");
    if (!ann) return bad(ann.error().message);
    idx.annotations = *ann;
  }
  return idx;
}

Result<std::string> DetectManifestMediaType(std::string_view bytes) {
  MC_ASSIGN_OR_RETURN(json j, ParseJson(bytes, "manifest"));
  if (!j.is_object()) return Fail(ErrorCode::kInvalidInput, "manifest is not a JSON object");
  if (auto mt = j.find("mediaType"); mt != j.end() && mt->is_string()) {
    return mt->get<std::string>();
  }
  if (j.contains("manifests")) return std::string(media::kOciIndex);
  if (j.contains("layers")) return std::string(media::kOciManifest);
  return Fail(ErrorCode::kInvalidInput, "cannot tell the manifest's media type");
}

RawManifest RawManifest::FromBytes(std::string bytes, std::string media_type) {
  RawManifest r;
  r.digest = Digest::Of(bytes);
  r.bytes = std::move(bytes);
  r.media_type = std::move(media_type);
  return r;
}

Descriptor RawManifest::ToDescriptor() const {
  Descriptor d;
  d.media_type = media_type;
  d.digest = digest;
  d.size = static_cast<int64_t>(bytes.size());
  return d;
}

std::string Rfc3339(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace mc::oci
