#include "oci/attachments.h"

#include <set>

#include "oci/media_types.h"

namespace mc::oci::attach {

using nlohmann::json;

std::string DigestTag(const Digest& d) {
  std::string alg = d.algorithm().substr(0, 32);
  return alg + "-" + d.hex().substr(0, 64);
}

std::string SimpleSigningPayload(const std::string& docker_reference, const Digest& digest) {
  // Key order as cosign (Go structs) writes it; compact; "optional": null.
  std::string out =
      "{\"critical\":{\"identity\":{\"docker-reference\":" + json(docker_reference).dump() +
      "},\"image\":{\"docker-manifest-digest\":" + json(digest.String()).dump() +
      "},\"type\":" + json(std::string(kSignatureType)).dump() + "},\"optional\":null}";
  return out;
}

namespace {

constexpr std::string_view kZeroTime = "0001-01-01T00:00:00Z";

json EmptyImageConfig() {
  return json{{"architecture", ""},
              {"created", kZeroTime},
              {"history", json::array()},
              {"os", ""},
              {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}},
              {"config", json::object()}};
}

}  // namespace

Result<SignatureImage> AppendSignature(const std::optional<Manifest>& existing,
                                       const std::optional<std::string>& existing_config,
                                       const Descriptor& payload,
                                       const std::string& signature_b64) {
  Manifest m;
  json cfg = EmptyImageConfig();
  if (existing) {
    m = *existing;
    m.media_type = std::string(media::kOciManifest);
    bool config_ok = false;
    if (existing_config) {
      json j = json::parse(*existing_config, nullptr, false);
      if (j.is_object() && j.contains("rootfs") && j["rootfs"].is_object() &&
          j["rootfs"].contains("diff_ids") && j["rootfs"]["diff_ids"].is_array()) {
        cfg = std::move(j);
        config_ok = true;
      }
    }
    if (!config_ok) {
      // Rebuild what cosign would have written for the layers there are.
      for (const auto& l : m.layers) {
        cfg["rootfs"]["diff_ids"].push_back(l.digest.String());
        cfg["history"].push_back({{"created", kZeroTime}});
      }
    }
  }
  Descriptor layer = payload;
  layer.annotations[std::string(kSignatureAnnotation)] = signature_b64;
  m.layers.push_back(layer);
  cfg["rootfs"]["diff_ids"].push_back(payload.digest.String());
  if (!cfg.contains("history") || !cfg["history"].is_array()) cfg["history"] = json::array();
  cfg["history"].push_back({{"created", kZeroTime}});
  SignatureImage out;
  out.config = CanonicalJson(cfg);
  m.config.media_type = std::string(media::kOciConfig);
  m.config.digest = Digest::Of(out.config);
  m.config.size = static_cast<int64_t>(out.config.size());
  m.config.annotations.clear();
  out.manifest = std::move(m);
  return out;
}

Result<std::optional<SignatureImage>> MergeSignatureImages(
    const Manifest& dest, const std::optional<std::string>& dest_config, const Manifest& src) {
  std::optional<SignatureImage> out;
  std::optional<std::string> config = dest_config;
  Manifest merged = dest;
  for (const auto& layer : src.layers) {
    bool have = false;
    for (const auto& d : merged.layers) {
      have = have || (d.digest == layer.digest && d.annotations == layer.annotations);
    }
    if (have) continue;
    // AppendSignature adds the payload with its signature annotation; the
    // other annotations of the layer (certificate, bundle) come along.
    Descriptor payload = layer;
    std::string sig;
    if (auto a = payload.annotations.find(std::string(kSignatureAnnotation));
        a != payload.annotations.end()) {
      sig = a->second;
      payload.annotations.erase(a);
    }
    MC_ASSIGN_OR_RETURN(SignatureImage next, AppendSignature(merged, config, payload, sig));
    if (sig.empty())
      next.manifest.layers.back().annotations.erase(std::string(kSignatureAnnotation));
    merged = next.manifest;
    config = next.config;
    out = std::move(next);
  }
  return out;
}

std::optional<Descriptor> SubjectOf(std::string_view manifest_bytes) {
  json j = json::parse(manifest_bytes, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  auto s = j.find("subject");
  if (s == j.end() || !s->is_object()) return std::nullopt;
  auto d = DescriptorFromJson(*s);
  if (!d) return std::nullopt;
  return *d;
}

Result<Descriptor> ReferrerDescriptor(const RawManifest& manifest) {
  MC_ASSIGN_OR_RETURN(json j, ParseJson(manifest.bytes, "referrer " + manifest.digest.Short()));
  if (!j.is_object()) {
    return Fail(ErrorCode::kInvalidInput, "referrer " + manifest.digest.Short() + " is not JSON");
  }
  Descriptor d = manifest.ToDescriptor();
  d.platform.reset();
  if (auto at = j.find("artifactType"); at != j.end() && at->is_string()) {
    d.artifact_type = at->get<std::string>();
  } else if (auto c = j.find("config"); c != j.end() && c->is_object()) {
    if (auto mt = c->find("mediaType"); mt != c->end() && mt->is_string()) {
      d.artifact_type = mt->get<std::string>();
    }
  }
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) {
    for (auto it = a->begin(); it != a->end(); ++it) {
      if (it.value().is_string()) d.annotations[it.key()] = it.value().get<std::string>();
    }
  }
  return d;
}

bool IsSignatureType(std::string_view artifact_type) {
  return artifact_type == kCosignSigArtifact || artifact_type == kNotarySignature ||
         artifact_type.starts_with(kSigstoreBundlePrefix) || artifact_type == kSimpleSigning;
}

std::string ReferrersIndex(const std::vector<Descriptor>& referrers) {
  Index idx;
  idx.manifests = referrers;
  return SerializeIndex(idx);
}

Result<std::string> MergeReferrersIndex(std::string_view existing,
                                        const std::vector<Descriptor>& add, bool* changed) {
  Index idx;
  if (!existing.empty()) {
    MC_ASSIGN_OR_RETURN(idx, ParseIndex(existing, "referrers index"));
    idx.media_type = std::string(media::kOciIndex);
  }
  std::set<std::string> have;
  for (const auto& d : idx.manifests) have.insert(d.digest.String());
  bool any = false;
  for (const auto& d : add) {
    if (have.insert(d.digest.String()).second) {
      idx.manifests.push_back(d);
      any = true;
    }
  }
  if (changed) *changed = any;
  if (!any && !existing.empty()) return std::string(existing);
  return SerializeIndex(idx);
}

}  // namespace mc::oci::attach
