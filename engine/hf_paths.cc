// Pure helpers of the Hugging Face client: source parsing, environment, URL
// encoding, glob filtering and header parsing.
//
// Globs follow huggingface_hub `utils/_paths.py` (`filter_repo_objects`):
// Python's fnmatch on the whole repo path, so `*` matches "/" too ("*.json"
// matches "a/b.json"), `?` one character, `[seq]` / `[!seq]` classes, and a
// pattern ending in "/" gets a "*" appended (the directory's contents).
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "engine/hf_hub.h"
#include "registry/http_util.h"

namespace mc::engine {
namespace {

using oci::ErrorCode;
using oci::Fail;

bool ValidRepoPart(std::string_view s) {
  if (s.empty() || s.size() > 96) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  if (s.front() == '-' || s.front() == '.' || s.back() == '-' || s.back() == '.') return false;
  return s.find("--") == std::string_view::npos && s.find("..") == std::string_view::npos;
}

// Matches a bracket class at p[0] == '['; returns the index after ']' or npos
// when there is no closing bracket (then '[' is literal, as in Python).
size_t MatchClass(std::string_view p, char c, bool* matched) {
  size_t i = 1;
  bool negate = false;
  if (i < p.size() && p[i] == '!') {
    negate = true;
    ++i;
  }
  size_t start = i;
  bool hit = false;
  while (i < p.size() && (p[i] != ']' || i == start)) {
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      if (p[i] <= c && c <= p[i + 2]) hit = true;
      i += 3;
    } else {
      if (p[i] == c) hit = true;
      ++i;
    }
  }
  if (i >= p.size()) return std::string_view::npos;
  *matched = hit != negate;
  return i + 1;
}

bool GlobMatch(std::string_view p, std::string_view s) {
  // Iterative matcher with backtracking to the last '*'.
  size_t pi = 0, si = 0, star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_s = si;
      continue;
    }
    if (pi < p.size()) {
      if (p[pi] == '?') {
        ++pi, ++si;
        continue;
      }
      if (p[pi] == '[') {
        bool matched = false;
        size_t next = MatchClass(p.substr(pi), s[si], &matched);
        if (next == std::string_view::npos) {
          if (s[si] == '[') {
            ++pi, ++si;
            continue;
          }
        } else if (matched) {
          pi += next, ++si;
          continue;
        }
      } else if (p[pi] == s[si]) {
        ++pi, ++si;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p + 1;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::string WithDirWildcard(const std::string& pattern) {
  if (!pattern.empty() && pattern.back() == '/') return pattern + "*";
  return pattern;
}

}  // namespace

oci::Result<HfRepoRef> ParseHfSource(std::string_view source) {
  const std::string example = " (expected hf://ORG/NAME or hf://ORG/NAME@REVISION)";
  std::string what = "source '" + std::string(source) + "'";
  if (!source.starts_with("hf://")) {
    return Fail(ErrorCode::kInvalidInput, what + " is not a Hugging Face source" + example);
  }
  std::string_view rest = source.substr(5);
  HfRepoRef ref;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.revision = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (ref.revision.empty()) {
      return Fail(ErrorCode::kInvalidInput, what + ": empty revision after '@'" + example);
    }
  }
  if (rest.starts_with("datasets/") || rest.starts_with("spaces/")) {
    return Fail(ErrorCode::kInvalidInput,
                what + ": only model repositories are supported" + example);
  }
  size_t slash = rest.find('/');
  std::string_view org = slash == std::string_view::npos ? "" : rest.substr(0, slash);
  std::string_view name = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
  bool ok = ValidRepoPart(name) && (slash == std::string_view::npos || ValidRepoPart(org));
  if (!ok) {
    return Fail(ErrorCode::kInvalidInput,
                what + ": bad repository id '" + std::string(rest) +
                    "' (letters, digits, '-', '_', '.'; at most one '/')" + example);
  }
  ref.repo_id = std::string(rest);
  return ref;
}

std::string HfEndpointFromEnv() {
  const char* env = std::getenv("HF_ENDPOINT");
  std::string endpoint = env && *env ? env : std::string(kDefaultHfEndpoint);
  while (endpoint.ends_with('/')) endpoint.pop_back();
  return endpoint;
}

std::string HfTokenFromEnv() {
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    const char* env = std::getenv(name);
    if (env && *env) return env;
  }
  return "";
}

oci::Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Fail(ErrorCode::kInvalidInput,
                "cannot read token file " + path + ": check --token-file");
  }
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  size_t start = line.find_first_not_of(" \t");
  if (start == std::string::npos) {
    return Fail(ErrorCode::kInvalidInput, "token file " + path + " is empty");
  }
  return line.substr(start);
}

bool HfGlobMatch(std::string_view pattern, std::string_view path) {
  return GlobMatch(WithDirWildcard(std::string(pattern)), path);
}

std::vector<HfFile> FilterHfFiles(const std::vector<HfFile>& files,
                                  const std::vector<std::string>& include,
                                  const std::vector<std::string>& exclude) {
  std::vector<HfFile> out;
  for (const auto& f : files) {
    auto matches = [&](const std::string& p) { return HfGlobMatch(p, f.path); };
    if (!include.empty() && std::none_of(include.begin(), include.end(), matches)) continue;
    if (std::any_of(exclude.begin(), exclude.end(), matches)) continue;
    out.push_back(f);
  }
  return out;
}

std::string HfUrlEncode(std::string_view s, bool keep_slash) {
  return registry::UrlEncode(s, keep_slash);
}

std::optional<std::string> FindHeader(const registry::HttpResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return v;
    }
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> HfRetryAfter(const registry::HttpResponse& response) {
  // RateLimit: "api";r=0;t=42  (IETF draft-ietf-httpapi-ratelimit-headers, hub-docs rate-limits.md)
  if (auto rl = FindHeader(response, "ratelimit")) {
    size_t t = rl->find(";t=");
    if (t != std::string::npos) {
      long secs = std::strtol(rl->c_str() + t + 3, nullptr, 10);
      if (secs >= 0) return std::chrono::seconds(secs);
    }
  }
  if (auto ra = FindHeader(response, "retry-after")) {
    char* end = nullptr;
    long secs = std::strtol(ra->c_str(), &end, 10);
    if (end != ra->c_str() && secs >= 0) return std::chrono::seconds(secs);
  }
  return std::nullopt;
}

std::string HfNextLink(std::string_view link) {
  // Link: <https://…?cursor=…>; rel="next", <…>; rel="prev"
  size_t pos = 0;
  while (pos < link.size()) {
    size_t open = link.find('<', pos);
    if (open == std::string_view::npos) break;
    size_t close = link.find('>', open);
    if (close == std::string_view::npos) break;
    size_t end = link.find(',', close);
    std::string_view params = link.substr(
        close + 1, end == std::string_view::npos ? std::string_view::npos : end - close - 1);
    if (params.find("rel=\"next\"") != std::string_view::npos ||
        params.find("rel=next") != std::string_view::npos) {
      return std::string(link.substr(open + 1, close - open - 1));
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return "";
}

std::string UrlOrigin(std::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  std::string scheme(url.substr(0, scheme_end));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = url.substr(scheme_end + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority = authority.substr(at + 1);
  }
  std::string host(authority);
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t bracket = host.rfind(']');
  size_t colon = host.rfind(':');
  bool has_port = colon != std::string::npos && (bracket == std::string::npos || colon > bracket);
  if (!has_port) host += scheme == "https" ? ":443" : ":80";
  return scheme + "://" + host;
}

}  // namespace mc::engine
