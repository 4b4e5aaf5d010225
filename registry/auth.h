// Registry authentication: Basic, and Bearer tokens from the registry's token
// server (protocols.md 2.1–2.4; distribution docs/spec/auth/token.md).
//
// AuthTransport wraps a Transport. It sends nothing until the registry asks:
// the first 401 carries a WWW-Authenticate challenge; from then on every
// request carries `Authorization: Basic …` or `Authorization: Bearer TOKEN`.
// Tokens are cached per (realm, service, scope set), refreshed shortly before
// they expire (so a long upload keeps a valid token), and fetched again once
// when a request gets a 401 anyway; scopes named by a challenge
// (insufficient_scope) are added to the set.
//
// What the caller sees:
// - a request answered 401 is sent once more with new credentials when its
//   body can be resent (none, or an in-memory span); a request with a
//   streamed body_reader gets the 401 response back once the credentials
//   are updated, and must resend the body itself;
// - a 401 that persists becomes kUnauthorized "authentication to REGISTRY
//   failed (credentials from SOURCE): …", as does a token server's 401/403;
//   the message never contains a secret;
// - a realm on an internal address of another host is refused (ggcr
//   validateRealmURL), loopback→loopback allowed for tests.
//
// Thread guarantee: safe for concurrent use (token fetches are serialised).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/credentials.h"
#include "registry/transport.h"

namespace mc::registry {

struct Challenge {
  std::string scheme;                         // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lower case, values unquoted
  std::string Param(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? "" : it->second;
  }
};

// Parses a WWW-Authenticate value (RFC 9110 §11.6.1 / RFC 6750 §3): several
// challenges, auth-params with quoted values that may hold commas, colons
// and escaped quotes. Unparsable tails are dropped.
std::vector<Challenge> ParseChallenges(std::string_view header);

// Adds the space-separated scopes of `challenge_scope` missing from `scopes`
// (order kept: existing first). Returns whether anything was added.
bool MergeScopes(std::vector<std::string>& scopes, std::string_view challenge_scope);

// realm?service=S&scope=A&scope=B (merged into a query already in realm).
std::string BuildTokenUrl(std::string_view realm, std::string_view service,
                          const std::vector<std::string>& scopes);

using Clock = std::function<std::chrono::system_clock::time_point()>;

struct Token {
  std::string value;
  std::chrono::system_clock::time_point obtained;  // issued_at, or receipt
  std::chrono::system_clock::time_point expires;
  // Refresh once less than max(10% of the lifetime, 30 s) remains, but never
  // before half the lifetime has passed.
  bool NeedsRefresh(std::chrono::system_clock::time_point now) const;
};

// Parses a token server's JSON: token (or access_token), expires_in
// (default 60 s), issued_at (RFC 3339; ignored when in the future or older
// than the lifetime). kNetwork when no token is present.
oci::Result<Token> ParseTokenResponse(std::string_view body,
                                      std::chrono::system_clock::time_point now);

// Tokens by (realm, service, scope set). Safe for concurrent use; may be
// shared by several AuthTransports of one run.
class TokenCache {
 public:
  std::optional<Token> Get(const std::string& key) const;
  void Put(const std::string& key, Token token);
  void Drop(const std::string& key);
  static std::string Key(std::string_view realm, std::string_view service,
                         std::vector<std::string> scopes);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Token> tokens_;  // guarded by mu_
};

struct AuthConfig {
  std::string registry;  // host[:port], for messages
  Credential credential;
  // "repository:NAME:ACTIONS", push scope first (some registries honour only
  // the first); a mount adds "repository:SOURCE:pull".
  std::vector<std::string> scopes;
  // Transport for the token server (usually the same retry+curl stack).
  std::shared_ptr<Transport> token_transport;
  Clock clock;                        // default std::chrono::system_clock::now
  std::shared_ptr<TokenCache> cache;  // default: a private cache
  std::string client_id = "mc-engine";
};

std::shared_ptr<Transport> NewAuthTransport(std::shared_ptr<Transport> inner, AuthConfig cfg);

}  // namespace mc::registry
