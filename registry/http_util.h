// Small HTTP helpers shared by the transport and its decorators: URL parts,
// address classes for redirect/realm safety, and header redaction.
//
// Pure functions; safe for concurrent use.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/error.h"
#include "registry/transport.h"

namespace mc::registry {

struct UrlParts {
  std::string scheme;  // lower case: "http", "https"
  std::string host;    // lower case, IPv6 without brackets
  std::string port;    // "" when the URL names none
  // "host" or "host:port" (IPv6 in brackets): the key of certs.d and of
  // "same host" decisions for redirects.
  std::string HostPort() const;
};

// Parses an absolute http(s) URL. kInvalidInput for anything else.
oci::Result<UrlParts> ParseUrl(std::string_view url);

// Resolves a Location header (absolute, or relative to `base`) to an absolute URL.
oci::Result<std::string> ResolveUrl(std::string_view base, std::string_view location);

// 127.0.0.0/8, ::1, ::ffff:127.x, "localhost" and "*.localhost".
bool IsLoopbackHost(std::string_view host);

// IP literals in private (RFC 1918, fc00::/7), link-local (169.254/16,
// fe80::/10), unspecified or loopback ranges. Names are not resolved.
bool IsInternalAddress(std::string_view host);

// Whether a redirect or realm from host `from` to `to` is refused: a
// different host that is an internal address, unless both are loopback
// (which keeps loopback tests working). Mirrors ggcr's nextLocation and
// validateRealmURL.
bool IsUnsafeHostChange(const UrlParts& from, const UrlParts& to);

// Headers that carry credentials: Authorization, Proxy-Authorization, Cookie,
// and any name containing "auth", "token" or "api-key" (X-Registry-Auth, …).
// Dropped on cross-host redirects; redacted in traces.
bool IsAuthHeader(std::string_view name);

// The next page of a paged list (tags, referrers): RFC 8288 `Link: <URL>;
// rel="next"` (distribution sends a path relative to the registry).
std::optional<std::string> NextPageLink(const HttpResponse& r);

// The value to print for a header in a trace: credentials become "<redacted>",
// URLs (Location) lose their query and userinfo.
std::string RedactHeaderValue(std::string_view name, std::string_view value);

// ASCII case-insensitive equality.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLower(std::string_view s);
std::string_view TrimWhitespace(std::string_view s);
// "Name: value" → {"name", "value"} (name lower-cased, both trimmed);
// nullopt for a line without a colon.
std::optional<std::pair<std::string, std::string>> ParseHeaderLine(std::string_view line);

}  // namespace mc::registry

namespace mc::registry {

// Standard base64 (with padding). Decode ignores surrounding whitespace and
// returns nullopt for malformed input.
std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);

// Percent-encodes everything but RFC 3986 unreserved characters (query values).
std::string UrlEncode(std::string_view s, bool keep_slash = false);

}  // namespace mc::registry
