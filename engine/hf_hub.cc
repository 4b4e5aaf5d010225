// The Hugging Face Hub client (protocols.md 5).
//
// We talk to the Hub the way huggingface_hub's snapshot_download does, minus
// the Python: one revision call pins the commit (so a push mid-download cannot
// mix two snapshots), the paginated tree listing gives every file's size, git
// oid and LFS sha256 (so every byte can be verified and tar headers written
// before the bytes arrive), and each file is then read through `/resolve/`.
//
// Redirects are handled here, not by the transport: a relative (same host)
// redirect is a renamed repo and keeps the token; a redirect to another host
// is the CDN, whose presigned URL we keep for every range of that file, send
// no token to (S3-style backends reject two auth mechanisms, and the token
// must never leave the Hub), and re-resolve when it expires (403).
//
// Retries live at exactly one level: here. Requests are marked no_retry so a
// retry decorator under us sends them once; we retry 429 after the server's
// RateLimit `t=` (or Retry-After), 408/5xx and broken connections with the
// shared backoff policy (registry/retry.h: full jitter), and a body broken
// mid-range resumes at the byte it stopped at.
#include "engine/hf_hub.h"

#include <algorithm>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/cancel.h"
#include "registry/log.h"

namespace mc::engine {
namespace {

using oci::ErrorCode;
using oci::Fail;
using registry::HttpRequest;
using registry::HttpResponse;

bool IsRetryableStatus(int status) {
  return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

bool IsRetryableError(const oci::Error& e) {
  return e.code == ErrorCode::kTransient || e.code == ErrorCode::kNetwork;
}

std::string NormalizeEtag(std::string etag) {
  if (etag.starts_with("W/")) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

// Resolves a Location header against the URL it answered.
std::string ResolveLocation(const std::string& base, const std::string& location) {
  if (location.find("://") != std::string::npos) return location;
  std::string origin_end = base.substr(0, base.find('/', base.find("://") + 3));
  if (location.starts_with("/")) return origin_end + location;
  std::string dir = base.substr(0, base.rfind('/') + 1);
  return dir + location;
}

// Repo paths come from the server: refuse anything that would escape DIR.
bool SafeRepoPath(std::string_view p) {
  if (p.empty() || p.front() == '/' || p.find('\\') != std::string_view::npos ||
      p.find('\0') != std::string_view::npos) {
    return false;
  }
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t end = std::min(p.find('/', pos), p.size());
    std::string_view part = p.substr(pos, end - pos);
    if (part.empty() || part == "." || part == "..") return false;
    pos = end + 1;
  }
  return true;
}

oci::Result<HfFile> ParseTreeEntry(const nlohmann::json& j) {
  HfFile f;
  f.path = j.at("path").get<std::string>();
  f.size = j.value("size", uint64_t{0});
  f.git_oid = j.value("oid", std::string());
  if (auto lfs = j.find("lfs"); lfs != j.end() && lfs->is_object()) {
    f.lfs_sha256 = lfs->value("oid", lfs->value("sha256", std::string()));
    f.size = lfs->value("size", f.size);
  }
  if (!SafeRepoPath(f.path)) {
    return Fail(ErrorCode::kInvalidInput, "the Hub listed an unsafe file path '" + f.path + "'");
  }
  return f;
}

}  // namespace

HfClient::HfClient(std::shared_ptr<registry::Transport> transport, HfClientOptions options)
    : transport_(std::move(transport)), options_(std::move(options)) {
  endpoint_ = options_.endpoint.empty() ? HfEndpointFromEnv() : options_.endpoint;
  while (endpoint_.ends_with('/')) endpoint_.pop_back();
  hub_origin_ = UrlOrigin(endpoint_);
}

bool HfClient::IsHubUrl(std::string_view url) const {
  return !hub_origin_.empty() && UrlOrigin(url) == hub_origin_;
}

oci::Result<HttpResponse> HfClient::SendOnce(HttpRequest request,
                                             const registry::BodyHandler* handler) const {
  // Authorization only for the Hub's own origin (protocols.md 5.1, Pitfalls).
  std::erase_if(request.headers, [](const auto& h) {
    std::string k = h.first;
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    return k == "authorization";
  });
  if (!options_.token.empty() && IsHubUrl(request.url)) {
    request.headers.emplace_back("Authorization", "Bearer " + options_.token);
  }
  request.no_retry = true;
  if (handler) return transport_->SendStreaming(std::move(request), *handler);
  return transport_->Send(std::move(request));
}

oci::Result<HttpResponse> HfClient::Send(HttpRequest request,
                                         const registry::BodyHandler* handler) const {
  bool started = false;  // the handler has seen a response: never resend
  registry::BodyHandler watched;
  if (handler) {
    watched.on_response = [&](const HttpResponse& r) -> oci::Result<void> {
      started = true;
      return handler->on_response ? handler->on_response(r) : oci::Result<void>{};
    };
    watched.on_body = handler->on_body;
  }
  for (int attempt = 0;; ++attempt) {
    MC_RETURN_IF_ERROR(CheckCancelled());
    auto response = SendOnce(request, handler ? &watched : nullptr);
    bool last = attempt >= options_.retry_times;
    if (!response) {
      if (last || started || !IsRetryableError(response.error())) return response;
      registry::Log()->debug("{} {}: {}; retrying", request.method,
                             registry::RedactUrl(request.url), response.error().message);
    } else if (!IsRetryableStatus(response->status) || last) {
      return response;
    } else {
      // A 429's RateLimit t= (or Retry-After) wins over the jittered delay.
      auto wait = response->status == 429 ? HfRetryAfter(*response) : std::nullopt;
      if (wait) *wait += std::chrono::milliseconds(100);
      registry::Log()->info("{} {}: HTTP {}; retrying in {} ms", request.method,
                            registry::RedactUrl(request.url), response->status,
                            options_.backoff.Delay(attempt, wait).count());
      options_.backoff.Wait(attempt, wait);
      continue;
    }
    options_.backoff.Wait(attempt);
  }
}

oci::Error HfClient::ErrorFor(HttpResponse& response, std::string_view what,
                              std::string_view repo_id) const {
  std::string code = FindHeader(response, "x-error-code").value_or("");
  std::string server_msg = FindHeader(response, "x-error-message").value_or("");
  std::string ctx = std::string(what) + ": HTTP " + std::to_string(response.status);
  if (!code.empty()) ctx += " " + code;
  std::string repo_page = endpoint_ + "/" + std::string(repo_id);
  oci::Error e;
  e.http_status = response.status;
  if (code == "GatedRepo") {
    e.code = ErrorCode::kUnauthorized;
    e.message =
        ctx + ": the repository is gated: accept its conditions at " + repo_page + " and " +
        (options_.token.empty() ? "set HF_TOKEN (or --token-file) to a token of that account"
                                : "check that HF_TOKEN belongs to the account that did");
  } else if (code == "RepoNotFound") {
    e.code = ErrorCode::kNotFound;
    e.message = ctx + ": no such repository: check the name" +
                (options_.token.empty() ? ", or set HF_TOKEN if it is private" : "");
  } else if (code == "RevisionNotFound") {
    e.code = ErrorCode::kNotFound;
    e.message = ctx + ": no such revision: check the branch, tag or commit after '@'";
  } else if (code == "EntryNotFound") {
    e.code = ErrorCode::kNotFound;
    e.message = ctx + ": the file is not in this revision";
  } else if (response.status == 401) {
    e.code = ErrorCode::kUnauthorized;
    e.message =
        ctx + (options_.token.empty() ? ": authentication required: set HF_TOKEN or --token-file"
                                      : ": the token was refused: check HF_TOKEN or --token-file");
  } else if (response.status == 403) {
    e.code = ErrorCode::kUnauthorized;
    e.message = ctx + ": access denied: the token lacks permission for this repository" +
                (server_msg.empty() ? "" : " (" + server_msg + ")");
  } else if (response.status == 404) {
    e.code = ErrorCode::kNotFound;
    e.message = ctx + ": not found: check the repository name and revision";
  } else if (response.status == 429 || response.status >= 500 || response.status == 408) {
    e.code = ErrorCode::kNetwork;
    e.message = ctx + ": the Hub kept failing after retries; try again later";
  } else {
    e.code = ErrorCode::kNetwork;
    e.message = ctx + ": unexpected response" + (server_msg.empty() ? "" : " (" + server_msg + ")");
  }
  return e;
}

std::string HfClient::ResolveUrl(const std::string& repo_id, const std::string& commit,
                                 const std::string& path) const {
  return endpoint_ + "/" + repo_id + "/resolve/" + HfUrlEncode(commit, false) + "/" +
         HfUrlEncode(path, true);
}

oci::Result<std::string> HfClient::ResolveCommit(const HfRepoRef& ref) const {
  HttpRequest req;
  req.url =
      endpoint_ + "/api/models/" + ref.repo_id + "/revision/" + HfUrlEncode(ref.revision, false);
  req.idempotent = true;
  std::string what = ref.repo_id + " revision " + ref.revision;
  MC_ASSIGN_OR_RETURN(auto resp, Send(req));
  if (resp.status != 200) return std::unexpected(ErrorFor(resp, what, ref.repo_id));
  MC_ASSIGN_OR_RETURN(std::string body, oci::ReadAll(*resp.body, 64 << 20));
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("sha") || !j["sha"].is_string()) {
    return Fail(ErrorCode::kNetwork, what + ": the Hub's revision answer has no commit sha");
  }
  return j["sha"].get<std::string>();
}

oci::Result<std::vector<HfFile>> HfClient::ListFiles(const std::string& repo_id,
                                                     const std::string& commit) const {
  std::vector<HfFile> files;
  std::string url = endpoint_ + "/api/models/" + repo_id + "/tree/" + HfUrlEncode(commit, false) +
                    "?recursive=true&expand=false";
  std::string what = repo_id + " file list";
  for (int page = 0; !url.empty(); ++page) {
    if (page > 100000) return Fail(ErrorCode::kNetwork, what + ": endless pagination");
    HttpRequest req;
    req.url = url;
    req.idempotent = true;
    MC_ASSIGN_OR_RETURN(auto resp, Send(req));
    if (resp.status != 200) return std::unexpected(ErrorFor(resp, what, repo_id));
    MC_ASSIGN_OR_RETURN(std::string body, oci::ReadAll(*resp.body, 256 << 20));
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_array()) {
      return Fail(ErrorCode::kNetwork, what + ": the Hub's answer is not a JSON array");
    }
    try {
      for (const auto& entry : j) {
        if (entry.value("type", std::string("file")) != "file") continue;
        MC_ASSIGN_OR_RETURN(HfFile f, ParseTreeEntry(entry));
        files.push_back(std::move(f));
      }
    } catch (const nlohmann::json::exception& e) {
      return Fail(ErrorCode::kNetwork, what + ": malformed entry: " + e.what());
    }
    std::string next = HfNextLink(FindHeader(resp, "link").value_or(""));
    url = next.empty() ? "" : ResolveLocation(url, next);
  }
  return files;
}

namespace {

// Makes `url` the one every fetch of the file uses from now on.
void Publish(FileLocation& loc, std::string url) {
  std::lock_guard lock(loc.mu);
  loc.url = std::move(url);
  ++loc.generation;
}

}  // namespace

oci::Result<void> HfClient::Locate(FileLocation& loc) const {
  MC_ASSIGN_OR_RETURN(std::string url, LocateUrl(loc));
  Publish(loc, std::move(url));
  return {};
}

oci::Result<std::string> HfClient::LocateUrl(const FileLocation& loc) const {
  std::string url = ResolveUrl(loc.repo_id, loc.commit, loc.file.path);
  std::string what = loc.repo_id + "/" + loc.file.path;
  for (int hop = 0; hop < 10; ++hop) {
    HttpRequest req;
    req.method = "HEAD";
    req.url = url;
    req.idempotent = true;
    req.follow_redirects = false;
    req.headers = {{"Accept-Encoding", "identity"}};
    MC_ASSIGN_OR_RETURN(auto resp, Send(req));
    if (resp.status >= 300 && resp.status < 400) {
      auto location = FindHeader(resp, "location");
      if (!location) return Fail(ErrorCode::kNetwork, what + ": redirect without Location");
      std::string next = ResolveLocation(url, *location);
      if (IsHubUrl(next)) {  // renamed repo: follow, token kept
        url = next;
        continue;
      }
      // The CDN: check what the Hub says about the file against the listing.
      if (auto size = FindHeader(resp, "x-linked-size");
          size && std::strtoull(size->c_str(), nullptr, 10) != loc.file.size) {
        return Fail(ErrorCode::kVerificationFailed, what + ": X-Linked-Size " + *size +
                                                        " differs from the listing's " +
                                                        std::to_string(loc.file.size));
      }
      if (auto etag = FindHeader(resp, "x-linked-etag");
          etag && loc.file.is_lfs() && NormalizeEtag(*etag) != loc.file.lfs_sha256) {
        return Fail(ErrorCode::kVerificationFailed,
                    what + ": X-Linked-Etag differs from the listing's LFS sha256");
      }
      return next;
    }
    if (resp.status != 200) return std::unexpected(ErrorFor(resp, what, loc.repo_id));
    return url;
  }
  return Fail(ErrorCode::kNetwork, what + ": too many redirects");
}

// Sends the ranged GET for [begin, end) (end exclusive), re-resolving an
// expired presigned URL at most three times (FileLocation: a URL another
// fetch already replaced is not counted).
oci::Result<HttpResponse> HfClient::OpenRange(FileLocation& loc, uint64_t begin, uint64_t end,
                                              int* reresolves,
                                              const registry::BodyHandler& handler) const {
  std::string what = loc.repo_id + "/" + loc.file.path;
  std::optional<std::string> own;  // a URL this fetch resolved for itself
  for (;;) {
    std::string url;
    uint64_t generation = 0;
    const bool own_url = own.has_value();
    if (own_url) {
      url = std::move(*own);
      own.reset();
    } else {
      std::lock_guard lock(loc.mu);
      url = loc.url;
      generation = loc.generation;
    }
    HttpRequest req;
    req.url = url;
    req.idempotent = true;
    req.headers = {{"Accept-Encoding", "identity"},
                   {"Range", "bytes=" + std::to_string(begin) + "-" + std::to_string(end - 1)}};
    MC_ASSIGN_OR_RETURN(auto resp, Send(req, &handler));
    if (resp.status == 206 || resp.status == 200) {
      if (own_url) Publish(loc, url);  // it works: the other fetches use it too
      return resp;
    }
    bool expired = (resp.status == 403 || resp.status == 401) && !IsHubUrl(url);
    if (expired && !own_url) {
      std::lock_guard lock(loc.mu);
      if (loc.generation != generation) continue;  // replaced meanwhile: try the new one
    }
    if (expired && (*reresolves)++ < 3) {
      registry::Log()->info("{}: the download URL was refused (HTTP {}), resolving it again", what,
                            resp.status);
      MC_ASSIGN_OR_RETURN(own, LocateUrl(loc));
      continue;
    }
    if (resp.status == 416) {
      return Fail(ErrorCode::kRangeNotSatisfiable,
                  what + ": range " + std::to_string(begin) + "-" + std::to_string(end - 1) +
                      " refused (HTTP 416): the file is shorter than listed",
                  416);
    }
    return std::unexpected(ErrorFor(resp, what, loc.repo_id));
  }
}

oci::Result<void> HfClient::FetchRange(FileLocation& loc, uint64_t offset, uint64_t length,
                                       const RangeSink& sink, const std::atomic<bool>* stop) const {
  std::string what = loc.repo_id + "/" + loc.file.path;
  const uint64_t end = offset + length;
  uint64_t pos = offset;
  int reresolves = 0;
  int failures = 0;
  while (pos < end) {
    MC_RETURN_IF_ERROR(CheckCancelled());
    if (stop && stop->load()) return Fail(ErrorCode::kCancelled, what + ": stopped");
    // The body streams into `sink` as it arrives (on this thread); errors of
    // ours (the sink's, a bad reply) end the fetch, a broken connection is
    // retried from `pos`.
    uint64_t skip = 0;
    std::optional<oci::Error> fatal;
    bool whole = false;     // a 200: the body is the whole file
    bool complete = false;  // all of [offset, end) arrived; the rest is not wanted
    registry::BodyHandler handler;
    handler.on_response = [&](const HttpResponse& resp) -> oci::Result<void> {
      if (resp.status == 200) {
        // The range was ignored (protocols.md 5.4): never append a whole-file
        // body; skip to our offset in it instead.
        registry::Log()->debug("{}: HTTP 200 to a ranged request, skipping {} bytes", what, pos);
        skip = pos;
        whole = true;
        return {};
      }
      auto cr = FindHeader(resp, "content-range").value_or("");
      if (!cr.starts_with("bytes " + std::to_string(pos) + "-")) {
        fatal = oci::Error{
            ErrorCode::kNetwork,
            what + ": Content-Range '" + cr + "' does not start at " + std::to_string(pos),
            0,
            {}};
        return std::unexpected(*fatal);
      }
      return {};
    };
    handler.on_body = [&](std::span<const std::byte> data) -> oci::Result<void> {
      if (Cancelled()) {  // SIGINT/SIGTERM stop a transfer mid-segment
        fatal = oci::Error{ErrorCode::kCancelled, "interrupted; run again to resume", 0, {}};
        return std::unexpected(*fatal);
      }
      if (stop && stop->load()) {
        fatal = oci::Error{ErrorCode::kCancelled, what + ": stopped", 0, {}};
        return std::unexpected(*fatal);
      }
      size_t k = static_cast<size_t>(std::min<uint64_t>(skip, data.size()));
      skip -= k;
      data = data.subspan(k);
      data = data.first(static_cast<size_t>(std::min<uint64_t>(data.size(), end - pos)));
      if (!data.empty()) {
        auto status = sink(pos, data);
        if (!status) {
          fatal = status.error();
          return status;
        }
        pos += data.size();
      }
      if (whole && pos == end && !complete) {
        complete = true;  // the whole file's body goes on past our range: stop reading
        return Fail(ErrorCode::kCancelled, what + ": range complete");
      }
      return {};
    };
    uint64_t before = pos;
    auto resp = OpenRange(loc, pos, end, &reresolves, handler);
    if (fatal) return std::unexpected(*fatal);
    if (complete || (resp && pos == end)) break;
    oci::Result<void> status =
        resp ? Fail(ErrorCode::kTransient, what + ": connection closed at byte " +
                                               std::to_string(pos) + " of " + std::to_string(end))
             : std::unexpected(resp.error());
    if (!IsRetryableError(status.error())) return status;
    failures = pos > before ? 0 : failures + 1;
    if (failures > options_.retry_times) {
      return Fail(ErrorCode::kNetwork, status.error().message + " (after retries)");
    }
    registry::Log()->debug("{}: {}; resuming at byte {}", what, status.error().message, pos);
    options_.backoff.Wait(failures);
  }
  return {};
}

}  // namespace mc::engine
