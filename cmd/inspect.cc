// `mc-engine inspect REF`: prints the manifest (pretty), its exact bytes
// (--raw) or the image config (--config) of an oci: or docker:// image.
#include <cstdio>

#include "cmd/cli.h"
#include "engine/image_ref.h"
#include "oci/media_types.h"

namespace mc::cmd {
namespace {

struct InspectFlags {
  std::string ref;
  bool raw = false;
  bool config = false;
  std::string platform = "linux/amd64";
  RegistryFlags registry;
};

oci::Result<void> RunInspect(const InspectFlags& f, int verbose) {
  MC_ASSIGN_OR_RETURN(engine::ImageLocation loc, engine::ParseImageLocation(f.ref));
  engine::RemoteSettings remote;
  remote.transport.tls.verify = f.registry.tls_verify;
  remote.transport.tls.cert_dir = f.registry.cert_dir;
  remote.transport.retry_times = f.registry.retry_times;
  remote.transport.trace = verbose >= 2;
  remote.authfile = f.registry.authfile;
  remote.creds = f.registry.creds;
  remote.side = "source";
  MC_ASSIGN_OR_RETURN(engine::OpenedSource src, engine::OpenSource(loc, remote));
  MC_ASSIGN_OR_RETURN(oci::RawManifest m, src.source->GetManifest(src.tag_or_digest));
  if (f.raw && !f.config) {
    std::fwrite(m.bytes.data(), 1, m.bytes.size(), stdout);
    return {};
  }
  if (f.config) {
    if (oci::media::IsIndex(m.media_type)) {
      MC_ASSIGN_OR_RETURN(oci::Index idx, oci::ParseIndex(m.bytes));
      MC_ASSIGN_OR_RETURN(oci::Platform want, oci::Platform::Parse(f.platform));
      const oci::Descriptor* pick = nullptr;
      for (const auto& d : idx.manifests) {
        if (d.platform && want.Matches(*d.platform)) {
          pick = &d;
          break;
        }
      }
      if (!pick) {
        return oci::Fail(oci::ErrorCode::kNotFound, "no " + f.platform + " image in " + f.ref);
      }
      MC_ASSIGN_OR_RETURN(m, src.source->GetManifest(pick->digest.String()));
    }
    MC_ASSIGN_OR_RETURN(oci::Manifest man, oci::ParseManifest(m.bytes));
    MC_ASSIGN_OR_RETURN(std::string cfg, src.source->ReadBlob(man.config));
    if (f.raw) {
      std::fwrite(cfg.data(), 1, cfg.size(), stdout);
      return {};
    }
    MC_ASSIGN_OR_RETURN(nlohmann::json j, oci::ParseJson(cfg, "config"));
    std::printf("%s\n", j.dump(2).c_str());
    return {};
  }
  MC_ASSIGN_OR_RETURN(nlohmann::json j, oci::ParseJson(m.bytes, "manifest"));
  std::printf("%s\n", j.dump(2).c_str());
  std::fprintf(stderr, "digest: %s\n", m.digest.String().c_str());
  return {};
}

void SetupInspect(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* cmd = app.add_subcommand("inspect", "print an image's manifest or config");
  cmd->add_option("REF", flags->ref, "oci:DIR[:TAG] or docker://HOST/REPO[:TAG|@DIGEST]")
      ->required();
  cmd->add_flag("--raw", flags->raw, "print the exact bytes");
  cmd->add_flag("--config", flags->config, "print the image config");
  cmd->add_option("--platform", flags->platform, "platform to pick from an index (with --config)");
  AddRegistryFlags(cmd, flags->registry);
  cmd->callback([flags, &ctx] {
    ctx.run = [flags, &ctx] { return RunInspect(*flags, ctx.global.verbose); };
  });
}

MC_REGISTER_COMMAND(40, SetupInspect);

}  // namespace
}  // namespace mc::cmd
