#include "tests/support/fake_transport.h"

#include "registry/http_util.h"

namespace mc::testing {

std::optional<std::string> RecordedRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (registry::EqualsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

void FakeTransport::Push(FakeResponse response) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(response));
}

void FakeTransport::SetHandler(Handler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

std::vector<RecordedRequest> FakeTransport::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::vector<RecordedRequest> FakeTransport::Requests(const std::string& method,
                                                     const std::string& needle) const {
  std::vector<RecordedRequest> out;
  for (auto& r : requests()) {
    if (r.method == method && r.url.find(needle) != std::string::npos) out.push_back(r);
  }
  return out;
}

oci::Result<registry::HttpResponse> FakeTransport::Send(registry::HttpRequest request) {
  RecordedRequest rec{request.method,          request.url,      request.headers,
                      request.BodyString(),    request.no_retry, request.idempotent,
                      request.follow_redirects};
  if (request.body_reader) {
    auto all = oci::ReadAll(*request.body_reader, 1 << 30);
    if (!all) return std::unexpected(all.error());
    rec.body = std::move(*all);
  }
  FakeResponse fr;
  Handler handler;
  {
    std::lock_guard lock(mu_);
    requests_.push_back(rec);
    if (!queue_.empty()) {
      fr = std::move(queue_.front());
      queue_.pop_front();
    } else {
      handler = handler_;
      if (!handler) fr = FakeResponse::Status(500, {}, "no scripted response");
    }
  }
  if (handler) fr = handler(rec);
  if (fr.error) return std::unexpected(*fr.error);
  registry::HttpResponse resp;
  resp.status = fr.status;
  for (auto& [k, v] : fr.headers) resp.headers.emplace_back(registry::ToLower(k), v);
  resp.effective_url = request.url;
  resp.body = std::make_unique<oci::StringReader>(request.method == "HEAD" ? "" : fr.body);
  return resp;
}

}  // namespace mc::testing
