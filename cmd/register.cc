// `mc-engine register`: registers the model version in the Kubeflow Model
// Registry (design.md "Command line"; protocols.md 6), idempotently, and
// records the ids in publish-metadata.json when --metadata is given.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cmd/cli.h"
#include "engine/metadata_store.h"
#include "engine/model_registry.h"

namespace mc::cmd {
namespace {

struct RegisterFlags {
  std::string url;
  std::string name;
  std::string version;
  std::string uri;
  std::string metadata;
  std::string token_file;
  std::string description;
  std::vector<std::string> properties;
  std::string model_format;
  bool allow_update = false;
  bool tls_verify = true;
  std::string cert_dir;
  int retry_times = 3;
};

oci::Result<std::pair<std::string, std::string>> SplitPair(const std::string& s, char sep,
                                                           const std::string& flag) {
  size_t at = s.find(sep);
  if (at == 0 || (sep == '=' && at == std::string::npos)) {
    return oci::Fail(
        oci::ErrorCode::kInvalidInput,
        flag + " \"" + s + "\": expected " + (sep == '=' ? "KEY=VALUE" : "NAME[:VERSION]"));
  }
  if (at == std::string::npos) return std::pair{s, std::string()};
  return std::pair{s.substr(0, at), s.substr(at + 1)};
}

// Fills what the flags leave open from publish-metadata.json.
oci::Result<void> FromMetadata(const engine::MetadataStore& store,
                               engine::RegistrationRequest& req) {
  auto doc = store.Get();
  if (!doc) {
    // Without --uri the metadata is where the URI comes from: it must exist.
    if (doc.error().code == oci::ErrorCode::kNotFound && !req.uri.empty()) return {};
    return std::unexpected(doc.error());
  }
  if (req.uri.empty()) {
    MC_ASSIGN_OR_RETURN(req.uri, engine::RegistrationUriFromMetadata(*doc));
  }
  if (const auto* s = engine::GetPath(*doc, "model.source"); s && s->is_string()) {
    req.source = s->get<std::string>();
  }
  if (const auto* r = engine::GetPath(*doc, "model.revision"); r && r->is_string()) {
    req.revision = r->get<std::string>();
  }
  return {};
}

oci::Result<void> RunRegister(const RegisterFlags& f, int verbose) {
  engine::RegistrationRequest req;
  req.name = f.name;
  req.version = f.version;
  req.uri = f.uri;
  req.description = f.description;
  req.allow_update = f.allow_update;
  for (const std::string& p : f.properties) {
    MC_ASSIGN_OR_RETURN(auto kv, SplitPair(p, '=', "--property"));
    req.properties[kv.first] = kv.second;
  }
  if (!f.model_format.empty()) {
    MC_ASSIGN_OR_RETURN(auto nv, SplitPair(f.model_format, ':', "--model-format"));
    req.model_format_name = nv.first;
    req.model_format_version = nv.second;
  }
  std::optional<engine::MetadataStore> store;
  if (!f.metadata.empty()) {
    MC_ASSIGN_OR_RETURN(store, engine::MetadataStore::Open(f.metadata));
    MC_RETURN_IF_ERROR(FromMetadata(*store, req));
  } else if (req.uri.empty()) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "no model URI: pass --uri oci://HOST/REPO@sha256:... or --metadata FILE");
  }
  MC_RETURN_IF_ERROR(engine::ValidateRegistration(req));
  MC_ASSIGN_OR_RETURN(std::string token, engine::LoadBearerToken(f.token_file));

  registry::TransportOptions topts;
  topts.tls.verify = f.tls_verify;
  topts.tls.cert_dir = f.cert_dir;
  topts.retry_times = f.retry_times;
  topts.trace = verbose >= 2;
  engine::ModelRegistryClient client(engine::NewModelRegistryTransport(topts), f.url, token);
  MC_ASSIGN_OR_RETURN(engine::Registration reg, client.Register(req));
  if (store) MC_RETURN_IF_ERROR(engine::RecordRegistration(*store, reg));

  auto state = [](bool created) { return created ? "created" : "found"; };
  std::printf(
      "registered model \"%s\" (id %s, %s) version \"%s\" (id %s, %s) artifact %s (id %s, %s)\n",
      req.name.c_str(), reg.registered_model_id.c_str(), state(reg.created_model),
      req.version.c_str(), reg.model_version_id.c_str(), state(reg.created_version),
      req.uri.c_str(), reg.model_artifact_id.c_str(),
      reg.updated_artifact ? "updated" : state(reg.created_artifact));
  return {};
}

void SetupRegister(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<RegisterFlags>();
  CLI::App* cmd = app.add_subcommand(
      "register", "register the model version in the Kubeflow Model Registry (idempotent)");
  cmd->add_option("--url", f->url, "Model Registry base URL (https://HOST[:PORT])")->required();
  cmd->add_option("--name", f->name, "registered model name")->required();
  cmd->add_option("--version", f->version, "model version name")->required();
  cmd->add_option("--uri", f->uri,
                  "model URI oci://HOST/REPO@sha256:... (default: from --metadata: the last "
                  "mirror, else the image)");
  cmd->add_option("--metadata", f->metadata,
                  "publish-metadata.json: source of the URI; the ids are recorded in it");
  cmd->add_option("--token-file", f->token_file,
                  std::string("file with the bearer token (default: ") +
                      engine::kServiceAccountTokenPath + " when present)");
  cmd->add_option("--description", f->description, "description of the model and version");
  cmd->add_option("--property", f->properties, "K=V string property of the version (repeatable)");
  cmd->add_option("--model-format", f->model_format,
                  "NAME[:VERSION] of the artifact's model format (e.g. vLLM, pytorch:2)");
  cmd->add_flag("--allow-update", f->allow_update,
                "repoint an existing version's artifact at this URI instead of failing");
  cmd->add_option("--tls-verify", f->tls_verify, "require HTTPS and verify certificates")
      ->default_str("true");
  cmd->add_option("--cert-dir", f->cert_dir, "directory with ca.crt (and client.cert/key)");
  InRange(cmd->add_option("--retry-times", f->retry_times,
                          "retries of transient failures, 0.." + std::to_string(kMaxRetryTimes))
              ->default_val(3),
          0, kMaxRetryTimes);
  cmd->callback([&ctx, f] {
    ctx.run = [f, verbose = ctx.global.verbose] { return RunRegister(*f, verbose); };
  });
}

MC_REGISTER_COMMAND(60, SetupRegister);

}  // namespace
}  // namespace mc::cmd
