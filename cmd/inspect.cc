// `mc-engine inspect REF`: skopeo's summary of an oci: or docker:// image
// (engine/inspect.h), or a Go template over it (--format), the manifest's
// exact bytes (--raw), or the image config (--config, --config --raw).
#include <cstdio>

#include "cmd/cli.h"
#include "engine/attachments.h"
#include "engine/go_template.h"
#include "engine/image_ref.h"
#include "engine/inspect.h"
#include "oci/media_types.h"

namespace mc::cmd {
namespace {

struct InspectFlags {
  std::string ref;
  bool raw = false;
  bool config = false;
  bool no_tags = false;
  bool referrers = false;
  std::string format;
  std::string platform = "linux/amd64";
  RegistryFlags registry;
};

oci::Result<void> RunInspect(const InspectFlags& f, int verbose) {
  if (!f.format.empty() && (f.raw || f.config)) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "--format applies to the summary: it cannot be combined with --raw or "
                     "--config");
  }
  if (!f.format.empty()) MC_RETURN_IF_ERROR(engine::CheckGoTemplate(f.format));
  MC_ASSIGN_OR_RETURN(engine::ImageLocation loc, engine::ParseImageLocation(f.ref));
  engine::RemoteSettings remote = Remote(f.registry, "source", verbose);
  MC_ASSIGN_OR_RETURN(engine::OpenedSource src, engine::OpenSource(loc, remote));
  if (f.referrers) {
    if (f.raw || f.config || !f.format.empty()) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--referrers cannot be combined with --raw, --config or --format");
    }
    MC_ASSIGN_OR_RETURN(oci::RawManifest top, src.source->GetManifest(src.tag_or_digest));
    std::vector<oci::Digest> roots = {top.digest};
    if (oci::media::IsIndex(top.media_type)) {
      MC_ASSIGN_OR_RETURN(oci::Index idx, oci::ParseIndex(top.bytes));
      for (const auto& c : idx.manifests) roots.push_back(c.digest);
    }
    MC_ASSIGN_OR_RETURN(auto found, engine::ListAttachments(*src.source, roots));
    std::printf("%s\n", engine::AttachmentsJson(top.digest, found).dump(4).c_str());
    return {};
  }
  if (!f.raw && !f.config) {
    MC_ASSIGN_OR_RETURN(nlohmann::ordered_json summary,
                        engine::InspectSummary(src, loc, f.platform, !f.no_tags));
    std::string text;
    if (f.format.empty()) {
      text = engine::GoJson(summary, 4) + "\n";
    } else {
      MC_ASSIGN_OR_RETURN(
          text, engine::RenderGoTemplate(f.format, summary, engine::InspectSummarySchema()));
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    return {};
  }
  MC_ASSIGN_OR_RETURN(oci::RawManifest m, src.source->GetManifest(src.tag_or_digest));
  if (f.raw && !f.config) {
    std::fwrite(m.bytes.data(), 1, m.bytes.size(), stdout);
    return {};
  }
  MC_ASSIGN_OR_RETURN(m, engine::ManifestForPlatform(src, m, loc, f.platform));
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

void SetupInspect(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "print an image's summary (as skopeo inspect), manifest (--raw) or config");
  cmd->add_option("REF", flags->ref, "oci:DIR[:TAG] or docker://HOST/REPO[:TAG|@DIGEST]")
      ->required();
  cmd->add_option("--format,-f", flags->format,
                  "Go template over the summary, e.g. '{{.Digest}}' or '{{json .Labels}}'");
  cmd->add_flag("--raw", flags->raw,
                "print the manifest's exact bytes (with --config: the config's)");
  cmd->add_flag("--config", flags->config, "print the image config");
  cmd->add_flag("--referrers", flags->referrers,
                "list what is attached (cosign tags, OCI referrers), recursively, as JSON");
  cmd->add_flag("--no-tags,-n", flags->no_tags, "do not list the repository's tags (RepoTags: [])");
  cmd->add_option("--platform", flags->platform,
                  "platform to pick from an index (default linux/amd64)");
  AddRegistryFlags(cmd, flags->registry);
  cmd->callback([flags, &ctx] {
    ctx.run = [flags, &ctx] { return RunInspect(*flags, ctx.global.verbose); };
  });
}

MC_REGISTER_COMMAND(40, SetupInspect);

}  // namespace
}  // namespace mc::cmd
