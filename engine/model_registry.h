// Registering a model version in the Kubeflow Model Registry (REST API
// v1alpha3, protocols.md section 6), idempotently: re-running finds what an
// earlier run created instead of creating it again.
//
// Thread guarantee: one thread at a time per client (the transport underneath
// may be shared). Calls block on the network.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "oci/error.h"
#include "registry/transport.h"

namespace mc::engine {

inline constexpr std::string_view kModelRegistryApiPath = "/api/model_registry/v1alpha3";

struct RegistrationRequest {
  std::string name;     // RegisteredModel name (unique per registry)
  std::string version;  // ModelVersion name (unique within the model)
  std::string uri;      // ModelArtifact uri: oci://HOST/REPO@sha256:...
  std::string description;
  // String customProperties of the version ("MetadataStringValue").
  std::map<std::string, std::string> properties;
  std::string model_format_name;     // e.g. "pytorch", "vLLM"; "" = unset
  std::string model_format_version;  // "" = unset
  // Where the weights came from ("hf://org/name") and their revision, when
  // known: sets the artifact's modelSource* fields and version properties.
  std::string source;
  std::string revision;
  std::string author = "mc-engine";
  // An existing version whose artifact has another URI: repoint the artifact
  // (true) or fail with kConflict (false, the Python client's behaviour).
  bool allow_update = false;
};

struct Registration {
  std::string url;  // the API base URL used
  std::string name, version, uri;
  std::string registered_model_id;
  std::string model_version_id;
  std::string model_artifact_id;
  bool created_model = false;
  bool created_version = false;
  bool created_artifact = false;
  bool updated_artifact = false;

  // The publish-metadata.json "registrations[]" entry.
  nlohmann::json ToMetadata() const;
};

class ModelRegistryClient {
 public:
  // `url`: the registry's base URL, with or without kModelRegistryApiPath.
  // `token`: sent as "Authorization: Bearer"; "" sends none. The token never
  // appears in errors or logs.
  ModelRegistryClient(std::shared_ptr<registry::Transport> transport, std::string url,
                      std::string token);

  // Finds or creates the model, the version and its artifact (protocols.md
  // 6.4). Errors: kInvalidInput (bad request fields, a 400/422 answer),
  // kUnauthorized (401/403), kConflict (the version exists with another URI
  // and !allow_update), kNotFound (bad base URL), kTransient/kNetwork.
  oci::Result<Registration> Register(const RegistrationRequest& request);

  const std::string& base_url() const { return base_; }

 private:
  struct Reply {
    int status = 0;
    nlohmann::json body;
  };
  oci::Result<Reply> Call(const std::string& method, const std::string& path,
                          const nlohmann::json* body = nullptr);
  // GET a "find" endpoint: the object, or null on 404.
  oci::Result<nlohmann::json> Find(const std::string& path);
  // Find, else create, else (409: someone else created it) find again.
  oci::Result<nlohmann::json> FindOrCreate(const std::string& find_path,
                                           const std::string& create_path,
                                           const nlohmann::json& body, bool* created);
  oci::Result<nlohmann::json> ListAll(const std::string& path);
  oci::Result<void> EnsureArtifact(const RegistrationRequest& request, Registration& out);

  std::shared_ptr<registry::Transport> transport_;
  std::string base_;
  std::string token_;
};

class MetadataStore;

// Where Kubernetes mounts the pod's ServiceAccount token.
inline constexpr char kServiceAccountTokenPath[] =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";

// The bearer token: the trimmed content of `token_file` when given
// (kInvalidInput when unreadable or empty), else of kServiceAccountTokenPath
// when that exists, else "" (no token).
oci::Result<std::string> LoadBearerToken(const std::string& token_file);

// libcurl with retries of transient failures (a retried POST that did land
// shows up as a 409, which Register handles).
std::shared_ptr<registry::Transport> NewModelRegistryTransport(
    const registry::TransportOptions& options);

// The URI to register from publish-metadata.json: the last mirror with a
// digest, else the image: "oci://HOST/REPO@sha256:...". kInvalidInput if none.
oci::Result<std::string> RegistrationUriFromMetadata(const nlohmann::json& doc);

// Adds `reg` to the metadata's "registrations" array, replacing an earlier
// entry for the same registry URL and model version.
oci::Result<void> RecordRegistration(MetadataStore& store, const Registration& reg);

// Checks the request before any network call: names non-empty printable
// ASCII, an oci:// URI (a digest-pinned one is recommended, not required).
oci::Result<void> ValidateRegistration(const RegistrationRequest& request);

// customProperties value of a string (protocols.md 6.3).
nlohmann::json StringProperty(const std::string& value);

// Percent-encodes a query-string value (RFC 3986 unreserved kept).
std::string QueryEscape(std::string_view s);

}  // namespace mc::engine
