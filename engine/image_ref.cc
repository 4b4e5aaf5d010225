#include "engine/image_ref.h"

#include <algorithm>

#include "engine/cancel.h"

#include "oci/dir_layout.h"
#include "oci/layout.h"
#include "registry/reference.h"
#include "registry/remote.h"

namespace mc::engine {

std::string ImageLocation::TagOrDigest() const {
  if (kind == Kind::kOciLayout) return tag;
  if (kind == Kind::kDir) return "";
  size_t at = reference.find('@');
  if (at != std::string::npos) return reference.substr(at + 1);
  size_t slash = reference.rfind('/');
  size_t colon = reference.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return reference.substr(colon + 1);
  }
  return "";
}

oci::Result<ImageLocation> ParseImageLocation(const std::string& s) {
  ImageLocation loc;
  loc.original = s;
  if (s.starts_with("oci:")) {
    std::string rest = s.substr(4);
    size_t colon = rest.find(':');
    loc.kind = ImageLocation::Kind::kOciLayout;
    loc.path = rest.substr(0, colon);
    if (colon != std::string::npos) loc.tag = rest.substr(colon + 1);
    if (loc.path.empty()) {
      return oci::Fail(
          oci::ErrorCode::kInvalidInput,
          "invalid image location \"" + s + "\": oci: needs a directory, e.g. oci:./out:latest");
    }
    if (colon != std::string::npos && loc.tag.empty()) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "invalid image location \"" + s + "\": empty tag after ':'");
    }
    return loc;
  }
  if (s.starts_with("dir:")) {
    loc.kind = ImageLocation::Kind::kDir;
    loc.path = s.substr(4);
    if (loc.path.empty()) {
      return oci::Fail(
          oci::ErrorCode::kInvalidInput,
          "invalid image location \"" + s + "\": dir: needs a directory, e.g. dir:./img");
    }
    return loc;
  }
  if (s.starts_with("docker://")) {
    loc.kind = ImageLocation::Kind::kDocker;
    loc.reference = s.substr(9);
    if (loc.reference.empty()) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "invalid image location \"" + s + "\": docker:// needs HOST/REPO[:TAG]");
    }
    return loc;
  }
  return oci::Fail(oci::ErrorCode::kInvalidInput,
                   "invalid image location \"" + s +
                       "\": use oci:DIR[:TAG], dir:DIR or docker://HOST/REPO[:TAG]");
}

namespace {

registry::RemoteOptions ToRemoteOptions(const RemoteSettings& s) {
  registry::RemoteOptions o;
  o.transport = s.transport;
  o.authfile = s.authfile;
  o.creds = s.creds;
  if (!s.side.empty()) o.side = s.side;
  o.flag_prefix = s.flag_prefix;
  o.anonymous = s.anonymous;
  o.creds_flag = s.creds_flag;
  // --retry-delay is the base of upload recovery's backoff too.
  o.upload.backoff.base = s.transport.retry_delay;
  o.upload.backoff.ceiling = std::max(o.upload.backoff.ceiling, s.transport.retry_delay);
  if (s.chunk_size > 0) o.upload.chunk_size = s.chunk_size;
  // SIGINT/SIGTERM stop an upload between chunks, its session kept for the next run;
  // a transfer that does not end by itself within the grace is aborted (a stalled link).
  o.upload.cancelled = [] { return Cancelled(); };
  o.transport.cancelled = [] { return Cancelled(); };
  // --retry-times bounds upload recovery too: each retry of a request is
  // about two recovery attempts of a chunk (the PATCH and the status GET).
  o.upload.max_attempts = std::max(1, 2 * s.transport.retry_times);
  return o;
}

}  // namespace

oci::Result<OpenedDestination> OpenDestination(const ImageLocation& loc,
                                               const RemoteSettings& remote) {
  OpenedDestination out;
  if (loc.kind == ImageLocation::Kind::kDir) {
    MC_ASSIGN_OR_RETURN(auto dest, oci::DirDestination::Open(loc.path));
    out.dest = std::move(dest);
    out.canonical = "dir:" + loc.path;
    return out;
  }
  if (loc.kind == ImageLocation::Kind::kOciLayout) {
    MC_ASSIGN_OR_RETURN(auto dest, oci::LayoutDestination::Open(loc.path));
    out.dest = std::move(dest);
    if (!loc.tag.empty()) out.tag = loc.tag;
    out.canonical = "oci:" + loc.path + (loc.tag.empty() ? "" : ":" + loc.tag);
    return out;
  }
  MC_ASSIGN_OR_RETURN(registry::Reference ref, registry::Reference::Parse(loc.reference));
  MC_ASSIGN_OR_RETURN(out.dest, registry::OpenRemoteDestination(ref, ToRemoteOptions(remote)));
  if (ref.tag()) {
    out.tag = *ref.tag();
  } else if (!ref.digest()) {
    out.tag = "latest";
  }
  out.canonical = ref.String();
  out.registry_host = ref.registry();
  out.repository = ref.repository();
  return out;
}

oci::Result<OpenedSource> OpenSource(const ImageLocation& loc, const RemoteSettings& remote) {
  OpenedSource out;
  if (loc.kind == ImageLocation::Kind::kDir) {
    MC_ASSIGN_OR_RETURN(auto src, oci::DirSource::Open(loc.path));
    out.source = std::move(src);
    out.canonical = "dir:" + loc.path;
    return out;
  }
  if (loc.kind == ImageLocation::Kind::kOciLayout) {
    MC_ASSIGN_OR_RETURN(auto src, oci::LayoutSource::Open(loc.path));
    out.source = std::move(src);
    out.tag_or_digest = loc.tag;
    out.canonical = "oci:" + loc.path + (loc.tag.empty() ? "" : ":" + loc.tag);
    return out;
  }
  MC_ASSIGN_OR_RETURN(registry::Reference ref, registry::Reference::Parse(loc.reference));
  MC_ASSIGN_OR_RETURN(out.source, registry::OpenRemoteSource(ref, ToRemoteOptions(remote)));
  out.tag_or_digest = ref.Identifier();
  out.canonical = ref.String();
  out.registry_host = ref.registry();
  out.repository = ref.repository();
  return out;
}

}  // namespace mc::engine
