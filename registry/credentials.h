// Registry credentials: where they are looked up, and what was found.
//
// Lookup order (containers/image getAuthFilePaths, protocols.md 2.5):
//   1. --creds USER[:PASS] (no ":" means an empty password, as skopeo's
//      --creds USER does after prompting; we never prompt);
//   2. --authfile FILE: only that file (it must exist);
//   3. else REGISTRY_AUTH_FILE: only that file (a missing one is skipped);
//   4. else, in order, the first file with a match wins:
//      ${XDG_RUNTIME_DIR:-/run/containers/UID}/containers/auth.json (or
//      /run/containers/UID/auth.json when XDG_RUNTIME_DIR is unset),
//      ${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json,
//      $DOCKER_CONFIG/config.json or $HOME/.docker/config.json,
//      $HOME/.dockercfg (legacy: the map without the "auths" wrapper).
// Within a file: credHelpers[host] first, then "auths" keys most specific
// first (host/ns/repo → host/ns → host), then legacy URL keys
// ("https://host/v1/"), Docker Hub names normalised to docker.io; an entry
// that is empty ({}), or a docker config.json credsStore, hands over to
// docker-credential-NAME. A missing helper binary means "no credentials here"
// (debug log), and the search goes on.
//
// Thread guarantee: Keychain is immutable after construction; Resolve is
// safe for concurrent use. Resolve may run a helper process (blocking).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/error.h"

namespace mc::registry {

struct Credential {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token (protocols.md 2.3)
  std::string registry_token;  // a ready bearer token
  // Where the credential came from, for error messages: a file path,
  // "--creds" or "docker-credential-NAME". Never the secret. Empty: anonymous.
  std::string source;

  bool anonymous() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
  // "credentials from SOURCE" or "no credentials (anonymous)".
  std::string Describe() const;
};

struct KeychainOptions {
  std::optional<std::string> creds;    // --creds USER[:PASS]
  std::string creds_flag = "--creds";  // the flag `creds` came from, for messages
  std::string authfile;                // --authfile
  // Environment lookup (tests pass their own); default ::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  // Helper lookup PATH; default $PATH.
  std::optional<std::string> path;
};

class Keychain {
 public:
  explicit Keychain(KeychainOptions options);

  // Credentials for `registry` (host[:port]; docker.io, index.docker.io and
  // registry-1.docker.io are one) and `repository` ("ns/repo"). Anonymous
  // (source empty) when nothing matches. kInvalidInput for a malformed
  // --creds, a missing --authfile or a file that is not valid JSON, naming
  // the file; kUnauthorized when a helper fails for another reason than
  // "not found".
  oci::Result<Credential> Resolve(std::string_view registry, std::string_view repository) const;

  // The files searched, in order (for messages and tests).
  std::vector<std::string> SearchPaths() const;

 private:
  std::optional<std::string> Env(const std::string& name) const;

  KeychainOptions options_;
};

// Normalises a registry name or auth-file key to the host[:port] it names:
// drops a scheme and any path of a URL key, lower-cases, and maps Docker
// Hub aliases to "docker.io". Keys without a scheme keep their path
// ("quay.io/org" stays).
std::string NormalizeRegistryKey(std::string_view key);

// Runs `docker-credential-NAME get` with the server URL on stdin.
// nullopt when the helper binary is missing or reports "not found".
oci::Result<std::optional<Credential>> RunCredentialHelper(const std::string& name,
                                                           const std::string& server,
                                                           const std::string& path_env);

}  // namespace mc::registry
