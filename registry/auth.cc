// AuthTransport: the registry token dance (distribution docs/spec/auth/
// token.md, oauth.md; ggcr pkg/v1/remote/transport/bearer.go).
//
// Why lazy: we only learn the scheme, realm and service from the registry's
// first 401, and we must not hand credentials to a server that did not ask.
// Why refresh early: a multi-GiB upload outlives a 60 s token; refreshing
// before expiry (Token::NeedsRefresh) keeps chunk PATCHes from bouncing.
// Why one retry only: a second 401 with a fresh token means the grant is not
// enough (or the credentials are wrong); looping would hammer the server.
#include "registry/auth.h"

#include <functional>

#include <nlohmann/json.hpp>

#include "registry/http_util.h"
#include "registry/log.h"

namespace mc::registry {
namespace {

using std::chrono::system_clock;

enum class Mode { kUnknown, kBasic, kBearer };

// A short, secret-free reason from a token server's or registry's error body.
std::string ErrorDetail(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "";
  for (const char* k : {"details", "error_description", "message"}) {
    if (j.contains(k) && j[k].is_string()) return j[k].get<std::string>().substr(0, 200);
  }
  if (j.contains("errors") && j["errors"].is_array() && !j["errors"].empty() &&
      j["errors"][0].is_object()) {
    return j["errors"][0].value("message", j["errors"][0].value("code", "")).substr(0, 200);
  }
  return "";
}

class AuthTransport final : public Transport {
 public:
  AuthTransport(std::shared_ptr<Transport> inner, AuthConfig cfg)
      : inner_(std::move(inner)), cfg_(std::move(cfg)), scopes_(cfg_.scopes) {
    if (!cfg_.clock) cfg_.clock = [] { return system_clock::now(); };
    if (!cfg_.cache) cfg_.cache = std::make_shared<TokenCache>();
    if (!cfg_.token_transport) cfg_.token_transport = inner_;
  }

  oci::Result<HttpResponse> Send(HttpRequest request) override;
  // The same challenge handling; the handler sees only the final 2xx body.
  oci::Result<HttpResponse> SendStreaming(HttpRequest request, const BodyHandler& handler) override;

 private:
  oci::Result<HttpResponse> Exchange(HttpRequest& request,
                                     const std::function<oci::Result<HttpResponse>()>& send);
  oci::Result<void> Authorize(HttpRequest& request);
  oci::Result<bool> OnChallenge(const std::string& header, const std::string& url);
  oci::Result<std::string> BearerToken(bool force);
  oci::Result<Token> FetchToken(const std::string& realm, const std::string& service,
                                const std::vector<std::string>& scopes);
  oci::Result<HttpResponse> PostOAuth(const std::string& realm, const std::string& service,
                                      const std::vector<std::string>& scopes);
  oci::Error Failure(const std::string& what) const {
    return oci::Error{oci::ErrorCode::kUnauthorized,
                      "authentication to " + cfg_.registry + " failed (" +
                          cfg_.credential.Describe() + "): " + what,
                      401, std::nullopt};
  }

  std::shared_ptr<Transport> inner_;
  AuthConfig cfg_;
  std::mutex mu_;  // guards the fields below
  Mode mode_ = Mode::kUnknown;
  std::string realm_, service_;
  std::vector<std::string> scopes_;
  std::mutex fetch_mu_;  // serialises token fetches
};

oci::Result<void> AuthTransport::Authorize(HttpRequest& request) {
  Mode mode;
  {
    std::lock_guard lock(mu_);
    mode = mode_;
  }
  std::string value;
  if (mode == Mode::kBasic) {
    value = "Basic " + Base64Encode(cfg_.credential.username + ":" + cfg_.credential.password);
  } else if (mode == Mode::kBearer) {
    MC_ASSIGN_OR_RETURN(std::string token, BearerToken(false));
    value = "Bearer " + token;
  } else {
    return {};
  }
  std::erase_if(request.headers,
                [](const auto& h) { return EqualsIgnoreCase(h.first, "authorization"); });
  request.headers.emplace_back("Authorization", std::move(value));
  return {};
}

// One exchange with the challenge dance around it: `send` performs the
// request (plain or streaming); a 401 with a challenge we can answer is sent
// once more with fresh credentials. A streamed request body cannot be sent
// twice: its 401 goes back to the caller, who resends the stream.
oci::Result<HttpResponse> AuthTransport::Exchange(
    HttpRequest& request, const std::function<oci::Result<HttpResponse>()>& send) {
  MC_RETURN_IF_ERROR(Authorize(request));
  MC_ASSIGN_OR_RETURN(HttpResponse resp, send());
  if (resp.status != 401) return resp;
  auto header = resp.Header("www-authenticate");
  std::string what = "HTTP 401 on " + request.method + " " + RedactUrl(request.url);
  if (!header) return std::unexpected(Failure(what + " without a WWW-Authenticate challenge"));
  MC_ASSIGN_OR_RETURN(bool changed, OnChallenge(*header, request.url));
  if (!changed) {
    std::string detail = ErrorDetail(resp.ReadBody(64 << 10).value_or(""));
    return std::unexpected(Failure(what + (detail.empty() ? "" : ": " + detail)));
  }
  if (request.body_reader) return resp;  // the caller resends the stream
  (void)resp.ReadBody(64 << 10);
  MC_RETURN_IF_ERROR(Authorize(request));
  MC_ASSIGN_OR_RETURN(HttpResponse again, send());
  if (again.status != 401) return again;
  std::string detail = ErrorDetail(again.ReadBody(64 << 10).value_or(""));
  return std::unexpected(
      Failure(what + " even with fresh credentials" + (detail.empty() ? "" : ": " + detail)));
}

oci::Result<HttpResponse> AuthTransport::Send(HttpRequest request) {
  return Exchange(request, [&] { return inner_->Send(request); });
}

oci::Result<HttpResponse> AuthTransport::SendStreaming(HttpRequest request,
                                                       const BodyHandler& handler) {
  if (request.body_reader) return Transport::SendStreaming(std::move(request), handler);
  return Exchange(request, [&] { return inner_->SendStreaming(request, handler); });
}

// Updates mode, realm and scopes from a challenge. Returns whether a retry
// can succeed (new or refreshed credentials).
oci::Result<bool> AuthTransport::OnChallenge(const std::string& header, const std::string& url) {
  auto challenges = ParseChallenges(header);
  auto bearer = std::find_if(challenges.begin(), challenges.end(),
                             [](const Challenge& c) { return c.scheme == "bearer"; });
  auto basic = std::find_if(challenges.begin(), challenges.end(),
                            [](const Challenge& c) { return c.scheme == "basic"; });
  const Credential& cred = cfg_.credential;
  if (bearer == challenges.end()) {
    if (basic == challenges.end() || cred.username.empty()) return false;
    std::lock_guard lock(mu_);
    if (mode_ == Mode::kBasic) return false;  // we sent these credentials already
    mode_ = Mode::kBasic;
    return true;
  }
  std::string realm = bearer->Param("realm");
  MC_ASSIGN_OR_RETURN(UrlParts req_parts, ParseUrl(url));
  auto realm_parts = ParseUrl(realm);
  if (!realm_parts) return std::unexpected(Failure("the registry's token realm is not a URL"));
  if (IsUnsafeHostChange(req_parts, *realm_parts)) {
    return std::unexpected(
        Failure("refusing token realm on internal address " + realm_parts->HostPort()));
  }
  bool force;
  {
    std::lock_guard lock(mu_);
    bool same = mode_ == Mode::kBearer && realm_ == realm && service_ == bearer->Param("service");
    bool added = MergeScopes(scopes_, bearer->Param("scope"));
    mode_ = Mode::kBearer;
    realm_ = realm;
    service_ = bearer->Param("service");
    force = same && !added;  // the token we sent was rejected: fetch a new one
  }
  if (!cred.registry_token.empty()) return !force;
  MC_RETURN_IF_ERROR(BearerToken(force));
  return true;
}

oci::Result<std::string> AuthTransport::BearerToken(bool force) {
  if (!cfg_.credential.registry_token.empty()) return cfg_.credential.registry_token;
  std::string realm, service;
  std::vector<std::string> scopes;
  {
    std::lock_guard lock(mu_);
    realm = realm_;
    service = service_;
    scopes = scopes_;
  }
  std::string key = TokenCache::Key(realm, service, scopes);
  std::lock_guard fetch(fetch_mu_);
  auto cached = cfg_.cache->Get(key);
  if (cached && !force && !cached->NeedsRefresh(cfg_.clock())) return cached->value;
  MC_ASSIGN_OR_RETURN(Token token, FetchToken(realm, service, scopes));
  cfg_.cache->Put(key, token);
  return token.value;
}

oci::Result<HttpResponse> AuthTransport::PostOAuth(const std::string& realm,
                                                   const std::string& service,
                                                   const std::vector<std::string>& scopes) {
  std::string joined;
  for (const auto& s : scopes) joined += (joined.empty() ? "" : " ") + s;
  std::string form =
      "grant_type=refresh_token&refresh_token=" + UrlEncode(cfg_.credential.identity_token) +
      "&service=" + UrlEncode(service) + "&client_id=" + UrlEncode(cfg_.client_id) +
      "&scope=" + UrlEncode(joined);
  HttpRequest r;
  r.method = "POST";
  r.url = realm;
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  r.body = oci::AsBytes(form);
  r.idempotent = true;
  return cfg_.token_transport->Send(r);  // `form` outlives the call
}

oci::Result<Token> AuthTransport::FetchToken(const std::string& realm, const std::string& service,
                                             const std::vector<std::string>& scopes) {
  const Credential& cred = cfg_.credential;
  std::optional<HttpResponse> resp;
  if (!cred.identity_token.empty()) {  // protocols.md 2.3
    MC_ASSIGN_OR_RETURN(resp, PostOAuth(realm, service, scopes));
    if (resp->status == 404) resp.reset();  // the server only knows GET
  }
  if (!resp) {
    HttpRequest r;
    r.url = BuildTokenUrl(realm, service, scopes);
    r.idempotent = true;
    if (!cred.username.empty() && cred.username != "<token>") {
      r.headers = {{"Authorization", "Basic " + Base64Encode(cred.username + ":" + cred.password)}};
    }
    MC_ASSIGN_OR_RETURN(resp, cfg_.token_transport->Send(r));
  }
  std::string body = resp->ReadBody(1 << 20).value_or("");
  std::string where = "token server " + RedactUrl(realm);
  if (resp->status == 401 || resp->status == 403) {
    std::string detail = ErrorDetail(body);
    return std::unexpected(Failure(where + " answered " + std::to_string(resp->status) +
                                   (detail.empty() ? "" : ": " + detail)));
  }
  if (resp->status != 200) {
    return oci::Fail(oci::ErrorCode::kNetwork,
                     where + " answered HTTP " + std::to_string(resp->status), resp->status);
  }
  auto token = ParseTokenResponse(body, cfg_.clock());
  if (!token) return std::unexpected(token.error().Wrap(where));
  Log()->debug("got a token for {} from {} (scopes: {})", cfg_.registry, RedactUrl(realm),
               fmt::join(scopes, " "));
  return token;
}

}  // namespace

std::shared_ptr<Transport> NewAuthTransport(std::shared_ptr<Transport> inner, AuthConfig cfg) {
  return std::make_shared<AuthTransport>(std::move(inner), std::move(cfg));
}

}  // namespace mc::registry
