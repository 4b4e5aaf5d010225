// Kubeflow Model Registry registration (REST v1alpha3, protocols.md 6).
//
// The registry has three objects: a RegisteredModel (name unique per
// registry), its ModelVersions (name unique within the model) and each
// version's ModelArtifacts (the oci:// URI KServe will pull). Nothing in the
// API is idempotent: a POST retried after a timeout creates a 409, and two
// pipeline runs registering the same model race. So we do what the Python
// client does (protocols.md 6.4): find by name, create only when missing, and
// on a 409 find again — the object someone else created is the one we want.
//
// A version that already exists is reused only when its artifact points at
// our URI. Pointing an existing version at other bytes silently would make
// the registry lie about what "1.0.0" is, so that is a conflict unless the
// caller asked for it (--allow-update), in which case we PATCH the artifact's
// uri (PATCH replaces only the fields it names, protocols.md "Pitfalls").
//
// Ids are strings holding integers ("1"); sending numbers gets a 400
// (protocols.md 6.1). We never log the bearer token: it only goes into the
// Authorization header, and errors name the URL path, never headers.
#include "engine/model_registry.h"

#include <cctype>
#include <filesystem>

#include "engine/metadata_store.h"
#include "oci/io.h"
#include "registry/curl_transport.h"
#include "registry/log.h"
#include "registry/retry.h"

namespace mc::engine {
namespace {

using nlohmann::json;
using oci::ErrorCode;
using oci::Fail;
using oci::Result;

constexpr size_t kMaxBody = 8 << 20;
constexpr int kMaxPages = 1000;

bool IsPrintableAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return !s.empty();
}

std::string ServerMessage(const json& body) {
  if (body.is_object()) {
    auto it = body.find("message");
    if (it != body.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

// Maps a non-2xx answer to an error naming the call and what to try.
oci::Error StatusError(const std::string& what, int status, const json& body, bool sent_token) {
  std::string msg = ServerMessage(body);
  std::string text =
      what + ": HTTP " + std::to_string(status) + (msg.empty() ? "" : " (" + msg + ")");
  ErrorCode code = ErrorCode::kNetwork;
  if (status == 401 || status == 403) {
    code = ErrorCode::kUnauthorized;
    text += sent_token ? ": the token was refused; check --token-file and that its user has the "
                         "registry-user-<registry> role"
                       : ": no token was sent; pass --token-file (a ServiceAccount or `oc whoami "
                         "-t` token)";
  } else if (status == 400 || status == 422) {
    code = ErrorCode::kInvalidInput;
  } else if (status == 404) {
    code = ErrorCode::kNotFound;
    text += ": check --url (the registry's base URL)";
  } else if (status == 409) {
    code = ErrorCode::kConflict;
  } else if (status == 429 || status >= 500) {
    code = ErrorCode::kTransient;
  }
  return oci::Error{code, text, status, std::nullopt};
}

const json* ItemsOf(const json& list) {
  if (!list.is_object()) return nullptr;
  auto it = list.find("items");
  if (it == list.end() || !it->is_array()) return nullptr;
  return &*it;
}

std::string StringField(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

Result<std::string> IdOf(const json& obj, const std::string& what) {
  std::string id = StringField(obj, "id");
  if (id.empty()) {
    return Fail(ErrorCode::kNetwork, "model registry returned a " + what + " without a string id");
  }
  return id;
}

json CustomProperties(const std::map<std::string, std::string>& props) {
  json out = json::object();
  for (const auto& [k, v] : props) out[k] = StringProperty(v);
  return out;
}

json ArtifactBody(const RegistrationRequest& r) {
  json a = {
      {"artifactType", "model-artifact"}, {"name", r.name}, {"uri", r.uri}, {"state", "LIVE"}};
  if (!r.description.empty()) a["description"] = r.description;
  if (!r.model_format_name.empty()) a["modelFormatName"] = r.model_format_name;
  if (!r.model_format_version.empty()) a["modelFormatVersion"] = r.model_format_version;
  constexpr std::string_view kHf = "hf://";
  if (r.source.starts_with(kHf)) {
    std::string name = r.source.substr(kHf.size());
    if (auto at = name.find('@'); at != std::string::npos) name.resize(at);
    a["modelSourceKind"] = "huggingface";
    a["modelSourceName"] = name;
  }
  return a;
}

json VersionBody(const RegistrationRequest& r, const std::string& model_id) {
  std::map<std::string, std::string> props;
  if (!r.source.empty()) props["source"] = r.source;
  if (!r.revision.empty()) props["revision"] = r.revision;
  for (const auto& [k, v] : r.properties) props[k] = v;  // the user's win
  json v = {{"name", r.version}, {"registeredModelId", model_id}, {"state", "LIVE"}};
  if (!r.author.empty()) v["author"] = r.author;
  if (!r.description.empty()) v["description"] = r.description;
  if (!props.empty()) v["customProperties"] = CustomProperties(props);
  return v;
}

// "docker://host/repo:tag@sha256:..." or "host/repo:tag" → "host/repo".
std::string RepositoryOf(std::string ref) {
  if (ref.starts_with("docker://")) ref.erase(0, 9);
  if (auto at = ref.find('@'); at != std::string::npos) ref.resize(at);
  size_t slash = ref.rfind('/');
  size_t colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    ref.resize(colon);
  return ref;
}

}  // namespace

json StringProperty(const std::string& value) {
  return {{"metadataType", "MetadataStringValue"}, {"string_value", value}};
}

std::string QueryEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<void> ValidateRegistration(const RegistrationRequest& r) {
  if (!IsPrintableAscii(r.name)) {
    return Fail(ErrorCode::kInvalidInput, "--name must be non-empty printable ASCII");
  }
  if (!IsPrintableAscii(r.version)) {
    return Fail(ErrorCode::kInvalidInput, "--version must be non-empty printable ASCII");
  }
  if (!r.uri.starts_with("oci://") || r.uri.size() <= 6) {
    return Fail(ErrorCode::kInvalidInput,
                "model URI \"" + r.uri + "\" is not oci://HOST/REPO@sha256:DIGEST");
  }
  if (r.uri.find("@sha256:") == std::string::npos) {
    registry::Log()->warn(
        "model URI {} is not pinned by digest; the registry entry can drift "
        "from the image (use oci://…@sha256:…)",
        r.uri);
  }
  return {};
}

json Registration::ToMetadata() const {
  return {{"url", url},
          {"name", name},
          {"version", version},
          {"uri", uri},
          {"registeredModelId", registered_model_id},
          {"modelVersionId", model_version_id},
          {"modelArtifactId", model_artifact_id},
          {"registeredAt", NowRfc3339()}};
}

ModelRegistryClient::ModelRegistryClient(std::shared_ptr<registry::Transport> transport,
                                         std::string url, std::string token)
    : transport_(std::move(transport)), token_(std::move(token)) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (!url.ends_with(kModelRegistryApiPath)) url += kModelRegistryApiPath;
  base_ = std::move(url);
}

Result<ModelRegistryClient::Reply> ModelRegistryClient::Call(const std::string& method,
                                                             const std::string& path,
                                                             const json* body) {
  registry::HttpRequest req;
  req.method = method;
  req.url = base_ + path;
  req.idempotent = method == "GET" || method == "PATCH";
  req.headers.emplace_back("Accept", "application/json");
  if (!token_.empty()) req.headers.emplace_back("Authorization", "Bearer " + token_);
  std::string payload;
  if (body) {
    payload = body->dump();
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = oci::AsBytes(payload);
    req.body_length = static_cast<int64_t>(payload.size());
  }
  std::string what = method + " " + registry::RedactUrl(req.url);
  auto resp = transport_->Send(std::move(req));
  if (!resp) return Wrap(resp.error(), what);
  Reply reply;
  reply.status = resp->status;
  if (resp->body) {
    auto text = oci::ReadAll(*resp->body, kMaxBody);
    if (!text) return Wrap(text.error(), what);
    reply.body = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (reply.body.is_discarded()) reply.body = nullptr;
  }
  registry::Log()->debug("model registry: {} -> {}", what, reply.status);
  if (reply.status / 100 == 2 || reply.status == 404 || reply.status == 409) return reply;
  return std::unexpected(StatusError(what, reply.status, reply.body, !token_.empty()));
}

Result<json> ModelRegistryClient::Find(const std::string& path) {
  MC_ASSIGN_OR_RETURN(Reply r, Call("GET", path));
  if (r.status == 404) return json(nullptr);
  if (r.status != 200 || !r.body.is_object()) {
    return std::unexpected(StatusError("GET " + base_ + path, r.status, r.body, !token_.empty()));
  }
  return r.body;
}

Result<json> ModelRegistryClient::FindOrCreate(const std::string& find_path,
                                               const std::string& create_path, const json& body,
                                               bool* created) {
  MC_ASSIGN_OR_RETURN(json found, Find(find_path));
  if (!found.is_null()) return found;
  MC_ASSIGN_OR_RETURN(Reply r, Call("POST", create_path, &body));
  if (r.status == 200 || r.status == 201) {
    *created = true;
    return r.body;
  }
  if (r.status == 409) {  // created meanwhile (a race, or our own retried POST)
    MC_ASSIGN_OR_RETURN(json again, Find(find_path));
    if (!again.is_null()) return again;
  }
  return std::unexpected(
      StatusError("POST " + base_ + create_path, r.status, r.body, !token_.empty()));
}

Result<json> ModelRegistryClient::ListAll(const std::string& path) {
  json items = json::array();
  std::string token;
  for (int page = 0; page < kMaxPages; ++page) {
    std::string p = path + "?pageSize=100";
    if (!token.empty()) p += "&nextPageToken=" + QueryEscape(token);
    MC_ASSIGN_OR_RETURN(Reply r, Call("GET", p));
    const json* list = ItemsOf(r.body);
    if (r.status != 200 || !list) {
      return std::unexpected(StatusError("GET " + base_ + p, r.status, r.body, !token_.empty()));
    }
    for (const json& item : *list) items.push_back(item);
    std::string next = StringField(r.body, "nextPageToken");
    if (list->empty() || next.empty() || next == token) break;
    token = next;
  }
  return items;
}

Result<void> ModelRegistryClient::EnsureArtifact(const RegistrationRequest& request,
                                                 Registration& out) {
  const std::string list_path =
      "/model_versions/" + QueryEscape(out.model_version_id) + "/artifacts";
  for (int attempt = 0; attempt < 2; ++attempt) {
    MC_ASSIGN_OR_RETURN(json items, ListAll(list_path));
    const json* other = nullptr;
    for (const json& a : items) {
      if (StringField(a, "artifactType") != "model-artifact") continue;
      if (StringField(a, "uri") == request.uri) {
        MC_ASSIGN_OR_RETURN(out.model_artifact_id, IdOf(a, "model artifact"));
        return {};
      }
      if (!other) other = &a;
    }
    if (other && !request.allow_update) {
      return Fail(ErrorCode::kConflict,
                  "model \"" + request.name + "\" version \"" + request.version +
                      "\" is already registered with URI " + StringField(*other, "uri") +
                      "; use a new --version, or --allow-update to point it at " + request.uri);
    }
    if (other) {
      MC_ASSIGN_OR_RETURN(out.model_artifact_id, IdOf(*other, "model artifact"));
      json patch = ArtifactBody(request);
      patch.erase("name");  // names cannot change (protocols.md 6.4)
      MC_ASSIGN_OR_RETURN(
          Reply r, Call("PATCH", "/model_artifacts/" + QueryEscape(out.model_artifact_id), &patch));
      if (r.status != 200) {
        return std::unexpected(
            StatusError("PATCH model artifact", r.status, r.body, !token_.empty()));
      }
      out.updated_artifact = true;
      return {};
    }
    json body = ArtifactBody(request);
    MC_ASSIGN_OR_RETURN(Reply r, Call("POST", list_path, &body));
    if (r.status == 200 || r.status == 201) {
      MC_ASSIGN_OR_RETURN(out.model_artifact_id, IdOf(r.body, "model artifact"));
      out.created_artifact = true;
      return {};
    }
    if (r.status != 409) {
      return std::unexpected(
          StatusError("POST " + base_ + list_path, r.status, r.body, !token_.empty()));
    }
    // 409: an artifact of that name appeared meanwhile; look again.
  }
  return Fail(ErrorCode::kConflict, "model registry keeps answering 409 for the artifact of \"" +
                                        request.name + "\" version \"" + request.version + "\"");
}

Result<Registration> ModelRegistryClient::Register(const RegistrationRequest& request) {
  MC_RETURN_IF_ERROR(ValidateRegistration(request));
  Registration out;
  out.url = base_;
  out.name = request.name;
  out.version = request.version;
  out.uri = request.uri;
  json model_body = {{"name", request.name}, {"state", "LIVE"}};
  if (!request.description.empty()) model_body["description"] = request.description;
  if (!request.author.empty()) model_body["owner"] = request.author;
  MC_ASSIGN_OR_RETURN(json model,
                      FindOrCreate("/registered_model?name=" + QueryEscape(request.name),
                                   "/registered_models", model_body, &out.created_model));
  MC_ASSIGN_OR_RETURN(out.registered_model_id, IdOf(model, "registered model"));

  MC_ASSIGN_OR_RETURN(json version,
                      FindOrCreate("/model_version?name=" + QueryEscape(request.version) +
                                       "&parentResourceId=" + QueryEscape(out.registered_model_id),
                                   "/model_versions", VersionBody(request, out.registered_model_id),
                                   &out.created_version));
  MC_ASSIGN_OR_RETURN(out.model_version_id, IdOf(version, "model version"));
  MC_RETURN_IF_ERROR(EnsureArtifact(request, out));
  return out;
}

Result<std::string> RegistrationUriFromMetadata(const json& doc) {
  auto pinned = [](const json& entry) -> std::string {
    std::string ref = StringField(entry, "reference");
    std::string digest = StringField(entry, "digest");
    if (ref.empty() || !digest.starts_with("sha256:")) return "";
    return "oci://" + RepositoryOf(ref) + "@" + digest;
  };
  if (const json* mirrors = GetPath(doc, "mirrors"); mirrors && mirrors->is_array()) {
    for (auto it = mirrors->rbegin(); it != mirrors->rend(); ++it) {
      if (std::string uri = pinned(*it); !uri.empty()) return uri;
    }
  }
  if (const json* image = GetPath(doc, "image")) {
    if (std::string uri = pinned(*image); !uri.empty()) return uri;
  }
  return Fail(ErrorCode::kInvalidInput,
              "the metadata file has no mirror or image with a reference and a sha256 digest; "
              "run build/copy with --metadata first, or pass --uri");
}

Result<std::string> LoadBearerToken(const std::string& token_file) {
  std::string path = token_file;
  if (path.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(kServiceAccountTokenPath, ec)) return std::string();
    path = kServiceAccountTokenPath;
  }
  auto text = oci::ReadFileToString(path, 1 << 20);
  if (!text) {
    return Fail(ErrorCode::kInvalidInput,
                "cannot read token file " + path + ": " + text.error().message);
  }
  std::string token = *text;
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  size_t start = 0;
  while (start < token.size() && std::isspace(static_cast<unsigned char>(token[start]))) ++start;
  token.erase(0, start);
  if (token.empty()) return Fail(ErrorCode::kInvalidInput, "token file " + path + " is empty");
  return token;
}

std::shared_ptr<registry::Transport> NewModelRegistryTransport(
    const registry::TransportOptions& options) {
  return registry::NewRetryTransport(registry::NewCurlTransport(options), options.retry_times);
}

Result<void> RecordRegistration(MetadataStore& store, const Registration& reg) {
  auto r = store.Update([&](json& doc) -> Result<void> {
    MC_RETURN_IF_ERROR(AppendPath(doc, "registrations", reg.ToMetadata()));
    json* list = &doc["registrations"];
    // One entry per (registry, version): a re-run replaces its earlier entry.
    for (size_t i = 0; i + 1 < list->size(); ++i) {
      const json& e = (*list)[i];
      if (StringField(e, "url") == reg.url &&
          StringField(e, "modelVersionId") == reg.model_version_id) {
        list->erase(i);
        break;
      }
    }
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace mc::engine
