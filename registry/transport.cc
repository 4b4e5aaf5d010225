#include "registry/transport.h"

#include "registry/http_util.h"

namespace mc::registry {

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

oci::Result<std::string> HttpResponse::ReadBody(size_t limit) {
  if (!body) return std::string();
  return oci::ReadAll(*body, limit);
}

}  // namespace mc::registry
