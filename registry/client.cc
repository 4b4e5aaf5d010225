// Distribution API calls (protocols.md 1.1–1.5).
//
// Manifests are bytes, not JSON: the digest is over the exact bytes
// (1.5 "never re-serialize"), so GetManifest keeps what arrived and
// PutManifest sends what it is given. The Content-Type decides the media
// type, parameters ignored (1.2); a `mediaType` inside the body wins when
// the server labels the body generically (application/json).
//
// Mount follows go-containerregistry: `mount` and `from` always together
// (Quay needs both), and a 202 is not an error but a fresh session (1.4).
#include "registry/client.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "oci/media_types.h"
#include "registry/api_error.h"
#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry {
namespace {

constexpr size_t kMaxManifestBytes = 8 << 20;  // spec: at least 4 MB must work

std::optional<int64_t> ContentLength(const HttpResponse& r) {
  auto v = r.Header("content-length");
  if (!v) return std::nullopt;
  try {
    return std::stoll(*v);
  } catch (...) {
    return std::nullopt;
  }
}

std::string BodyMediaType(const std::string& bytes) {
  try {
    auto j = nlohmann::json::parse(bytes);
    if (j.is_object() && j.contains("mediaType") && j["mediaType"].is_string()) {
      return j["mediaType"].get<std::string>();
    }
  } catch (const nlohmann::json::exception&) {
  }
  return "";
}

}  // namespace

std::string StripMediaTypeParameters(std::string_view content_type) {
  return ToLower(TrimWhitespace(content_type.substr(0, content_type.find(';'))));
}

RegistryClient::RegistryClient(std::shared_ptr<Transport> transport, std::string base_url,
                               std::string registry, std::string repository)
    : transport_(std::move(transport)),
      base_url_(std::move(base_url)),
      registry_(std::move(registry)),
      repository_(std::move(repository)) {}

std::string RegistryClient::Describe() const { return "docker://" + registry_ + "/" + repository_; }

std::string RegistryClient::Url(std::string_view suffix) const {
  return base_url_ + "/v2/" + repository_ + "/" + std::string(suffix);
}

UploadTarget RegistryClient::Target() const {
  return UploadTarget{transport_, base_url_, repository_, registry_, Describe()};
}

oci::Result<void> RegistryClient::Ping() {
  HttpRequest req;
  req.url = base_url_ + "/v2/";
  req.idempotent = true;
  MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
  if (resp.status == 200) {
    (void)resp.ReadBody(64 << 10);
    return {};
  }
  return std::unexpected(ApiError(resp, {"ping " + base_url_ + "/v2/", registry_}));
}

oci::Result<std::vector<std::string>> RegistryClient::ListTags() {
  std::vector<std::string> tags;
  std::string url = Url("tags/list");
  const std::string what = "list tags of " + Describe();
  for (int page = 0; page < 10000; ++page) {
    HttpRequest req;
    req.url = url;
    req.idempotent = true;
    MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
    if (resp.status != 200) return std::unexpected(ApiError(resp, {what, registry_}));
    auto body = resp.ReadBody(kMaxManifestBytes);
    if (!body) return std::unexpected(body.error().Wrap(what));
    auto j = nlohmann::json::parse(*body, nullptr, false);
    if (!j.is_object()) {
      return oci::Fail(oci::ErrorCode::kInvalidInput, what + ": the registry's answer is not JSON");
    }
    if (j.contains("tags") && j["tags"].is_array()) {
      for (const auto& t : j["tags"]) {
        if (t.is_string()) tags.push_back(t.get<std::string>());
      }
    }
    auto next = NextPageLink(resp);
    if (!next) return tags;
    MC_ASSIGN_OR_RETURN(url, ResolveUrl(url, *next));
    if (!url.starts_with(base_url_ + "/")) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       what + ": the next page link leaves the registry: " + RedactUrl(url));
    }
  }
  return oci::Fail(oci::ErrorCode::kInvalidInput, what + ": more than 10000 pages of tags");
}

oci::Result<std::optional<oci::Descriptor>> RegistryClient::HeadManifest(
    const std::string& tag_or_digest) {
  HttpRequest req;
  req.method = "HEAD";
  req.url = Url("manifests/" + tag_or_digest);
  req.headers = {{"Accept", std::string(oci::media::kManifestAccept)}};
  req.idempotent = true;
  MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
  if (resp.status == 404) return std::nullopt;
  std::string what = "HEAD manifest " + Describe() + ":" + tag_or_digest;
  if (resp.status != 200) return std::unexpected(ApiError(resp, {what, registry_}));
  oci::Descriptor d;
  d.media_type = StripMediaTypeParameters(resp.Header("content-type").value_or(""));
  d.size = ContentLength(resp).value_or(-1);
  auto dcd = resp.Header("docker-content-digest");
  if (dcd) {
    MC_ASSIGN_OR_RETURN(d.digest, oci::Digest::Parse(*dcd));
  } else if (auto pinned = oci::Digest::Parse(tag_or_digest)) {
    d.digest = *pinned;
  }
  return d;
}

oci::Result<oci::RawManifest> RegistryClient::GetManifest(const std::string& tag_or_digest) {
  HttpRequest req;
  req.url = Url("manifests/" + tag_or_digest);
  req.headers = {{"Accept", std::string(oci::media::kManifestAccept)}};
  req.idempotent = true;
  std::string what = "GET manifest " + Describe() +
                     (tag_or_digest.starts_with("sha256:") ? "@" : ":") + tag_or_digest;
  MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
  if (resp.status != 200) return std::unexpected(ApiError(resp, {what, registry_}));
  auto bytes = resp.ReadBody(kMaxManifestBytes);
  if (!bytes) return std::unexpected(bytes.error().Wrap(what));
  std::string media_type = StripMediaTypeParameters(resp.Header("content-type").value_or(""));
  std::string inner = BodyMediaType(*bytes);
  if (!inner.empty() && inner != media_type) {
    if (!media_type.empty() && media_type != "application/json" && media_type != "text/plain") {
      Log()->warn("{}: Content-Type {} but the manifest says {}; using the latter", what,
                  media_type, inner);
    }
    media_type = inner;
  }
  auto m = oci::RawManifest::FromBytes(std::move(*bytes), media_type);
  if (auto pinned = oci::Digest::Parse(tag_or_digest); pinned && *pinned != m.digest) {
    return oci::Fail(oci::ErrorCode::kVerificationFailed,
                     what + ": the registry sent bytes with digest " + m.digest.String());
  }
  if (auto dcd = resp.Header("docker-content-digest"); dcd && *dcd != m.digest.String()) {
    return oci::Fail(oci::ErrorCode::kVerificationFailed, what + ": Docker-Content-Digest " + *dcd +
                                                              " does not match the bytes (" +
                                                              m.digest.String() + ")");
  }
  return m;
}

oci::Result<void> RegistryClient::PutManifest(const oci::RawManifest& manifest,
                                              const std::string& tag_or_digest) {
  MC_ASSIGN_OR_RETURN(std::string subject, PutManifestWithSubject(manifest, tag_or_digest));
  (void)subject;  // only referrers care whether the registry indexed a subject
  return {};
}

oci::Result<std::optional<int64_t>> RegistryClient::HeadBlob(const oci::Digest& digest) {
  HttpRequest req;
  req.method = "HEAD";
  req.url = Url("blobs/" + digest.String());
  req.idempotent = true;
  MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
  if (resp.status == 404) return std::nullopt;
  if (resp.status != 200) {
    return std::unexpected(
        ApiError(resp, {"HEAD blob " + digest.Short() + " in " + Describe(), registry_}));
  }
  return ContentLength(resp).value_or(-1);
}

oci::Result<BlobStream> RegistryClient::GetBlob(const oci::Digest& digest, uint64_t offset,
                                                uint64_t length) {
  HttpRequest req;
  req.url = Url("blobs/" + digest.String());
  if (offset > 0 || length > 0) {
    std::string range = "bytes=" + std::to_string(offset) + "-";
    if (length > 0) range += std::to_string(offset + length - 1);
    req.headers = {{"Range", range}};
  }
  req.idempotent = true;
  std::string what = "GET blob " + digest.Short() + " from " + Describe();
  MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
  BlobStream out;
  if (resp.status == 200) {
    out.size = ContentLength(resp).value_or(-1);
  } else if (resp.status == 206) {
    // Content-Range: bytes <start>-<end>/<total>
    std::string cr = resp.Header("content-range").value_or("");
    size_t sp = cr.find(' '), dash = cr.find('-'), slash = cr.find('/');
    try {
      out.offset = std::stoull(cr.substr(sp + 1, dash - sp - 1));
      if (slash != std::string::npos && cr.substr(slash + 1) != "*") {
        out.size = std::stoll(cr.substr(slash + 1));
      }
    } catch (...) {
      return oci::Fail(oci::ErrorCode::kInvalidInput, what + ": bad Content-Range \"" + cr + "\"");
    }
    if (out.offset != offset) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       what + ": asked for byte " + std::to_string(offset) + ", got " + cr);
    }
  } else {
    return std::unexpected(ApiError(resp, {what, registry_}));
  }
  out.body = std::move(resp.body);
  return out;
}

oci::Result<void> RegistryClient::ReadBlobRange(const oci::Digest& digest, uint64_t offset,
                                                uint64_t length, oci::Buffer& out) {
  if (length == 0) return {};
  if (length > out.free_space().size()) {
    return oci::Fail(oci::ErrorCode::kInternal,
                     "a range of " + std::to_string(length) + " bytes does not fit the buffer");
  }
  return StreamBlobRange(digest, offset, length, [&](std::span<const std::byte> data) {
    out.Append(data);
    return oci::Result<void>{};
  });
}

oci::Result<void> RegistryClient::StreamBlobRange(
    const oci::Digest& digest, uint64_t offset, uint64_t length,
    const std::function<oci::Result<void>(std::span<const std::byte>)>& sink) {
  if (length == 0) return {};
  HttpRequest req;
  req.url = Url("blobs/" + digest.String());
  req.headers = {
      {"Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1)}};
  req.idempotent = true;
  std::string what = "GET blob " + digest.Short() + " from " + Describe();
  uint64_t delivered = 0;
  BodyHandler handler;
  handler.on_response = [&](const HttpResponse& resp) -> oci::Result<void> {
    if (resp.status == 200) {
      if (offset == 0) return {};  // the whole blob from byte 0: we read `length` of it
      return oci::Fail(oci::ErrorCode::kRangeNotSatisfiable,
                       Describe() + " ignored a Range request for blob " + digest.Short());
    }
    // Content-Range: bytes <start>-<end>/<total>
    std::string cr = resp.Header("content-range").value_or("");
    size_t sp = cr.find(' '), dash = cr.find('-');
    uint64_t first = 0;
    try {
      first = std::stoull(cr.substr(sp + 1, dash - sp - 1));
    } catch (...) {
      return oci::Fail(oci::ErrorCode::kInvalidInput, what + ": bad Content-Range \"" + cr + "\"");
    }
    if (first != offset) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       what + ": asked for byte " + std::to_string(offset) + ", got " + cr);
    }
    return {};
  };
  bool overflow = false;
  handler.on_body = [&](std::span<const std::byte> data) -> oci::Result<void> {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length - delivered, data.size()));
    if (n > 0) {
      MC_RETURN_IF_ERROR(sink(data.first(n)));
      delivered += n;
    }
    if (n == data.size()) return {};
    // A 200 from byte 0 goes on past the range: we stop the transfer there.
    overflow = true;
    return oci::Fail(oci::ErrorCode::kCancelled, "range complete");
  };
  auto resp = transport_->SendStreaming(std::move(req), handler);
  if (!resp) {
    if (overflow && delivered == length) return {};
    return std::unexpected(resp.error());
  }
  if (resp->status != 200 && resp->status != 206) {
    return std::unexpected(ApiError(*resp, {what, registry_}));
  }
  if (delivered < length) {
    return oci::Fail(oci::ErrorCode::kTransient, what + ": the range ended after " +
                                                     std::to_string(delivered) + " of " +
                                                     std::to_string(length) + " bytes");
  }
  return {};
}

oci::Result<MountResult> RegistryClient::Mount(const oci::Digest& digest,
                                               const std::string& from_repository,
                                               UploadOptions options) {
  HttpRequest req;
  req.method = "POST";
  req.url = Url("blobs/uploads/?mount=" + digest.String() + "&from=" + from_repository);
  std::string request_url = req.url;
  std::string what = "mount " + digest.Short() + " from " + from_repository + " into " + Describe();
  MC_ASSIGN_OR_RETURN(auto resp, transport_->Send(std::move(req)));
  MountResult out;
  if (resp.status == 201) {
    (void)resp.ReadBody(64 << 10);
    out.mounted = true;
    return out;
  }
  if (resp.status == 202) {
    auto loc = resp.Header("location");
    (void)resp.ReadBody(64 << 10);
    if (!loc) return oci::Fail(oci::ErrorCode::kInvalidInput, what + ": 202 without Location");
    out.session = std::make_unique<UploadSession>(Target(), ResolveLocation(request_url, *loc),
                                                  std::move(options));
    return out;
  }
  return std::unexpected(ApiError(resp, {what, registry_}));
}

oci::Result<std::unique_ptr<UploadSession>> RegistryClient::StartUpload(UploadOptions options) {
  return UploadSession::Start(Target(), std::move(options));
}

oci::Result<std::unique_ptr<UploadSession>> RegistryClient::ResumeUpload(const std::string& url,
                                                                         UploadOptions options) {
  return UploadSession::Resume(Target(), url, std::move(options));
}

}  // namespace mc::registry
