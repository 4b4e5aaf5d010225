// Reference parsing follows distribution/reference (normalize.go
// splitDockerDomain, regexp.go): split off "@digest", then ":tag" after the
// last '/', then decide whether the first component is a registry host. We
// hand-write the grammar with small predicates instead of std::regex, whose
// backtracking on a 255-character input is slow and whose errors cannot say
// which rule failed.
#include "registry/reference.h"

#include <cctype>

namespace mc::registry {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr std::string_view kDockerHub = "docker.io";

oci::Error Invalid(std::string_view text, std::string_view why) {
  return oci::Error{oci::ErrorCode::kInvalidInput,
                    "invalid reference \"" + std::string(text) + "\": " + std::string(why)};
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool IsValidComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < c.size() && !IsLowerAlnum(c[i])) ++i;
    std::string_view sep = c.substr(start, i - start);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (sep != "." && sep != "_" && sep != "__" && !dashes) return false;
  }
  return true;
}

// host label: [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
bool IsValidHostLabel(std::string_view l) {
  if (l.empty() || !IsAlnum(l.front()) || !IsAlnum(l.back())) return false;
  for (char c : l) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsValidPort(std::string_view p) {
  if (p.empty() || p.size() > 5) return false;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// host[:port] | [ipv6][:port]
bool IsValidDomain(std::string_view d) {
  std::string_view host = d;
  std::string_view port;
  if (d.starts_with('[')) {
    size_t close = d.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    std::string_view rest = d.substr(close + 1);
    if (rest.empty()) return true;
    return rest.front() == ':' && IsValidPort(rest.substr(1));
  }
  size_t colon = d.rfind(':');
  if (colon != std::string_view::npos) {
    host = d.substr(0, colon);
    port = d.substr(colon + 1);
    if (!IsValidPort(port)) return false;
  }
  size_t start = 0;
  while (true) {
    size_t dot = host.find('.', start);
    if (!IsValidHostLabel(host.substr(start, dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool LooksLikeDomain(std::string_view first) {
  return first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
         first.starts_with('[');
}

}  // namespace

bool IsValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  if (!IsAlnum(tag[0]) && tag[0] != '_') return false;
  for (char c : tag) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

oci::Result<void> ValidateRepository(std::string_view repository) {
  if (repository.empty()) return std::unexpected(Invalid(repository, "repository name is empty"));
  for (char c : repository) {
    if (c >= 'A' && c <= 'Z') {
      return std::unexpected(Invalid(repository, "repository name must be lowercase"));
    }
  }
  size_t start = 0;
  while (true) {
    size_t slash = repository.find('/', start);
    std::string_view comp = repository.substr(start, slash - start);
    if (!IsValidComponent(comp)) {
      return std::unexpected(Invalid(
          repository, "path component \"" + std::string(comp) +
                          "\" must be lowercase letters and digits separated by '.', '_', "
                          "'__' or '-'"));
    }
    if (slash == std::string_view::npos) return {};
    start = slash + 1;
  }
}

oci::Result<Reference> Reference::Parse(std::string_view text) {
  if (text.empty()) return std::unexpected(Invalid(text, "empty reference"));
  if (text.find("://") != std::string_view::npos) {
    return std::unexpected(Invalid(text, "unexpected transport prefix (use docker://NAME)"));
  }
  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    auto d = oci::Digest::Parse(rest.substr(at + 1));
    if (!d) return std::unexpected(Invalid(text, "digest must be sha256:<64 lowercase hex>"));
    ref.digest_ = *d;
    rest = rest.substr(0, at);
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  // A ':' after the last '/' is a tag, unless it closes an IPv6 "[…]:port"
  // registry with no path (which has no repository anyway).
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!IsValidTag(tag)) {
      return std::unexpected(
          Invalid(text, "tag must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"));
    }
    ref.tag_ = std::string(tag);
    rest = rest.substr(0, colon);
  }
  size_t slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  std::string repo;
  if (slash != std::string_view::npos && LooksLikeDomain(first)) {
    if (!IsValidDomain(first)) return std::unexpected(Invalid(text, "invalid registry host"));
    ref.registry_ = std::string(first);
    repo = std::string(rest.substr(slash + 1));
  } else {
    ref.registry_ = std::string(kDockerHub);
    repo = std::string(rest);
  }
  if (ref.registry_ == "index.docker.io" || ref.registry_ == "registry-1.docker.io") {
    ref.registry_ = std::string(kDockerHub);
  }
  if (ref.registry_ == kDockerHub && repo.find('/') == std::string::npos) repo = "library/" + repo;
  if (auto v = ValidateRepository(repo); !v) {
    std::string why = v.error().message.substr(v.error().message.find("\": ") + 3);
    return std::unexpected(Invalid(text, why));
  }
  ref.repository_ = std::move(repo);
  if (ref.Name().size() > kMaxNameLength) {
    return std::unexpected(Invalid(text, "repository name must not be longer than 255 characters"));
  }
  return ref;
}

std::string Reference::ApiHost() const {
  return registry_ == kDockerHub ? "registry-1.docker.io" : registry_;
}

std::string Reference::Hostname() const {
  std::string h = registry_;
  if (h.starts_with('[')) return h.substr(1, h.find(']') - 1);
  if (size_t c = h.rfind(':'); c != std::string::npos) h.resize(c);
  for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h;
}

std::string Reference::Identifier() const {
  if (digest_) return digest_->String();
  return tag_.value_or("latest");
}

std::string Reference::String() const {
  std::string s = Name();
  if (tag_) s += ":" + *tag_;
  if (digest_) s += "@" + digest_->String();
  return s;
}

std::string Reference::Scope(std::string_view actions) const {
  return "repository:" + repository_ + ":" + std::string(actions);
}

Reference Reference::WithTag(std::string tag) const {
  Reference r = *this;
  r.tag_ = std::move(tag);
  return r;
}

Reference Reference::WithDigest(oci::Digest digest) const {
  Reference r = *this;
  r.digest_ = std::move(digest);
  return r;
}

Reference Reference::WithRepository(std::string repository) const {
  Reference r = *this;
  r.repository_ = std::move(repository);
  return r;
}

}  // namespace mc::registry
