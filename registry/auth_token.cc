// The pure parts of registry auth: challenge grammar, scopes, token URLs and
// token responses. Kept apart from AuthTransport so they are tested alone.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "registry/auth.h"
#include "registry/http_util.h"

namespace mc::registry {
namespace {

using std::chrono::system_clock;

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~/:").find(c) != std::string_view::npos;
}

class ChallengeParser {
 public:
  explicit ChallengeParser(std::string_view s) : s_(s) {}

  std::vector<Challenge> Parse() {
    std::vector<Challenge> out;
    while (true) {
      SkipSeparators();
      std::string scheme = Token();
      if (scheme.empty()) break;
      Challenge c{ToLower(scheme), {}};
      ParseParams(c);
      out.push_back(std::move(c));
    }
    return out;
  }

 private:
  void SkipWs() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void SkipSeparators() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ',')) ++i_;
  }
  std::string Token() {
    size_t start = i_;
    while (i_ < s_.size() && IsTokenChar(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }
  std::string Quoted() {  // at the opening quote
    std::string v;
    for (++i_; i_ < s_.size() && s_[i_] != '"'; ++i_) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      v.push_back(s_[i_]);
    }
    if (i_ < s_.size()) ++i_;  // closing quote
    return v;
  }
  // Whether the text at i_ is "name =" (a parameter) rather than a new scheme.
  bool AtParam() {
    size_t save = i_;
    SkipSeparators();
    bool param = !Token().empty() && (SkipWs(), i_ < s_.size() && s_[i_] == '=');
    i_ = save;
    return param;
  }
  void ParseParams(Challenge& c) {
    while (AtParam()) {
      SkipSeparators();
      std::string name = ToLower(Token());
      SkipWs();
      ++i_;  // '='
      SkipWs();
      std::string value;
      if (i_ < s_.size() && s_[i_] == '"') {
        value = Quoted();
      } else {
        size_t start = i_;
        while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
        value = std::string(s_.substr(start, i_ - start));
      }
      c.params[name] = value;
    }
    // A token68 ("Basic abc=="), if any, is skipped up to the next comma.
    SkipWs();
    while (i_ < s_.size() && s_[i_] != ',') ++i_;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// RFC 3339 ("2024-01-02T03:04:05.123Z", "…+02:00").
std::optional<system_clock::time_point> ParseRfc3339(const std::string& s) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  size_t i = static_cast<size_t>(consumed);
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  }
  long offset = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int hh = 0, mm = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    offset = (s[i] == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
  } else if (i >= s.size() || (s[i] != 'Z' && s[i] != 'z')) {
    return std::nullopt;
  }
  return system_clock::from_time_t(timegm(&tm) - offset);
}

}  // namespace

std::vector<Challenge> ParseChallenges(std::string_view header) {
  return ChallengeParser(header).Parse();
}

bool MergeScopes(std::vector<std::string>& scopes, std::string_view challenge_scope) {
  bool added = false;
  size_t i = 0;
  while (i < challenge_scope.size()) {
    size_t end = challenge_scope.find(' ', i);
    if (end == std::string_view::npos) end = challenge_scope.size();
    std::string s(challenge_scope.substr(i, end - i));
    if (!s.empty() && std::find(scopes.begin(), scopes.end(), s) == scopes.end()) {
      scopes.push_back(s);
      added = true;
    }
    i = end + 1;
  }
  return added;
}

std::string BuildTokenUrl(std::string_view realm, std::string_view service,
                          const std::vector<std::string>& scopes) {
  std::string url(realm);
  char sep = url.find('?') == std::string::npos ? '?' : '&';
  if (!url.empty() && (url.back() == '?' || url.back() == '&')) sep = '\0';
  auto add = [&](std::string_view k, std::string_view v) {
    if (sep) url.push_back(sep);
    url += std::string(k) + "=" + UrlEncode(v);
    sep = '&';
  };
  if (!service.empty()) add("service", service);
  for (const auto& s : scopes) add("scope", s);
  return url;
}

bool Token::NeedsRefresh(system_clock::time_point now) const {
  auto lifetime = expires - obtained;
  auto margin = std::min<system_clock::duration>(
      std::max<system_clock::duration>(lifetime / 10, std::chrono::seconds(30)), lifetime / 2);
  return now >= expires - margin;
}

oci::Result<Token> ParseTokenResponse(std::string_view body, system_clock::time_point now) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return oci::Fail(oci::ErrorCode::kNetwork, "token server answered with something not JSON");
  }
  Token t;
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  t.value = str("token");
  if (t.value.empty()) t.value = str("access_token");
  if (t.value.empty()) return oci::Fail(oci::ErrorCode::kNetwork, "token server returned no token");
  int64_t expires_in = 60;  // distribution token.md: default when absent
  if (j.contains("expires_in") && j["expires_in"].is_number()) {
    expires_in = j["expires_in"].get<int64_t>();
    if (expires_in <= 0) expires_in = 60;
  }
  auto lifetime = std::chrono::seconds(expires_in);
  t.obtained = now;
  if (auto issued = ParseRfc3339(str("issued_at"));
      issued && *issued <= now && *issued > now - lifetime) {
    t.obtained = *issued;
  }
  t.expires = t.obtained + lifetime;
  return t;
}

std::optional<Token> TokenCache::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = tokens_.find(key);
  if (it == tokens_.end()) return std::nullopt;
  return it->second;
}

void TokenCache::Put(const std::string& key, Token token) {
  std::lock_guard lock(mu_);
  tokens_[key] = std::move(token);
}

void TokenCache::Drop(const std::string& key) {
  std::lock_guard lock(mu_);
  tokens_.erase(key);
}

std::string TokenCache::Key(std::string_view realm, std::string_view service,
                            std::vector<std::string> scopes) {
  std::sort(scopes.begin(), scopes.end());
  std::string key = std::string(realm) + "\n" + std::string(service);
  for (const auto& s : scopes) key += "\n" + s;
  return key;
}

}  // namespace mc::registry
