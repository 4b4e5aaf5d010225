// `mc-engine build SOURCE DEST`: a model directory (or hf://ORG/NAME[@REV]) into
// a modelcar image (or, with --type modelpack, a CNCF ModelPack artifact) at
// oci:DIR[:TAG] or docker://HOST/REPO[:TAG].
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "cmd/cli.h"
#include "cmd/sign_flags.h"
#include "engine/build.h"
#include "engine/builtin_base.h"
#include "engine/cancel.h"
#include "engine/hf_hub.h"
#include "engine/image_ref.h"
#include "engine/metadata_store.h"
#include "oci/image.h"
#include "oci/io.h"
#include "oci/layout.h"
#include "registry/curl_transport.h"
#include "registry/log.h"

namespace mc::cmd {
namespace {

struct BuildFlags {
  std::string source;
  std::string dest;
  std::string type = "modelcar";
  std::string name;
  // Flags given that shape a modelcar image only (refused with --type modelpack).
  std::vector<std::string> modelcar_only;
  std::string base = std::string(engine::kBuiltinBaseName);
  std::string builtin_busybox;
  std::string user;
  std::string prefix = "/models";
  std::string compression;  // "" = the type's default: gzip (modelcar), none (modelpack)
  int compression_level = -1;
  std::string platform = "linux/amd64";
  std::string max_layer_size;
  bool layer_per_file = false;
  bool follow_symlinks = false;
  std::vector<std::string> labels;
  std::vector<std::string> annotations;
  int jobs = 0;
  std::string cache_dir;
  bool strict = false;
  bool no_cache = false;
  std::string digestfile;
  std::string metadata;
  RegistryFlags registry;
  // hf:// sources
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::string token_file;
  std::string chunk_size;
  SignFlags sign;
};

oci::Result<std::map<std::string, std::string>> ParseKeyValues(const std::vector<std::string>& kvs,
                                                               const std::string& flag) {
  std::map<std::string, std::string> out;
  for (const auto& kv : kvs) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return oci::Fail(oci::ErrorCode::kInvalidInput, flag + " \"" + kv + "\" is not KEY=VALUE");
    }
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

// Upload chunks: two per blob are in memory at once.
constexpr uint64_t kMinChunkSize = 256 << 10;
constexpr uint64_t kMaxChunkSize = 1ull << 30;

// The levels oci::Codec takes, checked before anything is opened.
oci::Result<void> CheckCompressionLevel(oci::Compression c, int level) {
  if (level == -1) return {};
  switch (c) {
    case oci::Compression::kGzip:
      if (level >= 0 && level <= 9) return {};
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--compression-level for gzip must be between 0 and 9 (or -1 for the "
                       "default), got " +
                           std::to_string(level));
    case oci::Compression::kZstd:
      if (level >= 0 && level <= 19) return {};
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--compression-level for zstd must be between 0 and 19 (or -1 for the "
                       "default), got " +
                           std::to_string(level));
    case oci::Compression::kNone:
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--compression-level has no meaning with --compression none; drop it");
  }
  return {};
}

// The flags that shape the image around the model: a ModelPack artifact has
// no base, no image config and no prefix (its files sit at the root).
constexpr const char* kModelcarOnlyFlags[] = {"--base",   "--builtin-busybox", "--user",
                                              "--prefix", "--label",           "--platform",
                                              "--strict", "--max-layer-size",  "--layer-per-file"};

oci::Result<engine::ArtifactKind> ParseType(const BuildFlags& f) {
  if (f.type == "modelcar") {
    if (!f.name.empty()) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--name is the ModelPack descriptor's name: use it with --type modelpack "
                       "(a modelcar's title comes from the source; set it with --annotation "
                       "org.opencontainers.image.title=NAME)");
    }
    return engine::ArtifactKind::kModelcar;
  }
  if (f.type != "modelpack") {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "--type \"" + f.type + "\" is not modelcar or modelpack");
  }
  if (!f.modelcar_only.empty()) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     f.modelcar_only.front() +
                         " shapes a modelcar image; a ModelPack artifact (--type modelpack) has "
                         "no base, image config or prefix, and one layer per weight file: drop "
                         "it");
  }
  return engine::ArtifactKind::kModelPack;
}

oci::Result<void> RunBuild(const BuildFlags& f, Context& ctx) {
  engine::BuildOptions o;
  MC_ASSIGN_OR_RETURN(o.kind, ParseType(f));
  const bool modelpack = o.kind == engine::ArtifactKind::kModelPack;
  o.name = f.name;
  o.prefix = f.prefix;
  // ModelPack: uncompressed by default, as the spec recommends (weights do not
  // compress, and runtimes then mount layers without a decompression pass).
  const std::string compression = !f.compression.empty() ? f.compression
                                  : modelpack            ? "none"
                                                         : "gzip";
  MC_ASSIGN_OR_RETURN(o.compression, oci::ParseCompression(compression));
  MC_RETURN_IF_ERROR(CheckCompressionLevel(o.compression, f.compression_level));
  o.compression_level = f.compression_level;
  o.jobs = f.jobs;  // 0 (not given) = CPUs; a given value is checked to be 1..kMaxJobs
  if (!f.max_layer_size.empty()) {
    MC_ASSIGN_OR_RETURN(o.max_layer_size,
                        ParseSizeFlag("--max-layer-size", f.max_layer_size, 1, UINT64_MAX));
  }
  o.layer_per_file = f.layer_per_file;
  o.follow_symlinks = f.follow_symlinks;
  MC_ASSIGN_OR_RETURN(o.labels, ParseKeyValues(f.labels, "--label"));
  MC_ASSIGN_OR_RETURN(o.annotations, ParseKeyValues(f.annotations, "--annotation"));
  o.mtime = oci::DefaultMtime();
  o.strict = f.strict;
  o.cache_dir = f.cache_dir;
  o.use_cache = !f.no_cache;
  if (f.platform == "all") {
    o.all_platforms = true;
  } else {
    MC_ASSIGN_OR_RETURN(o.platform, oci::Platform::Parse(f.platform));
  }
  MC_RETURN_IF_ERROR(oci::NormalizePrefix(f.prefix));

  engine::RemoteSettings remote = Remote(f.registry, "destination", ctx.global.verbose);
  if (!f.chunk_size.empty()) {
    MC_ASSIGN_OR_RETURN(remote.chunk_size,
                        ParseSizeFlag("--chunk-size", f.chunk_size, kMinChunkSize, kMaxChunkSize));
  }
  MC_ASSIGN_OR_RETURN(engine::ImageLocation dest_loc, engine::ParseImageLocation(f.dest));
  if (f.sign.requested() && dest_loc.kind != engine::ImageLocation::Kind::kDocker) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "--sign-by-sigstore-private-key needs a docker:// destination");
  }
  MC_ASSIGN_OR_RETURN(auto sign_key, LoadSignKey(f.sign));

  if (!f.user.empty()) {
    MC_ASSIGN_OR_RETURN(o.user, engine::ParseUser(f.user));
  }
  if (!f.builtin_busybox.empty() && f.base != engine::kBuiltinBaseName) {
    return oci::Fail(
        oci::ErrorCode::kInvalidInput,
        "--builtin-busybox is for the built-in base; drop it or drop --base " + f.base);
  }

  engine::OpenedSource base;
  if (modelpack) {
    // No base: the artifact is the model's layers and its config.
  } else if (f.base == engine::kBuiltinBaseName) {
    if (o.all_platforms) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--platform all needs a multi-platform --base image (the built-in base "
                       "has the build machine's busybox only)");
    }
    engine::BuiltinBaseOptions bo;
    bo.busybox = f.builtin_busybox;
    bo.platform = o.platform;
    bo.compression = o.compression;
    bo.compression_level = o.compression_level;
    bo.mtime = o.mtime;
    MC_ASSIGN_OR_RETURN(base.source, engine::OpenBuiltinBase(bo));
    o.base = base.source.get();
    o.base_name = "builtin";
    o.base_builtin = true;
  } else if (f.base != "scratch") {
    MC_ASSIGN_OR_RETURN(engine::ImageLocation base_loc, engine::ParseImageLocation(f.base));
    auto opened = engine::OpenSource(base_loc, Remote(f.registry, "base", ctx.global.verbose));
    if (!opened) return std::unexpected(opened.error().Wrap("opening base image " + f.base));
    base = std::move(*opened);
    o.base = base.source.get();
    o.base_ref = base.tag_or_digest;
    o.base_name = base.canonical;
    // Only a registry reference means the same thing on another machine.
    if (base_loc.kind == engine::ImageLocation::Kind::kDocker) o.base_annotation = base.canonical;
  } else if (o.all_platforms) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "--platform all needs a multi-platform --base image");
  }

  engine::ModelInput input;
  if (f.source.starts_with("hf://")) {
    // Streamed from the Hub into the layer: no model file touches the disk.
    engine::HfModelOptions hf;
    hf.include = f.include;
    hf.exclude = f.exclude;
    hf.prefix = f.prefix;
    hf.hub.token = engine::HfTokenFromEnv();
    if (!f.token_file.empty()) {
      MC_ASSIGN_OR_RETURN(hf.hub.token, engine::ReadTokenFile(f.token_file));
    }
    registry::TransportOptions topts;
    topts.retry_times = 0;  // the Hub client retries itself
    topts.trace = ctx.global.verbose >= 2;
    topts.cancelled = engine::Cancelled;  // SIGINT/SIGTERM end a stalled fetch too
    MC_ASSIGN_OR_RETURN(input,
                        engine::OpenHfModel(registry::NewCurlTransport(topts), f.source, hf));
  } else {
    input.dir = f.source;
    input.source = f.source;
  }

  MC_ASSIGN_OR_RETURN(engine::OpenedDestination dest, engine::OpenDestination(dest_loc, remote));
  o.tag = dest.tag;
  if (base.source && !dest.registry_host.empty() && dest.registry_host == base.registry_host &&
      base.repository != dest.repository) {
    o.base_mount_from = base.repository;
  }
  auto built = engine::BuildImage(input, o, *dest.dest, &ctx.progress);
  if (!built) return std::unexpected(built.error().Wrap("building " + f.dest));

  if (!f.digestfile.empty()) {
    MC_RETURN_IF_ERROR(oci::WriteFileAtomic(f.digestfile, built->manifest.digest.String()));
  }
  if (!f.metadata.empty()) {
    MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(f.metadata));
    uint64_t size = 0;
    for (const auto& l : built->layers) size += static_cast<uint64_t>(l.descriptor.size);
    nlohmann::json image = {{"reference", dest.canonical},
                            {"digest", built->manifest.digest.String()},
                            {"mediaType", built->manifest.media_type},
                            {"size", size},
                            {"compression", compression},
                            {"type", f.type},
                            {"layers", built->layers.size()},
                            {"builtAt", oci::Rfc3339(std::time(nullptr))}};
    if (!built->layers.empty()) {
      image["layerDigest"] = built->layers.front().descriptor.digest.String();
      image["diffId"] = built->layers.front().diff_id.String();
    }
    MC_RETURN_IF_ERROR(store.SetSection("image", image));
    if (f.source.starts_with("hf://")) {
      MC_RETURN_IF_ERROR(store.MergeSection("model", {{"source", input.source},
                                                      {"revision", input.revision},
                                                      {"files", built->files},
                                                      {"bytes", built->bytes}}));
    }
  }
  if (sign_key) {
    MC_RETURN_IF_ERROR(SignPushed(*dest.dest, built->manifest, *sign_key, f.sign, f.metadata));
  }
  registry::Log()->info("built {} from {} files ({} bytes) in {} layer(s): {}",
                        dest.dest->Describe(), built->files, built->bytes, built->layers.size(),
                        built->manifest.digest.String());
  std::printf("%s\n", built->manifest.digest.String().c_str());
  return {};
}

void SetupBuild(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<BuildFlags>();
  CLI::App* cmd = app.add_subcommand(
      "build", "build a modelcar image or a ModelPack artifact from a model directory");
  cmd->add_option("SOURCE", flags->source, "model directory (or hf://ORG/NAME[@REVISION])")
      ->required();
  cmd->add_option("DEST", flags->dest, "oci:DIR[:TAG] or docker://HOST/REPO[:TAG]")->required();
  cmd->add_option("--type", flags->type,
                  "modelcar (an image KServe runs as a sidecar, the model under --prefix) or "
                  "modelpack (a CNCF ModelPack artifact: one layer per weight file, typed "
                  "layers, a model config; runtimes mount it directly)")
      ->default_str("modelcar");
  cmd->add_option("--name", flags->name,
                  "modelpack: the model's name in the config (default: the source's last path "
                  "component)");
  cmd->add_option("--base", flags->base,
                  "base image: builtin (a static busybox with sh, ln, sleep, ls, mkdir, as "
                  "KServe's modelcar sidecar needs), scratch (none), oci:DIR[:TAG] or "
                  "docker://REF")
      ->default_str(std::string(engine::kBuiltinBaseName));
  cmd->add_option("--builtin-busybox", flags->builtin_busybox,
                  "the static busybox the built-in base is made from (default: /bin/busybox, "
                  "/usr/bin/busybox or /usr/sbin/busybox)");
  cmd->add_option("--user", flags->user,
                  "config.User, UID[:GID] (default: the base's User, else 1001)");
  cmd->add_option("--prefix", flags->prefix, "where the model lands in the image")
      ->default_str("/models");
  cmd->add_option("--compression", flags->compression,
                  "gzip, zstd or none (default: gzip for modelcar, none for modelpack, as the "
                  "ModelPack spec recommends: weights do not compress)");
  cmd->add_option("--compression-level", flags->compression_level,
                  "codec level: gzip 0..9, zstd 0..19 (-1 = the codec's default)");
  cmd->add_option("--platform", flags->platform, "OS/ARCH[/VARIANT] or all")
      ->default_str("linux/amd64");
  cmd->add_option("--max-layer-size", flags->max_layer_size,
                  "split the model into layers of at most SIZE (e.g. 10G; at least 1)");
  cmd->add_flag("--layer-per-file", flags->layer_per_file, "one layer per large file");
  cmd->add_flag("--follow-symlinks", flags->follow_symlinks,
                "pack what symlinks leaving the model directory point to (default: refuse "
                "them, except Hugging Face cache snapshots)");
  cmd->add_option("--label", flags->labels, "config label KEY=VALUE (repeatable)");
  cmd->add_option("--annotation", flags->annotations, "manifest annotation KEY=VALUE (repeatable)");
  InRange(cmd->add_option("--jobs,-j", flags->jobs,
                          "compression threads, 1.." + std::to_string(kMaxJobs) +
                              " (default: the number of CPUs)"),
          1, kMaxJobs);
  cmd->add_option("--cache-dir", flags->cache_dir, "state directory for re-runs and resume");
  cmd->add_flag("--no-cache", flags->no_cache, "always read and build the model layers");
  cmd->add_flag("--strict", flags->strict, "fail when the modelcar contract does not hold");
  cmd->add_option("--digestfile", flags->digestfile, "write the manifest digest to this file");
  cmd->add_option("--metadata", flags->metadata, "update publish-metadata.json at this path");
  cmd->add_option("--include", flags->include,
                  "hf:// sources: only files matching GLOB (repeatable)");
  cmd->add_option("--exclude", flags->exclude,
                  "hf:// sources: skip files matching GLOB (repeatable)");
  cmd->add_option("--token-file", flags->token_file,
                  "hf:// sources: file holding the Hub token (default $HF_TOKEN)");
  cmd->add_option("--chunk-size", flags->chunk_size,
                  "registry upload chunk size, 256K..1G (default 32M; two chunks in memory per "
                  "blob)");
  AddRegistryFlags(cmd, flags->registry);
  AddSignFlags(cmd, flags->sign);
  cmd->callback([flags, cmd, &ctx] {
    for (const char* name : kModelcarOnlyFlags) {
      if (cmd->count(name) > 0) flags->modelcar_only.push_back(name);
    }
    ctx.run = [flags, &ctx] { return RunBuild(*flags, ctx); };
  });
}

MC_REGISTER_COMMAND(10, SetupBuild);

}  // namespace
}  // namespace mc::cmd
