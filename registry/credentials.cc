// Credential lookup, compatible with skopeo/podman/buildah and docker.
//
// We follow containers/image pkg/docker/config/config.go because the files
// our users have were written by `podman login`/`skopeo login` (auth.json)
// or by Tekton's creds-init and `docker login` (config.json): both must work
// unchanged. The differences that matter (protocols.md 2.5):
// - containers tooling accepts namespaced keys (quay.io/org/repo) and picks
//   the most specific; docker only knows hosts and legacy URL keys;
// - docker's global credsStore applies to docker's config.json only;
// - helpers are rarely installed in pods, so a missing helper is not fatal.
#include "registry/credentials.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "oci/io.h"
#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

enum class FileKind { kContainers, kDocker, kLegacy };

struct AuthPath {
  std::string path;
  FileKind kind;
};

bool HasScheme(std::string_view key) { return key.find("://") != std::string_view::npos; }

std::string HostAlias(std::string host) {
  if (host == "index.docker.io" || host == "registry-1.docker.io") return "docker.io";
  return host;
}

// Server URL handed to helpers (docker's own convention for Docker Hub).
std::string HelperServer(const std::string& registry) {
  return registry == "docker.io" ? "https://index.docker.io/v1/" : registry;
}

oci::Result<Credential> DecodeEntry(const json& e, const std::string& key,
                                    const std::string& path) {
  Credential c;
  c.source = path;
  std::string auth = e.value("auth", "");
  if (!auth.empty()) {
    auto decoded = Base64Decode(auth);
    if (!decoded) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       path + ": the \"auth\" field of \"" + key + "\" is not valid base64");
    }
    std::string s = *decoded;
    while (!s.empty() && s.back() == '\0') s.pop_back();
    while (!s.empty() && s.front() == '\0') s.erase(0, 1);
    size_t colon = s.find(':');
    if (colon == std::string::npos) {
      return oci::Fail(oci::ErrorCode::kInvalidInput, path + ": the \"auth\" field of \"" + key +
                                                          "\" is not base64(user:password)");
    }
    c.username = s.substr(0, colon);
    c.password = s.substr(colon + 1);
  } else {
    c.username = e.value("username", "");
    c.password = e.value("password", "");
  }
  c.identity_token = e.value("identitytoken", "");
  c.registry_token = e.value("registrytoken", "");
  return c;
}

bool IsEmptyEntry(const json& e) {
  return !e.is_object() ||
         (e.value("auth", "").empty() && e.value("username", "").empty() &&
          e.value("identitytoken", "").empty() && e.value("registrytoken", "").empty());
}

// The auths entry for registry/repository, most specific key first.
const json* FindEntry(const json& auths, const std::string& registry, std::string_view repo,
                      std::string* matched_key) {
  std::vector<std::string> candidates;
  std::string name = registry + (repo.empty() ? "" : "/" + std::string(repo));
  while (true) {
    candidates.push_back(name);
    size_t slash = name.rfind('/');
    if (slash == std::string::npos) break;
    name.resize(slash);
  }
  for (const auto& want : candidates) {
    for (const auto& [k, v] : auths.items()) {
      if (!HasScheme(k) && NormalizeRegistryKey(k) == want) {
        *matched_key = k;
        return &v;
      }
    }
  }
  for (const auto& [k, v] : auths.items()) {  // legacy URL keys: host only
    if (HasScheme(k) && NormalizeRegistryKey(k) == registry) {
      *matched_key = k;
      return &v;
    }
  }
  return nullptr;
}

oci::Result<std::optional<Credential>> Helper(const std::string& name, const std::string& registry,
                                              const std::string& path_env) {
  MC_ASSIGN_OR_RETURN(auto c, RunCredentialHelper(name, HelperServer(registry), path_env));
  if (!c) Log()->debug("docker-credential-{} has no credentials for {}", name, registry);
  return c;
}

oci::Result<std::optional<Credential>> SearchFile(const AuthPath& f, const std::string& registry,
                                                  std::string_view repo,
                                                  const std::string& path_env) {
  auto text = oci::ReadFileToString(f.path, 16 << 20);
  if (!text) {
    if (text.error().code == oci::ErrorCode::kNotFound) return std::nullopt;
    return std::unexpected(text.error());
  }
  json root = json::parse(*text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     f.path + " is not a valid auth file (expected a JSON object)");
  }
  if (f.kind != FileKind::kLegacy && root.contains("credHelpers") &&
      root["credHelpers"].is_object()) {
    for (const auto& [k, v] : root["credHelpers"].items()) {
      if (NormalizeRegistryKey(k) == registry && v.is_string()) {
        MC_ASSIGN_OR_RETURN(auto c, Helper(v.get<std::string>(), registry, path_env));
        if (c) return c;
      }
    }
  }
  const json& auths = f.kind == FileKind::kLegacy ? root : root.value("auths", json::object());
  std::string store = f.kind == FileKind::kDocker ? root.value("credsStore", "") : "";
  std::string key;
  if (const json* e = auths.is_object() ? FindEntry(auths, registry, repo, &key) : nullptr) {
    if (!IsEmptyEntry(*e)) {
      MC_ASSIGN_OR_RETURN(Credential c, DecodeEntry(*e, key, f.path));
      return c;
    }
    if (store.empty()) Log()->debug("{}: empty entry for {} and no credsStore", f.path, key);
  }
  if (!store.empty()) return Helper(store, registry, path_env);
  return std::nullopt;
}

}  // namespace

std::string Credential::Describe() const {
  return source.empty() ? "no credentials (anonymous)" : "credentials from " + source;
}

std::string NormalizeRegistryKey(std::string_view key_in) {
  std::string key = std::string(TrimWhitespace(key_in));
  if (HasScheme(key)) {
    key = key.substr(key.find("://") + 3);
    key = key.substr(0, key.find('/'));
    return HostAlias(ToLower(key));
  }
  size_t slash = key.find('/');
  std::string host = ToLower(key.substr(0, slash));
  std::string rest = slash == std::string::npos ? "" : key.substr(slash);
  return HostAlias(host) + rest;
}

Keychain::Keychain(KeychainOptions options) : options_(std::move(options)) {}

std::optional<std::string> Keychain::Env(const std::string& name) const {
  if (options_.getenv) return options_.getenv(name);
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

std::vector<std::string> Keychain::SearchPaths() const {
  std::vector<std::string> out;
  if (!options_.authfile.empty()) return {options_.authfile};
  if (auto f = Env("REGISTRY_AUTH_FILE"); f && !f->empty()) return {*f};
  auto runtime = Env("XDG_RUNTIME_DIR");
  out.push_back(runtime && !runtime->empty()
                    ? *runtime + "/containers/auth.json"
                    : "/run/containers/" + std::to_string(::getuid()) + "/auth.json");
  std::string home = Env("HOME").value_or("");
  auto config = Env("XDG_CONFIG_HOME");
  if (config && !config->empty()) {
    out.push_back(*config + "/containers/auth.json");
  } else if (!home.empty()) {
    out.push_back(home + "/.config/containers/auth.json");
  }
  auto docker = Env("DOCKER_CONFIG");
  if (docker && !docker->empty()) {
    out.push_back(*docker + "/config.json");
  } else if (!home.empty()) {
    out.push_back(home + "/.docker/config.json");
  }
  if (!home.empty()) out.push_back(home + "/.dockercfg");
  return out;
}

oci::Result<Credential> Keychain::Resolve(std::string_view registry_in,
                                          std::string_view repository) const {
  if (options_.creds) {
    const std::string& s = *options_.creds;
    size_t colon = s.find(':');
    Credential c;
    c.username = s.substr(0, colon);
    if (colon != std::string::npos) c.password = s.substr(colon + 1);
    if (c.username.empty()) {
      return oci::Fail(
          oci::ErrorCode::kInvalidInput,
          options_.creds_flag + " needs USERNAME[:PASSWORD] with a non-empty user name");
    }
    c.source = options_.creds_flag;
    return c;
  }
  if (!options_.authfile.empty() && !fs::exists(options_.authfile)) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "--authfile " + options_.authfile + " does not exist");
  }
  std::string registry = NormalizeRegistryKey(registry_in);
  std::string path_env = options_.path ? *options_.path : Env("PATH").value_or("/usr/bin:/bin");
  std::vector<std::string> paths = SearchPaths();
  bool explicit_file = paths.size() == 1;
  for (size_t i = 0; i < paths.size(); ++i) {
    FileKind kind = FileKind::kContainers;
    if (!explicit_file && paths[i].ends_with("/.dockercfg")) kind = FileKind::kLegacy;
    if (!explicit_file && paths[i].ends_with("/config.json")) kind = FileKind::kDocker;
    MC_ASSIGN_OR_RETURN(auto c, SearchFile({paths[i], kind}, registry, repository, path_env));
    if (c) {
      Log()->debug("using credentials for {} from {}", registry, c->source);
      return *c;
    }
  }
  return Credential{};
}

}  // namespace mc::registry
