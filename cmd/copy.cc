// `mc-engine copy [SRC] DEST`: skopeo-copy semantics over engine/copy.h.
//
// Flags follow skopeo: --src-*/--dest-* per side, and the common
// --authfile/--creds/--tls-verify/--cert-dir apply to a side unless its own
// flag is given. With --metadata and no SRC, the source is the image the
// build recorded (image.reference + image.digest), copied by digest.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "cmd/args.h"
#include "cmd/cli.h"
#include "engine/attachments.h"
#include "engine/copy.h"
#include "engine/image_ref.h"
#include "engine/metadata_store.h"
#include "oci/digest.h"
#include "oci/media_types.h"

namespace mc::cmd {
namespace {

struct SideFlags {
  std::optional<std::string> authfile;
  std::optional<std::string> creds;
  std::optional<bool> tls_verify;
  std::optional<std::string> cert_dir;
  bool no_creds = false;
};

struct CopyFlags {
  std::vector<std::string> locations;  // [SRC] DEST
  RegistryFlags common;
  SideFlags src;
  SideFlags dest;
  std::string digestfile;
  std::string metadata;
  std::string platform;
  std::optional<std::string> cache_dir;
  bool no_cache = false;
  int jobs = 4;
  bool remove_signatures = false;
  bool referrers = true;
  // skopeo users' flags (AddSkopeoCopyFlags).
  bool all = false;
  std::string multi_arch;
  bool preserve_digests = false;
  bool quiet = false;
  std::string retry_delay;
};

// The platform of this machine, as --multi-arch system copies it.
oci::Platform HostPlatform() {
  oci::Platform p;
#if defined(__x86_64__)
  p.architecture = "amd64";
#elif defined(__aarch64__)
  p.architecture = "arm64";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  p.architecture = "ppc64le";
#elif defined(__s390x__)
  p.architecture = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  p.architecture = "riscv64";
#else
#error "unknown host architecture: add it to HostPlatform"
#endif
  return p;
}

// Which children of an index to copy, from --platform, --multi-arch and --all
// (nullopt: all of them).
oci::Result<std::optional<oci::Platform>> ChoosePlatform(const CopyFlags& f) {
  auto conflict = [](const std::string& what) {
    return oci::Fail(oci::ErrorCode::kInvalidInput, what + " cannot be used together");
  };
  if (f.multi_arch == "index-only") {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "--multi-arch index-only is not supported: a registry refuses an index whose "
                     "images it does not hold; use --multi-arch all (the default) or system, or "
                     "--platform");
  }
  if (f.all && !f.multi_arch.empty() && f.multi_arch != "all") {
    return conflict("--all and --multi-arch " + f.multi_arch);
  }
  if (!f.platform.empty() && (f.all || !f.multi_arch.empty())) {
    return conflict(f.all ? "--all and --platform" : "--multi-arch and --platform");
  }
  if (f.multi_arch == "system") return HostPlatform();
  if (!f.platform.empty()) {
    MC_ASSIGN_OR_RETURN(oci::Platform p, oci::Platform::Parse(f.platform));
    return p;
  }
  return std::nullopt;
}

// Where a copy keeps its per-blob upload state when --cache-dir is not given:
// the user's cache ($XDG_CACHE_HOME or ~/.cache), so a re-run resumes by
// default. Tekton tasks should pass a directory on their workspace instead.
std::string DefaultCacheDir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/mc-engine";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/mc-engine";
  return "";
}

engine::RemoteSettings SettingsFor(const CopyFlags& f, const SideFlags& side,
                                   const std::string& name, const std::string& prefix,
                                   std::chrono::milliseconds retry_delay, int verbose) {
  engine::RemoteSettings s;
  s.transport.retry_delay = retry_delay;
  s.flag_prefix = prefix;
  s.anonymous = side.no_creds;
  s.transport.tls.verify = side.tls_verify.value_or(f.common.tls_verify);
  s.transport.tls.cert_dir = side.cert_dir.value_or(f.common.cert_dir);
  s.transport.retry_times = f.common.retry_times;
  s.transport.trace = verbose >= 2;
  s.authfile = side.authfile.value_or(f.common.authfile);
  s.creds = side.creds.value_or(f.common.creds);
  s.creds_flag = side.creds ? "--" + prefix + "creds" : "--creds";
  s.side = name;
  return s;
}

// The source recorded by a build: "host/repo:tag" or "oci:DIR:TAG", pinned to
// the recorded digest.
oci::Result<std::pair<std::string, std::string>> SourceFromMetadata(const std::string& file) {
  MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(file));
  auto doc = store.Get();
  if (!doc) return oci::Wrap(doc.error(), "no SRC given and cannot read --metadata " + file);
  const nlohmann::json* ref = engine::GetPath(*doc, "image.reference");
  const nlohmann::json* digest = engine::GetPath(*doc, "image.digest");
  if (!ref || !ref->is_string() || !digest || !digest->is_string()) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "no SRC given and " + file +
                         " has no image.reference and image.digest: give SRC, or run the build "
                         "with --metadata first");
  }
  std::string r = ref->get<std::string>();
  MC_ASSIGN_OR_RETURN(oci::Digest d, oci::Digest::Parse(digest->get<std::string>()));
  if (r.starts_with("oci:")) return std::pair{r, d.String()};
  std::string repo = r.substr(0, r.find('@'));
  size_t slash = repo.rfind('/');
  size_t colon = repo.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    repo.resize(colon);
  }
  if (r.starts_with("docker://")) repo = repo.substr(9);
  return std::pair{"docker://" + repo + "@" + d.String(), d.String()};
}

oci::Result<void> RunCopy(const CopyFlags& f, Context& ctx) {
  std::chrono::milliseconds retry_delay = registry::TransportOptions{}.retry_delay;
  if (!f.retry_delay.empty()) {
    MC_ASSIGN_OR_RETURN(retry_delay, ParseGoDuration("--retry-delay", f.retry_delay));
  }
  MC_ASSIGN_OR_RETURN(std::optional<oci::Platform> platform, ChoosePlatform(f));
  std::string src_text;
  std::string src_pin;  // digest from the metadata
  if (f.locations.size() == 2) {
    src_text = f.locations[0];
  } else if (!f.metadata.empty()) {
    MC_ASSIGN_OR_RETURN(auto from, SourceFromMetadata(f.metadata));
    src_text = from.first;
    src_pin = from.second;
  } else {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "copy needs SRC and DEST (or DEST with --metadata FILE naming the source)");
  }
  const std::string& dest_text = f.locations.back();
  engine::CopyOptions opts;
  opts.platform = platform;
  opts.jobs = f.jobs;  // range-checked by the parser
  opts.retry_times = f.common.retry_times;
  opts.progress = &ctx.progress;
  if (!f.no_cache) opts.resume_dir = f.cache_dir.value_or(DefaultCacheDir());

  int verbose = ctx.global.verbose;
  MC_ASSIGN_OR_RETURN(engine::ImageLocation src_loc, engine::ParseImageLocation(src_text));
  MC_ASSIGN_OR_RETURN(engine::ImageLocation dest_loc, engine::ParseImageLocation(dest_text));
  MC_ASSIGN_OR_RETURN(
      engine::OpenedSource src,
      engine::OpenSource(src_loc, SettingsFor(f, f.src, "source", "src-", retry_delay, verbose)));
  MC_ASSIGN_OR_RETURN(
      engine::OpenedDestination dest,
      engine::OpenDestination(
          dest_loc, SettingsFor(f, f.dest, "destination", "dest-", retry_delay, verbose)));
  if (!src_pin.empty()) src.tag_or_digest = src_pin;
  if (!src.registry_host.empty() && src.registry_host == dest.registry_host &&
      src.repository != dest.repository) {
    opts.mount_from = src.repository;
  }
  engine::AttachmentOptions attach;
  attach.signatures = !f.remove_signatures;
  attach.referrers = f.referrers;
  std::optional<oci::Digest> source_top;
  if (opts.platform && f.referrers) {
    // What is attached to an index cannot follow one platform of it: refuse before copying.
    MC_ASSIGN_OR_RETURN(oci::RawManifest top, src.source->GetManifest(src.tag_or_digest));
    source_top = top.digest;
    if (oci::media::IsIndex(top.media_type)) {
      MC_RETURN_IF_ERROR(engine::RefuseAttachedIndex(*src.source, top.digest, attach));
    }
  }
  MC_ASSIGN_OR_RETURN(engine::CopyResult result, engine::CopyImage(*src.source, src.tag_or_digest,
                                                                   *dest.dest, dest.tag, opts));
  MC_ASSIGN_OR_RETURN(
      engine::AttachmentCopyResult attached,
      engine::CopyAttachments(*src.source, source_top.value_or(result.manifest.digest),
                              result.manifest, *dest.dest, attach, opts));
  std::string digest = result.manifest.digest.String();
  if (!f.digestfile.empty()) MC_RETURN_IF_ERROR(oci::WriteFileAtomic(f.digestfile, digest));
  if (!f.metadata.empty()) {
    MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(f.metadata));
    nlohmann::json entry = {
        {"reference", dest.canonical}, {"digest", digest}, {"mirroredAt", engine::NowRfc3339()}};
    MC_RETURN_IF_ERROR(store.Append("mirrors", std::move(entry)));
  }
  if (f.quiet) {
    // -q: the digest on stdout only.
  } else if (result.tagged_existing) {
    std::fprintf(stderr, "%s already held %s (%s): tag created, no blob or manifest copied\n",
                 dest_text.c_str(), src_text.c_str(), digest.c_str());
  } else if (result.already_present) {
    std::fprintf(stderr, "%s already holds %s (%s): nothing copied\n", dest_text.c_str(),
                 src_text.c_str(), digest.c_str());
  } else {
    std::fprintf(stderr,
                 "copied %s to %s: %zu manifest(s), %zu blob(s) streamed (%llu bytes), "
                 "%zu mounted, %zu already present\n",
                 src_text.c_str(), dest_text.c_str(), result.manifests, result.blobs_copied,
                 static_cast<unsigned long long>(result.bytes_copied), result.blobs_mounted,
                 result.blobs_present);
  }
  if (!f.quiet && attached.cosign_tags + attached.referrers > 0) {
    std::fprintf(stderr, "copied %zu signature/attachment tag(s) and %zu referrer(s)%s\n",
                 attached.cosign_tags, attached.referrers,
                 attached.referrers == 0    ? ""
                 : attached.destination_api ? " (indexed by the destination's referrers API)"
                                            : " (listed under the destination's sha256-HEX tags)");
  }
  std::printf("%s\n", digest.c_str());
  return {};
}

void AddSideFlags(CLI::App* cmd, SideFlags& s, const std::string& p, const std::string& side) {
  cmd->add_option("--" + p + "authfile", s.authfile, "authentication file for the " + side);
  cmd->add_option("--" + p + "creds", s.creds, "USERNAME[:PASSWORD] for the " + side);
  cmd->add_option("--" + p + "tls-verify", s.tls_verify,
                  "require HTTPS and verify certificates of the " + side);
  cmd->add_option("--" + p + "cert-dir", s.cert_dir,
                  "directory with ca.crt, client.cert and client.key for the " + side);
  cmd->add_flag("--" + p + "no-creds", s.no_creds,
                "access the " + side + " anonymously: no credentials, no auth file")
      ->excludes("--" + p + "creds");
}

// Flags skopeo users type: accepted with skopeo's meaning where mc-engine has
// one (docs/reference.md).
void AddSkopeoCopyFlags(CLI::App* cmd, CopyFlags& f) {
  cmd->add_flag("-a,--all", f.all,
                "copy every platform of an index (the default; for skopeo users)");
  cmd->add_option("--multi-arch", f.multi_arch,
                  "all (default): an index with every image; system: only this machine's "
                  "platform; index-only: refused")
      ->check(CLI::IsMember({"all", "system", "index-only"}));
  cmd->add_flag("--preserve-digests", f.preserve_digests,
                "keep the digests (always done: manifests are copied byte for byte)");
  cmd->add_flag("-q,--quiet", f.quiet, "no progress and no summary: errors and the digest only");
  cmd->add_option("--retry-delay", f.retry_delay,
                  "base delay between retries, a Go duration such as 2s or 500ms (default 500ms; "
                  "retry n waits up to DELAY*2^n)");
}

void SetupCopy(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<CopyFlags>();
  CLI::App* cmd = app.add_subcommand(
      "copy",
      "copy an image between oci:, dir: and docker:// locations (registry to registry: mirror)");
  cmd->add_option(
         "locations", f->locations,
         "[SRC] DEST: oci:DIR[:TAG], dir:DIR or docker://HOST/REPO[:TAG|@DIGEST]; SRC may be "
         "omitted with --metadata")
      ->required()
      ->expected(1, 2);
  AddRegistryFlags(cmd, f->common);
  AddSideFlags(cmd, f->src, "src-", "source");
  AddSideFlags(cmd, f->dest, "dest-", "destination");
  cmd->add_option("--digestfile", f->digestfile, "write the digest of the copied manifest here");
  cmd->add_option(
      "--metadata", f->metadata,
      "publish-metadata.json: append a mirrors[] entry; the source when SRC is omitted");
  cmd->add_option("--platform", f->platform, "copy only this OS/ARCH[/VARIANT] of an index");
  InRange(cmd->add_option("--jobs", f->jobs,
                          "blobs transferred at once, 1.." + std::to_string(kMaxJobs))
              ->default_val(4),
          1, kMaxJobs);
  cmd->add_option("--cache-dir", f->cache_dir,
                  "state directory for resuming interrupted blob uploads on the next run "
                  "(default: $XDG_CACHE_HOME/mc-engine or ~/.cache/mc-engine)");
  cmd->add_flag("--no-cache", f->no_cache, "keep no upload state: an interrupted copy starts over");
  cmd->add_flag("--remove-signatures", f->remove_signatures,
                "do not copy signatures (cosign .sig tags, signature referrers)");
  cmd->add_option("--referrers", f->referrers,
                  "copy what is attached to the image: cosign .sig/.att/.sbom tags and OCI "
                  "referrers (default true; --referrers=false copies the image alone)")
      ->default_str("true");
  AddSkopeoCopyFlags(cmd, *f);
  cmd->callback([f, &ctx] {
    ctx.quiet = f->quiet;
    ctx.run = [f, &ctx] { return RunCopy(*f, ctx); };
  });
}

MC_REGISTER_COMMAND(30, SetupCopy);

}  // namespace
}  // namespace mc::cmd
