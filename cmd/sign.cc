// `mc-engine sign docker://REF --sign-by-sigstore-private-key FILE`: a cosign
// signature of an image already in a registry (engine/sign.h), and the
// signing flags `build` shares (cmd/sign_flags.h).
#include <cstdio>

#include "cmd/cli.h"
#include "cmd/sign_flags.h"
#include "engine/image_ref.h"
#include "engine/metadata_store.h"
#include "registry/remote.h"

namespace mc::cmd {

void AddSignFlags(CLI::App* cmd, SignFlags& flags) {
  cmd->add_option("--sign-by-sigstore-private-key", flags.key,
                  "sign the pushed image with this sigstore/cosign private key (PEM: EC, "
                  "PKCS#8, or cosign's encrypted key)");
  cmd->add_option("--sign-passphrase-file", flags.passphrase_file,
                  "file whose first line is the passphrase of an encrypted signing key");
  cmd->add_flag("--sign-all", flags.sign_all,
                "sign each image of a multi-platform index too, not only the index");
}

oci::Result<std::optional<engine::SigningKey>> LoadSignKey(const SignFlags& flags) {
  if (!flags.requested()) {
    if (!flags.passphrase_file.empty() || flags.sign_all) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "--sign-passphrase-file and --sign-all need --sign-by-sigstore-private-key");
    }
    return std::optional<engine::SigningKey>{};
  }
  std::optional<std::string> pass;
  if (!flags.passphrase_file.empty()) {
    MC_ASSIGN_OR_RETURN(pass, engine::ReadPassphraseFile(flags.passphrase_file));
  }
  MC_ASSIGN_OR_RETURN(auto key, engine::SigningKey::Load(flags.key, pass));
  return std::optional<engine::SigningKey>(std::move(key));
}

oci::Result<std::vector<engine::SignatureRecord>> SignPushed(oci::ImageDestination& dest,
                                                             const oci::RawManifest& image,
                                                             const engine::SigningKey& key,
                                                             const SignFlags& flags,
                                                             const std::string& metadata) {
  auto* reg = dynamic_cast<registry::RegistryDestination*>(&dest);
  if (!reg) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "--sign-by-sigstore-private-key needs a docker:// destination (signatures "
                     "are stored in the registry), not " +
                         dest.Describe());
  }
  engine::SignOptions so;
  so.sign_all = flags.sign_all;
  MC_ASSIGN_OR_RETURN(auto records, engine::SignImage(*reg, image, key, so));
  if (!metadata.empty()) {
    MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(metadata));
    for (auto& entry : engine::SignatureRecordsJson(records)) {
      MC_RETURN_IF_ERROR(store.Append("image.signatures", std::move(entry)));
    }
  }
  for (const auto& r : records) {
    std::fprintf(stderr, "%s %s@%s (tag %s)\n", r.already_signed ? "already signed" : "signed",
                 reg->reference().Name().c_str(), r.signed_digest.String().c_str(), r.tag.c_str());
  }
  return records;
}

namespace {

struct SignCmdFlags {
  std::string ref;
  SignFlags sign;
  std::string metadata;
  RegistryFlags registry;
};

oci::Result<void> RunSign(const SignCmdFlags& f, int verbose) {
  if (!f.sign.requested()) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "sign needs --sign-by-sigstore-private-key FILE");
  }
  MC_ASSIGN_OR_RETURN(engine::ImageLocation loc, engine::ParseImageLocation(f.ref));
  if (loc.kind != engine::ImageLocation::Kind::kDocker) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "sign needs a docker:// reference (signatures are stored in the registry), "
                     "got " +
                         f.ref);
  }
  MC_ASSIGN_OR_RETURN(auto key, LoadSignKey(f.sign));
  engine::RemoteSettings remote = Remote(f.registry, "destination", verbose);
  MC_ASSIGN_OR_RETURN(engine::OpenedDestination dest, engine::OpenDestination(loc, remote));
  auto* reg = dynamic_cast<registry::RegistryDestination*>(dest.dest.get());
  if (!reg) return oci::Fail(oci::ErrorCode::kInternal, "a docker:// destination is no registry");
  MC_ASSIGN_OR_RETURN(oci::RawManifest image,
                      reg->client().GetManifest(reg->reference().Identifier()));
  MC_ASSIGN_OR_RETURN(auto records, SignPushed(*dest.dest, image, *key, f.sign, f.metadata));
  for (const auto& r : records) std::printf("%s\n", r.signed_digest.String().c_str());
  return {};
}

void SetupSign(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<SignCmdFlags>();
  CLI::App* cmd = app.add_subcommand(
      "sign", "sign an image in a registry with a sigstore/cosign key (tag sha256-HEX.sig)");
  cmd->add_option("REF", f->ref, "docker://HOST/REPO[:TAG|@DIGEST]")->required();
  AddSignFlags(cmd, f->sign);
  cmd->add_option("--metadata", f->metadata,
                  "publish-metadata.json: append the signatures to image.signatures[]");
  AddRegistryFlags(cmd, f->registry);
  cmd->callback([f, &ctx] { ctx.run = [f, &ctx] { return RunSign(*f, ctx.global.verbose); }; });
}

MC_REGISTER_COMMAND(35, SetupSign);

}  // namespace
}  // namespace mc::cmd
