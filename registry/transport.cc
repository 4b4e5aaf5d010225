#include "registry/transport.h"

#include <memory>
#include <vector>

#include "registry/http_util.h"

namespace mc::registry {

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::span<const std::byte>> HttpRequest::BodyParts() const {
  if (!body_parts.empty()) return body_parts;
  if (body.empty()) return {};
  return {body};
}

uint64_t HttpRequest::BodySize() const {
  uint64_t n = body.size();
  for (auto p : body_parts) n += p.size();
  return n;
}

std::string HttpRequest::BodyString() const {
  std::string out;
  out.reserve(static_cast<size_t>(BodySize()));
  for (auto p : BodyParts()) out.append(oci::AsString(p));
  return out;
}

oci::Result<std::string> HttpResponse::ReadBody(size_t limit) {
  if (!body) return std::string();
  return oci::ReadAll(*body, limit);
}

oci::Result<HttpResponse> Transport::SendStreaming(HttpRequest request,
                                                   const BodyHandler& handler) {
  MC_ASSIGN_OR_RETURN(HttpResponse resp, Send(std::move(request)));
  if (resp.status < 200 || resp.status > 299) return resp;
  if (handler.on_response) MC_RETURN_IF_ERROR(handler.on_response(resp));
  // One buffer per thread, never zero-filled: a copy reads thousands of
  // ranges through here (a decorator without its own SendStreaming), and a
  // fresh zeroed megabyte per range showed up as memset in perf.
  constexpr size_t kSize = 1 << 20;
  thread_local std::unique_ptr<std::byte[]> storage(new std::byte[kSize]);
  std::span<std::byte> buf(storage.get(), kSize);
  for (;;) {
    MC_ASSIGN_OR_RETURN(size_t n, resp.body->Read(buf));
    if (n == 0) break;
    MC_RETURN_IF_ERROR(handler.on_body(buf.first(n)));
  }
  resp.body = std::make_unique<oci::StringReader>("");
  return resp;
}

}  // namespace mc::registry
