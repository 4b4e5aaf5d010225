// OCI 1.1 referrers on a registry (protocols.md 1.5, 1.6): the referrers API,
// the OCI-Subject header of a manifest PUT, and manifests that may be absent
// (cosign's tags, the fallback tag).
#include <nlohmann/json.hpp>

#include "oci/media_types.h"
#include "registry/api_error.h"
#include "registry/client.h"
#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry {
namespace {

constexpr size_t kMaxIndexBytes = 8 << 20;
constexpr int kMaxPages = 1000;

}  // namespace

oci::Result<std::optional<std::vector<oci::Descriptor>>> RegistryClient::GetReferrers(
    const oci::Digest& digest) {
  std::vector<oci::Descriptor> out;
  std::string url = Url("referrers/" + digest.String());
  const std::string what = "list referrers of " + Describe() + "@" + digest.String();
  for (int page = 0; page < kMaxPages; ++page) {
    HttpRequest req;
    req.url = url;
    req.headers = {{"Accept", std::string(oci::media::kOciIndex)}};
    req.idempotent = true;
    MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
    if (page == 0 &&
        (resp.status == 404 || resp.status == 400 || resp.status == 405 || resp.status == 501)) {
      (void)resp.ReadBody(64 << 10);
      return std::optional<std::vector<oci::Descriptor>>{};
    }
    if (resp.status != 200) return std::unexpected(ApiError(resp, {what, registry_}));
    auto body = resp.ReadBody(kMaxIndexBytes);
    if (!body) return std::unexpected(body.error().Wrap(what));
    auto j = nlohmann::json::parse(*body, nullptr, false);
    if (!j.is_object() || !j.contains("manifests") || !j["manifests"].is_array()) {
      if (page == 0) {
        Log()->debug("{}: the answer is not an image index; taking it as no referrers API", what);
        return std::optional<std::vector<oci::Descriptor>>{};
      }
      return oci::Fail(oci::ErrorCode::kInvalidInput, what + ": a page is not an image index");
    }
    for (const auto& m : j["manifests"]) {
      auto d = oci::DescriptorFromJson(m);
      if (!d) return std::unexpected(d.error().Wrap(what));
      out.push_back(std::move(*d));
    }
    auto next = NextPageLink(resp);
    if (!next) return std::optional<std::vector<oci::Descriptor>>(std::move(out));
    MC_ASSIGN_OR_RETURN(url, ResolveUrl(url, *next));
    if (!url.starts_with(base_url_ + "/")) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       what + ": the next page link leaves the registry: " + RedactUrl(url));
    }
  }
  return oci::Fail(oci::ErrorCode::kInvalidInput,
                   what + ": more than " + std::to_string(kMaxPages) + " pages");
}

oci::Result<std::string> RegistryClient::PutManifestWithSubject(const oci::RawManifest& manifest,
                                                                const std::string& tag_or_digest) {
  HttpRequest req;
  req.method = "PUT";
  req.url = Url("manifests/" + tag_or_digest);
  req.headers = {{"Content-Type", manifest.media_type}};
  req.body = oci::AsBytes(manifest.bytes);
  req.idempotent = true;
  std::string what = "PUT manifest " + Describe() +
                     (tag_or_digest.starts_with("sha256:") ? "@" : ":") + tag_or_digest;
  MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
  if (resp.status != 201 && resp.status != 200 && resp.status != 202) {
    return std::unexpected(ApiError(resp, {what, registry_}));
  }
  (void)resp.ReadBody(64 << 10);
  oci::Digest want = oci::Digest::Of(manifest.bytes);
  if (auto dcd = resp.Header("docker-content-digest"); dcd && *dcd != want.String()) {
    return oci::Fail(oci::ErrorCode::kVerificationFailed,
                     what + ": the registry stored digest " + *dcd + ", ours is " + want.String());
  }
  return resp.Header("oci-subject").value_or("");
}

oci::Result<std::optional<oci::RawManifest>> RegistryClient::GetManifestIfPresent(
    const std::string& tag_or_digest) {
  auto m = GetManifest(tag_or_digest);
  if (m) return std::optional<oci::RawManifest>(std::move(*m));
  if (m.error().code == oci::ErrorCode::kNotFound) return std::optional<oci::RawManifest>{};
  return std::unexpected(m.error());
}

}  // namespace mc::registry
