// The distribution API for one repository on one registry (protocols.md 1).
//
// RegistryClient speaks over a Transport that already authenticates and
// retries (auth.h, retry.h); it builds URLs, sets the headers each endpoint
// needs, keeps manifest bytes exactly as received or given, verifies digests,
// and turns error responses into one-line errors (api_error.h):
//   401/403 kUnauthorized, 404 kNotFound, 416 kRangeNotSatisfiable,
//   408/429/5xx kTransient, digest mismatches kVerificationFailed.
//
// Blocking. Thread guarantee: safe for concurrent use (no mutable state
// beyond the shared Transport); each UploadSession is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "oci/buffer.h"
#include "oci/digest.h"
#include "oci/error.h"
#include "oci/image.h"
#include "oci/io.h"
#include "registry/reference.h"
#include "registry/transport.h"
#include "registry/upload.h"

namespace mc::registry {

struct BlobStream {
  std::unique_ptr<oci::Reader> body;
  uint64_t offset = 0;  // first byte of body in the blob (0 when a Range was ignored)
  int64_t size = -1;    // whole blob size when known
};

struct MountResult {
  bool mounted = false;
  // When not mounted (202): the upload session the registry started instead.
  std::unique_ptr<UploadSession> session;
};

class RegistryClient {
 public:
  // base_url: "https://host:port" (scheme chosen by the caller, see remote.h).
  // `registry` and `repository` as in Reference ("docker.io" → base_url of
  // registry-1.docker.io).
  RegistryClient(std::shared_ptr<Transport> transport, std::string base_url, std::string registry,
                 std::string repository);

  const std::string& base_url() const { return base_url_; }
  const std::string& repository() const { return repository_; }
  // "docker://registry/repository".
  std::string Describe() const;

  // GET /v2/: 200 ok; 401 after auth (the Transport handles challenges) is kUnauthorized.
  oci::Result<void> Ping();

  // HEAD a manifest by tag or digest: nullopt on 404. The descriptor has the
  // media type (parameters dropped), Docker-Content-Digest and Content-Length.
  oci::Result<std::optional<oci::Descriptor>> HeadManifest(const std::string& tag_or_digest);
  // GET with the Accept list of media_types.h; the bytes are kept exactly.
  // When requested by digest the bytes are hashed and compared; a
  // Docker-Content-Digest header that disagrees with the bytes is refused.
  oci::Result<oci::RawManifest> GetManifest(const std::string& tag_or_digest);
  // PUT with Content-Type = manifest.media_type and the exact bytes; checks
  // the Docker-Content-Digest the registry returns.
  oci::Result<void> PutManifest(const oci::RawManifest& manifest, const std::string& tag_or_digest);

  // HEAD a blob: its size, or nullopt on 404.
  oci::Result<std::optional<int64_t>> HeadBlob(const oci::Digest& digest);
  // GET a blob from `offset` (Range: bytes=offset-). Redirects to storage are
  // followed by the Transport without credentials. A 200 to a ranged request
  // means the whole blob (offset 0 in the result). Not verified: wrap the
  // body in oci::VerifyingReader.
  // `length` > 0 bounds the Range (bytes=offset-(offset+length-1)), so the
  // server stops there and the connection stays reusable.
  oci::Result<BlobStream> GetBlob(const oci::Digest& digest, uint64_t offset = 0,
                                  uint64_t length = 0);

  // Appends bytes [offset, offset + length) of a blob to `out` (length ≤ its
  // free space) with one ranged GET whose body goes from the transport's
  // receive buffer straight into `out` (Transport::SendStreaming). On failure
  // `out` keeps what arrived. kRangeNotSatisfiable when the registry answers
  // a ranged request at a later offset with 200 (no Range support).
  oci::Result<void> ReadBlobRange(const oci::Digest& digest, uint64_t offset, uint64_t length,
                                  oci::Buffer& out);
  // The same ranged GET, its body handed to `sink` as it arrives (the
  // transport's receive buffer, valid during the call); ImageSource::StreamBlobRange.
  oci::Result<void> StreamBlobRange(
      const oci::Digest& digest, uint64_t offset, uint64_t length,
      const std::function<oci::Result<void>(std::span<const std::byte>)>& sink);

  // POST ?mount=&from= (protocols.md 1.4): 201 → mounted; 202 → a session.
  oci::Result<MountResult> Mount(const oci::Digest& digest, const std::string& from_repository,
                                 UploadOptions options = {});
  oci::Result<std::unique_ptr<UploadSession>> StartUpload(UploadOptions options = {});
  // Continues a persisted session (kNotFound: the registry forgot it).
  oci::Result<std::unique_ptr<UploadSession>> ResumeUpload(const std::string& url,
                                                           UploadOptions options = {});

  UploadTarget Target() const;

  // GET /v2/<repository>/tags/list, following `Link: <…>; rel="next"` pages
  // (at most 10000 pages, on the same registry): the repository's tags in the
  // registry's order. 401/403 kUnauthorized (some registries forbid listing).
  oci::Result<std::vector<std::string>> ListTags();

  // OCI 1.1 referrers (registry/referrers.cc, protocols.md 1.6).
  // GET /v2/<repository>/referrers/<digest>, following `Link: rel="next"`
  // pages: the descriptors of the manifests whose subject is `digest`.
  // nullopt when the registry has no referrers API (404, 400, 405, 501, or
  // an answer that is not an image index).
  oci::Result<std::optional<std::vector<oci::Descriptor>>> GetReferrers(const oci::Digest& digest);
  // PutManifest that also returns the OCI-Subject header of the answer: a
  // registry with the referrers API sets it when it indexed the manifest's
  // subject ("" when absent).
  oci::Result<std::string> PutManifestWithSubject(const oci::RawManifest& manifest,
                                                  const std::string& tag_or_digest);
  // GetManifest, but nullopt when the registry has no such tag or digest (404).
  oci::Result<std::optional<oci::RawManifest>> GetManifestIfPresent(
      const std::string& tag_or_digest);

 private:
  std::string Url(std::string_view suffix) const;

  std::shared_ptr<Transport> transport_;
  std::string base_url_;
  std::string registry_;
  std::string repository_;
};

// "application/vnd.oci.image.manifest.v1+json; charset=utf-8" → without parameters.
std::string StripMediaTypeParameters(std::string_view content_type);

}  // namespace mc::registry
