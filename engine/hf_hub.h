// Hugging Face Hub client over registry::Transport (protocols.md section 5).
//
// What it does: parses `hf://ORG/NAME[@REVISION]`, pins the revision to a
// commit, lists the files of that commit (paginated tree API), filters them
// with huggingface_hub's glob rules, locates each file's bytes (the Hub itself
// for small files, a presigned CDN URL for LFS files) and fetches byte ranges
// with retries. Hub errors become one-line messages that say what to do.
//
// Auth: the token goes only to the Hub's own host (scheme, host and port of the
// endpoint); a redirect target on any other host gets no Authorization header.
//
// Thread guarantee: HfClient is safe for concurrent use (it holds only
// immutable options and a thread-safe Transport); FileLocation is shared by
// the fetches of one file and guards its URL with a mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/build.h"
#include "oci/error.h"
#include "registry/retry.h"
#include "registry/transport.h"

namespace mc::engine {

inline constexpr std::string_view kDefaultHfEndpoint = "https://huggingface.co";

// `hf://ORG/NAME[@REVISION]` (NAME alone is accepted for legacy repos such as
// "gpt2"). kInvalidInput with an example of the right form otherwise.
struct HfRepoRef {
  std::string repo_id;            // "org/name"
  std::string revision = "main";  // branch, tag, commit or "refs/pr/N"
  std::string String() const { return "hf://" + repo_id; }
};
oci::Result<HfRepoRef> ParseHfSource(std::string_view source);

// HF_ENDPOINT (trailing "/" removed) or the default.
std::string HfEndpointFromEnv();
// HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else "".
std::string HfTokenFromEnv();
// Reads a token file (first line, trimmed). kInvalidInput if unreadable or empty.
oci::Result<std::string> ReadTokenFile(const std::string& path);

// One file of a commit, from the tree listing.
struct HfFile {
  std::string path;  // "a/b.safetensors", validated (no "..", no absolute)
  uint64_t size = 0;
  std::string git_oid;     // git blob sha1 (hex)
  std::string lfs_sha256;  // hex; empty for files stored in git
  bool is_lfs() const { return !lfs_sha256.empty(); }
};

// huggingface_hub `filter_repo_objects`: fnmatch where `*` also matches "/",
// a pattern ending in "/" means everything under that directory; a file is
// kept when it matches some include (or there are none) and no exclude.
bool HfGlobMatch(std::string_view pattern, std::string_view path);
std::vector<HfFile> FilterHfFiles(const std::vector<HfFile>& files,
                                  const std::vector<std::string>& include,
                                  const std::vector<std::string>& exclude);

// "%xx"-encodes everything but unreserved characters (and "/" when keep_slash).
std::string HfUrlEncode(std::string_view s, bool keep_slash);

struct HfClientOptions {
  std::string endpoint;  // "" = HfEndpointFromEnv()
  std::string token;     // "" = anonymous
  // Retries of one request on 429, 408, 5xx and broken connections.
  int retry_times = 5;
  // The shared policy (registry/retry.h); tests inject a fake sleeper.
  registry::BackoffPolicy backoff{
      std::chrono::milliseconds(500), std::chrono::milliseconds(30'000), {}, {}};
};

// Where the bytes of one file are, shared by all fetches of that file. When a
// presigned URL expires (403 from the CDN) one fetch re-resolves it for
// itself, and once that URL worked the others pick it up. A 403 for a URL
// that another fetch has replaced meanwhile costs no re-resolve: otherwise
// fetches racing for URLs that a CDN honours once (or briefly) could use up
// each other's budget.
struct FileLocation {
  std::string repo_id;
  std::string commit;
  HfFile file;
  std::string url;  // CDN URL or the Hub's resolve URL
  uint64_t generation = 0;
  std::mutex mu;
};

// Receives fetched bytes in order: (file offset, bytes). An error stops the fetch.
using RangeSink = std::function<oci::Result<void>(uint64_t offset, std::span<const std::byte>)>;

class HfClient {
 public:
  HfClient(std::shared_ptr<registry::Transport> transport, HfClientOptions options);

  const std::string& endpoint() const { return endpoint_; }

  // GET /api/models/{repo}/revision/{rev} → the commit sha.
  oci::Result<std::string> ResolveCommit(const HfRepoRef& ref) const;
  // GET /api/models/{repo}/tree/{commit}?recursive=true&expand=false, following
  // `Link: <…>; rel="next"` to the end. Files only, in listing order.
  oci::Result<std::vector<HfFile>> ListFiles(const std::string& repo_id,
                                             const std::string& commit) const;
  // {endpoint}/{repo}/resolve/{commit}/{path}
  std::string ResolveUrl(const std::string& repo_id, const std::string& commit,
                         const std::string& path) const;

  // HEAD the resolve URL (relative redirects followed with the token; a
  // redirect to another host is where the bytes are), checks X-Linked-Size /
  // X-Linked-Etag against the listing (kVerificationFailed on a mismatch) and
  // stores the URL in `loc`.
  oci::Result<void> Locate(FileLocation& loc) const;
  // The same, returning the URL without storing it.
  oci::Result<std::string> LocateUrl(const FileLocation& loc) const;

  // Fetches [offset, offset+length) of the file into `sink`, with `Range` and
  // `Accept-Encoding: identity`. Retries broken connections from the byte it
  // stopped at; a 200 to the ranged request restarts the range (skipping the
  // bytes before it); a 403 from another host re-resolves the URL. Blocks.
  oci::Result<void> FetchRange(FileLocation& loc, uint64_t offset, uint64_t length,
                               const RangeSink& sink,
                               const std::atomic<bool>* stop = nullptr) const;

  // Sends with the token when `url` is on the Hub's host; retries 429 (after
  // RateLimit t= / Retry-After), 408, 5xx and transient transport errors.
  // Returns any other response as is (the caller maps its status). With a
  // handler, a 2xx body streams to it (Transport::SendStreaming) and nothing
  // is retried once it has started.
  oci::Result<registry::HttpResponse> Send(registry::HttpRequest request,
                                           const registry::BodyHandler* handler = nullptr) const;

  // Maps an error response to a one-line error (status + X-Error-Code).
  oci::Error ErrorFor(registry::HttpResponse& response, std::string_view what,
                      std::string_view repo_id) const;

  bool IsHubUrl(std::string_view url) const;

 private:
  oci::Result<registry::HttpResponse> SendOnce(registry::HttpRequest request,
                                               const registry::BodyHandler* handler) const;
  // One ranged GET whose 2xx body streams to `handler`.
  oci::Result<registry::HttpResponse> OpenRange(FileLocation& loc, uint64_t begin, uint64_t end,
                                                int* reresolves,
                                                const registry::BodyHandler& handler) const;

  std::shared_ptr<registry::Transport> transport_;
  HfClientOptions options_;
  std::string endpoint_;
  std::string hub_origin_;  // "scheme://host:port" of the endpoint
};

// Seconds to wait from a 429's `RateLimit: "…";r=0;t=N` or `Retry-After: N`.
std::optional<std::chrono::milliseconds> HfRetryAfter(const registry::HttpResponse& response);
// The URL of `Link: <url>; rel="next"`, or "" when there is none.
std::string HfNextLink(std::string_view link_header);
// "scheme://host:port" (port made explicit) of an absolute URL, or "".
std::string UrlOrigin(std::string_view url);
// First header with this name (case-insensitive).
std::optional<std::string> FindHeader(const registry::HttpResponse& r, std::string_view name);

// Options of `build hf://…`: the same listing and filtering as `download`,
// then every file streamed from the network into the tar.
struct HfModelOptions {
  HfClientOptions hub;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::string prefix = "/models";  // as BuildOptions::prefix
  // Files are fetched in segments of this size by `prefetch` threads, reading
  // ahead into the next file (memory bound: (prefetch + 1) × segment_size).
  uint64_t segment_size = 16 << 20;
  int prefetch = 4;
};

// Lists `hf://ORG/NAME[@REV]` and returns a ModelInput for BuildImage:
// entries under the prefix (parents first, sorted bytewise as ScanDirectory
// sorts), source "hf://org/name", revision = the pinned commit, and a
// ContentOpener that streams each file with parallel ranged prefetch and
// verifies it (sha256 for LFS files, git blob sha1 otherwise) at its end
// (kVerificationFailed). The opener keeps the transport alive. Errors as
// HfClient (kUnauthorized, kNotFound, kNetwork), kInvalidInput for a bad
// source or prefix, kNotFound when the filters leave no file.
oci::Result<ModelInput> OpenHfModel(std::shared_ptr<registry::Transport> transport,
                                    std::string_view source, const HfModelOptions& options);

}  // namespace mc::engine
