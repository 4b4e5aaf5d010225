// Image locations as users type them (skopeo transports):
//   oci:DIR[:TAG]            an OCI layout directory (split at the first ':')
//   docker://HOST/REPO[:TAG|@DIGEST]
//   dir:PATH                 skopeo's directory layout (oci/dir_layout.h), no tag
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "oci/store.h"
#include "registry/transport.h"

namespace mc::engine {

struct ImageLocation {
  enum class Kind { kOciLayout, kDocker, kDir };
  Kind kind = Kind::kOciLayout;
  std::string path;       // kOciLayout, kDir: the directory
  std::string tag;        // kOciLayout: tag ("" = none given)
  std::string reference;  // kDocker: "host/repo[:tag][@digest]" as typed
  std::string original;   // what the user typed

  // Tag or digest inside the location ("" = default).
  std::string TagOrDigest() const;
};

// kInvalidInput naming the accepted forms for anything else.
oci::Result<ImageLocation> ParseImageLocation(const std::string& s);

// Connection settings for docker:// locations (one per side for copy).
struct RemoteSettings {
  registry::TransportOptions transport;
  std::string authfile;
  std::string creds;
  std::string side;                    // "source" / "destination", for messages
  std::string flag_prefix;             // "src-" / "dest-": this side's flags, for messages
  bool anonymous = false;              // no credentials, no auth file lookup
  std::string creds_flag = "--creds";  // the flag `creds` came from, for messages
  uint64_t chunk_size = 0;             // upload chunk size (0 = default)
};

struct OpenedDestination {
  std::unique_ptr<oci::ImageDestination> dest;
  std::optional<std::string> tag;  // tag to put the manifest under
  std::string canonical;           // for metadata: "host/repo:tag" or "oci:DIR:TAG"
  std::string registry_host;       // docker only
  std::string repository;          // docker only
};

struct OpenedSource {
  std::unique_ptr<oci::ImageSource> source;
  std::string tag_or_digest;
  std::string canonical;
  std::string registry_host;
  std::string repository;
};

oci::Result<OpenedDestination> OpenDestination(const ImageLocation& loc,
                                               const RemoteSettings& remote);
oci::Result<OpenedSource> OpenSource(const ImageLocation& loc, const RemoteSettings& remote);

}  // namespace mc::engine
