#include "tests/support/fake_registry.h"

namespace mc::testing {
namespace {

constexpr std::string_view kBase = "http://reg.test";
const std::string kUploads = "/v2/r/blobs/uploads/";

std::string Query(const std::string& url, const std::string& key) {
  size_t q = url.find('?');
  if (q == std::string::npos) return "";
  std::string qs = url.substr(q + 1);
  size_t pos = 0;
  while (pos <= qs.size()) {
    size_t amp = qs.find('&', pos);
    std::string kv = qs.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "";
}

FakeResponse ErrorBody(int status, const std::string& code, registry::Headers h = {}) {
  return FakeResponse::Status(status, std::move(h),
                              "{\"errors\":[{\"code\":\"" + code + "\",\"message\":\"fake\"}]}");
}

}  // namespace

std::string FakeRegistry::Location(const std::string& uuid) const {
  std::string path = kUploads + uuid;
  if (flavor_ == Flavor::kDistribution) {
    path += "?_state=" + std::to_string(uploads.at(uuid).size());
  }
  return relative_locations ? path : std::string(kBase) + path;
}

FakeResponse FakeRegistry::Post() {
  std::string uuid = "u" + std::to_string(next_uuid_++);
  uploads[uuid] = "";
  return FakeResponse::Status(202, {{"Location", Location(uuid)},
                                    {"Range", flavor_ == Flavor::kQuay ? "bytes=0--1" : "0-0"},
                                    {"Docker-Upload-UUID", uuid}});
}

FakeResponse FakeRegistry::Patch(const std::string& uuid, const RecordedRequest& r) {
  ++patches;
  std::string& data = uploads[uuid];
  if (fail_patch_503 == patches) {
    return ErrorBody(503, "UNAVAILABLE", {{"Retry-After", "0"}});
  }
  if (max_patch && r.body.size() > max_patch) return ErrorBody(413, "SIZE_INVALID");
  auto cr = r.Header("Content-Range").value_or("");
  size_t dash = cr.find('-');
  if (cr.empty() || dash == std::string::npos || cr.find("bytes") != std::string::npos) {
    return ErrorBody(400, "INVALID_REQUEST");
  }
  uint64_t start = std::stoull(cr.substr(0, dash));
  uint64_t end = std::stoull(cr.substr(dash + 1));
  if (end - start + 1 != r.body.size()) return ErrorBody(400, "SIZE_INVALID");
  if (r.Header("Content-Type").value_or("") != "application/octet-stream") {
    return ErrorBody(400, "INVALID_REQUEST");
  }
  std::string body = r.body;
  if (flavor_ == Flavor::kDistribution && start != data.size()) {
    return ErrorBody(416, "RANGE_INVALID");
  }
  if (flavor_ == Flavor::kQuay) {
    if (start > data.size())
      return ErrorBody(416, "INVALID_REQUEST", {{"Range", "0-" + std::to_string(data.size())}});
    body = body.substr(data.size() - start);  // skip the overlap
  }
  if (cut_patch == patches) {
    data += body.substr(0, std::min(cut_keep, body.size()));
    return FakeResponse::Reset();
  }
  data += body;
  if (lose_patch_response == patches) return FakeResponse::Reset("response lost");
  return FakeResponse::Status(
      202, {{"Location", Location(uuid)}, {"Range", "0-" + std::to_string(data.size() - 1)}});
}

FakeResponse FakeRegistry::Status(const std::string& uuid) {
  const std::string& data = uploads[uuid];
  if (flavor_ == Flavor::kQuay) {
    std::string prefix = quay_range_without_prefix ? "" : "bytes=";
    return FakeResponse::Status(204, {{"Range", prefix + "0-" + std::to_string(data.size())}});
  }
  std::string last = data.empty() ? "0" : std::to_string(data.size() - 1);
  return FakeResponse::Status(204, {{"Location", Location(uuid)}, {"Range", "0-" + last}});
}

FakeResponse FakeRegistry::Put(const std::string& uuid, const RecordedRequest& r) {
  std::string data = uploads[uuid] + r.body;
  std::string want = Query(r.url, "digest");
  std::string got = oci::Digest::Of(data).String();
  if (wrong_digest || got != want) return ErrorBody(400, "DIGEST_INVALID");
  blobs[got] = data;
  uploads.erase(uuid);
  return FakeResponse::Status(201, {{"Location", std::string(kBase) + "/v2/r/blobs/" + got},
                                    {"Docker-Content-Digest", got}});
}

FakeResponse FakeRegistry::Handle(const RecordedRequest& r) {
  std::string path = r.url.substr(0, r.url.find('?'));
  if (path.rfind(kBase, 0) == 0) path = path.substr(kBase.size());
  if (r.method == "POST" && path == kUploads) return Post();
  if (r.method == "HEAD" && path.rfind("/v2/r/blobs/sha256:", 0) == 0) {
    return FakeResponse::Status(blobs.count(path.substr(12)) ? 200 : 404);
  }
  if (path.rfind(kUploads, 0) != 0) return ErrorBody(404, "NAME_UNKNOWN");
  std::string uuid = path.substr(kUploads.size());
  if (!uploads.count(uuid)) return ErrorBody(404, "BLOB_UPLOAD_UNKNOWN");
  if (flavor_ == Flavor::kDistribution &&
      Query(r.url, "_state") != std::to_string(uploads[uuid].size())) {
    uploads.erase(uuid);  // distribution cancels the session
    return ErrorBody(404, "BLOB_UPLOAD_INVALID");
  }
  if (r.method == "PATCH") return Patch(uuid, r);
  if (r.method == "GET") return Status(uuid);
  if (r.method == "PUT") return Put(uuid, r);
  if (r.method == "DELETE") {
    uploads.erase(uuid);
    return FakeResponse::Status(204);
  }
  return ErrorBody(405, "UNSUPPORTED");
}

}  // namespace mc::testing
