// Registries as image sources and destinations (oci/store.h), and the
// factories that build the HTTP stack for them:
//
//   curl (curl_transport.h) → retry (retry.h) → auth (auth.h) → RegistryClient
//
// Credentials come from the Keychain (--creds, --authfile, auth.json, docker
// config; credentials.h). Token scopes: "pull" for a source,
// "pull,push" for a destination, plus "pull" on the source repository of a
// cross-repository mount (a second client, made on first use).
//
// Scheme: https, unless the first request over https fails at the transport
// level and TLS verification is off, in which case plain http is tried (like
// containers/image for insecure registries). A loopback host is asked over
// plain http first: nothing can intercept loopback, one port speaks one
// protocol, and it spares loading the CA store (~30 ms of OpenSSL 3 per
// transport) when a local registry speaks http; a TLS one answers plain
// http with 400 and is then asked over https.
// Opening pings /v2/, so bad credentials fail here: kUnauthorized naming
// the registry and where the credentials came from.
//
// Thread guarantee: destinations and sources are safe for concurrent use;
// each BlobWriter is used by one thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "oci/store.h"
#include "registry/client.h"
#include "registry/reference.h"
#include "registry/transport.h"
#include "registry/upload.h"

namespace mc::registry {

struct RemoteOptions {
  TransportOptions transport;
  std::string authfile;              // --authfile ("" = default search)
  std::string creds;                 // --creds USER[:PASS] ("" = not given)
  std::string side = "destination";  // "source"/"destination", for messages
  // Prefix of this side's flags in messages ("dest-": a rejected password
  // names --dest-creds, --dest-authfile); "" names --creds, --authfile.
  std::string flag_prefix;
  std::string creds_flag = "--creds";  // the flag `creds` came from (--dest-creds, …)
  // No credential at all (--src-no-creds/--dest-no-creds): no auth file is read.
  bool anonymous = false;
  UploadOptions upload;  // chunk size of blob uploads
  // "https" or "http" forces the scheme; "" = https with the fallback above.
  std::string scheme;
  // Tests: replaces the curl+retry stack (auth is still layered on top).
  std::shared_ptr<Transport> base_transport;
};

// Makes the authenticated transport for a set of token scopes.
using AuthFactory = std::function<std::shared_ptr<Transport>(std::vector<std::string> scopes)>;

class RegistryDestination final : public oci::ImageDestination {
 public:
  RegistryDestination(Reference ref, std::string base_url, AuthFactory auth, UploadOptions upload);

  // HEAD.
  oci::Result<bool> Exists(const oci::Digest& digest) override;
  // HEAD when the digest is known (present → done()); mount when
  // hint.mount_from names another repository (201 → done(); 202 → upload on
  // that session; a failing mount falls back to a plain upload); else a new
  // session. Commit(digest, size) sends the closing PUT ?digest=.
  // With hint.resume: a session saved in the slot by an earlier run is asked
  // for its status (GET) and continued when the registry still has it — the
  // writer's resume_offset() says how many leading bytes of the regenerated
  // stream it drops; the slot gets the session URL and acknowledged offset
  // after every chunk, and is cleared on Commit/Abort but kept by Suspend().
  oci::Result<std::unique_ptr<oci::BlobWriter>> Begin(const oci::BlobHint& hint) override;
  // HEAD on the manifest.
  oci::Result<std::optional<oci::Digest>> ManifestDigest(const std::string& tag_or_digest) override;
  // PUT by tag, or by digest when no tag is given.
  oci::Result<void> PutManifest(const oci::RawManifest& manifest,
                                const std::optional<std::string>& tag) override;
  std::string Describe() const override { return "docker://" + ref_.String(); }

  RegistryClient& client() { return client_; }
  const Reference& reference() const { return ref_; }

 private:
  RegistryClient& MountClient(const std::string& from);
  oci::Result<std::unique_ptr<oci::BlobWriter>> BeginWith(const oci::BlobHint& hint,
                                                          UploadOptions options);

  Reference ref_;
  std::string base_url_;
  AuthFactory auth_;
  UploadOptions upload_;
  RegistryClient client_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<RegistryClient>> mount_clients_;  // guarded by mu_
};

// The BlobSink of architecture.md, by its older name.
using RegistrySink = RegistryDestination;

class RegistrySource final : public oci::ImageSource {
 public:
  RegistrySource(Reference ref, std::string base_url, std::shared_ptr<Transport> transport);
  // "" means the reference's own digest, tag, or "latest".
  oci::Result<oci::RawManifest> GetManifest(const std::string& tag_or_digest) override;
  oci::Result<std::unique_ptr<oci::Reader>> OpenBlob(const oci::Descriptor& desc) override;
  // GET with Range: bytes=offset-, read for `length` bytes (the rest of the
  // response is dropped with the connection). kRangeNotSatisfiable when the
  // registry answers a ranged request with 200 (no Range support).
  oci::Result<std::unique_ptr<oci::Reader>> OpenBlobRange(const oci::Descriptor& desc,
                                                          uint64_t offset,
                                                          uint64_t length) override;
  // One ranged GET, its body handed to the sink from libcurl's receive
  // buffer (no stream object, no intermediate buffer).
  oci::Result<void> StreamBlobRange(const oci::Descriptor& desc, uint64_t offset, uint64_t length,
                                    const ByteSink& sink) override;
  std::string Describe() const override { return "docker://" + ref_.String(); }

  RegistryClient& client() { return client_; }
  const Reference& reference() const { return ref_; }

 private:
  Reference ref_;
  RegistryClient client_;
};

oci::Result<std::unique_ptr<RegistryDestination>> OpenRegistryDestination(
    const Reference& ref, const RemoteOptions& options);
oci::Result<std::unique_ptr<RegistrySource>> OpenRegistrySource(const Reference& ref,
                                                                const RemoteOptions& options);

// The same as the interfaces of oci/store.h.
oci::Result<std::unique_ptr<oci::ImageDestination>> OpenRemoteDestination(
    const Reference& ref, const RemoteOptions& options);
oci::Result<std::unique_ptr<oci::ImageSource>> OpenRemoteSource(const Reference& ref,
                                                                const RemoteOptions& options);

}  // namespace mc::registry
