#include "registry/http_util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "registry/log.h"

namespace mc::registry {
namespace {

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

std::string GetPart(CURLU* u, CURLUPart part) {
  char* out = nullptr;
  if (curl_url_get(u, part, &out, 0) != CURLUE_OK || !out) return "";
  std::string s(out);
  curl_free(out);
  return s;
}

std::string StripBrackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return std::string(host.substr(1, host.size() - 2));
  }
  return std::string(host);
}

bool IsV4Internal(const std::array<unsigned char, 4>& a) {
  return a[0] == 10 || a[0] == 127 || a[0] == 0 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
         (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254);
}

}  // namespace

std::string UrlParts::HostPort() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port.empty() ? h : h + ":" + port;
}

oci::Result<UrlParts> ParseUrl(std::string_view url) {
  UrlHandle u(curl_url());
  std::string s(url);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, s.c_str(), 0) != CURLUE_OK) {
    return oci::Fail(oci::ErrorCode::kInvalidInput, "malformed URL " + RedactUrl(url));
  }
  UrlParts p;
  p.scheme = ToLower(GetPart(u.get(), CURLUPART_SCHEME));
  p.host = ToLower(StripBrackets(GetPart(u.get(), CURLUPART_HOST)));
  p.port = GetPart(u.get(), CURLUPART_PORT);
  if (p.scheme != "http" && p.scheme != "https") {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "unsupported URL scheme in " + RedactUrl(url) + " (want http or https)");
  }
  if (p.host.empty()) {
    return oci::Fail(oci::ErrorCode::kInvalidInput, "URL without a host: " + RedactUrl(url));
  }
  return p;
}

oci::Result<std::string> ResolveUrl(std::string_view base, std::string_view location) {
  UrlHandle u(curl_url());
  std::string b(base), l(location);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, b.c_str(), 0) != CURLUE_OK ||
      curl_url_set(u.get(), CURLUPART_URL, l.c_str(), 0) != CURLUE_OK) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "malformed redirect Location " + RedactUrl(location));
  }
  return GetPart(u.get(), CURLUPART_URL);
}

bool IsLoopbackHost(std::string_view host_in) {
  std::string host = ToLower(StripBrackets(host_in));
  if (host == "localhost" || host.ends_with(".localhost")) return true;
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET, host.c_str(), buf.data()) == 1) return buf[0] == 127;
  if (inet_pton(AF_INET6, host.c_str(), buf.data()) == 1) {
    static constexpr std::array<unsigned char, 16> kLoop{0, 0, 0, 0, 0, 0, 0, 0,
                                                         0, 0, 0, 0, 0, 0, 0, 1};
    bool mapped = std::memcmp(buf.data(), "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
    return buf == kLoop || (mapped && buf[12] == 127);
  }
  return false;
}

bool IsInternalAddress(std::string_view host_in) {
  std::string host = StripBrackets(host_in);
  std::array<unsigned char, 16> b{};
  if (inet_pton(AF_INET, host.c_str(), b.data()) == 1)
    return IsV4Internal({b[0], b[1], b[2], b[3]});
  if (inet_pton(AF_INET6, host.c_str(), b.data()) != 1) return false;
  if (std::memcmp(b.data(), "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
    return IsV4Internal({b[12], b[13], b[14], b[15]});
  }
  bool zero_prefix = std::all_of(b.begin(), b.begin() + 15, [](unsigned char c) { return c == 0; });
  if (zero_prefix && (b[15] == 0 || b[15] == 1)) return true;  // :: and ::1
  if ((b[0] & 0xfe) == 0xfc) return true;                      // fc00::/7 unique local
  return b[0] == 0xfe && (b[1] & 0xc0) == 0x80;                // fe80::/10 link-local
}

bool IsUnsafeHostChange(const UrlParts& from, const UrlParts& to) {
  if (from.host == to.host) return false;
  if (IsLoopbackHost(from.host) && IsLoopbackHost(to.host)) return false;
  return IsInternalAddress(to.host) || IsLoopbackHost(to.host);
}

bool IsAuthHeader(std::string_view name) {
  std::string n = ToLower(name);
  return n == "authorization" || n == "proxy-authorization" || n == "cookie" ||
         n.find("auth") != std::string::npos || n.find("token") != std::string::npos ||
         n.find("api-key") != std::string::npos;
}

std::string RedactHeaderValue(std::string_view name, std::string_view value) {
  if (IsAuthHeader(name) || EqualsIgnoreCase(name, "set-cookie")) {
    // Keep the scheme word ("Bearer", "Basic") — it helps debugging and is no secret.
    size_t sp = value.find(' ');
    if (sp != std::string_view::npos && sp < 16 && EqualsIgnoreCase(name, "authorization")) {
      return std::string(value.substr(0, sp)) + " <redacted>";
    }
    return "<redacted>";
  }
  if (EqualsIgnoreCase(name, "location") || EqualsIgnoreCase(name, "content-location")) {
    return RedactUrl(value);
  }
  return std::string(value);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimWhitespace(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<std::pair<std::string, std::string>> ParseHeaderLine(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return std::pair{ToLower(TrimWhitespace(line.substr(0, colon))),
                   std::string(TrimWhitespace(line.substr(colon + 1)))};
}

}  // namespace mc::registry

namespace mc::registry {

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text_in) {
  std::string text;
  for (char c : text_in) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') text.push_back(c);
  }
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  if (text.ends_with("=="))
    len -= 2;  // EVP_DecodeBlock counts padding as bytes
  else if (text.ends_with("="))
    len -= 1;
  out.resize(len);
  return out;
}

std::string UrlEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> NextPageLink(const HttpResponse& r) {
  auto link = r.Header("link");
  if (!link) return std::nullopt;
  size_t open = link->find('<'), close = link->find('>');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  if (link->find("rel=\"next\"", close) == std::string::npos &&
      link->find("rel=next", close) == std::string::npos) {
    return std::nullopt;
  }
  return link->substr(open + 1, close - open - 1);
}

}  // namespace mc::registry
