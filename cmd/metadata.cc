// mc-engine metadata set|append|get: publish-metadata.json for steps that are
// not mc-engine (design.md "publish-metadata.json"), through the same
// MetadataStore as every other writer: locked, group-shared, atomic.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "cmd/cli.h"
#include "engine/metadata_store.h"

namespace mc::cmd {
namespace {

struct MetadataOptions {
  std::string file;
  std::vector<std::string> assignments;  // set: KEY=VALUE...
  std::string key;                       // append, get
  std::string json;                      // append
  std::optional<gid_t> group;
};

void AddGroupFlag(CLI::App* sub, MetadataOptions& opts) {
  sub->add_option_function<unsigned>(
         "--group", [&opts](unsigned gid) { opts.group = static_cast<gid_t>(gid); },
         "GID to own the metadata directory and file (default: the directory's group)")
      ->type_name("GID");
}

oci::Result<void> RunSet(const MetadataOptions& opts) {
  std::vector<std::pair<std::string, nlohmann::json>> updates;
  for (const std::string& a : opts.assignments) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return oci::Fail(oci::ErrorCode::kInvalidInput,
                       "\"" + a + "\" is not KEY=VALUE (example: image.digest=sha256:...)");
    }
    updates.emplace_back(a.substr(0, eq), engine::ParseLooseValue(a.substr(eq + 1)));
  }
  MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(opts.file, opts.group));
  auto r = store.Update([&](nlohmann::json& doc) -> oci::Result<void> {
    for (auto& [key, value] : updates) MC_RETURN_IF_ERROR(engine::SetPath(doc, key, value));
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return {};
}

oci::Result<void> RunAppend(const MetadataOptions& opts) {
  nlohmann::json value = nlohmann::json::parse(opts.json, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "the value to append is not valid JSON (quote strings: '\"text\"')");
  }
  MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(opts.file, opts.group));
  return store.Append(opts.key, std::move(value));
}

oci::Result<void> RunGet(const MetadataOptions& opts) {
  MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(opts.file));
  MC_ASSIGN_OR_RETURN(nlohmann::json doc, store.Get());
  const nlohmann::json* node = engine::GetPath(doc, opts.key);
  if (!node) {
    return oci::Fail(oci::ErrorCode::kNotFound, "key \"" + opts.key + "\" is not in " + opts.file);
  }
  std::string out = node->is_string()
                        ? node->get<std::string>()
                        : node->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fputc('\n', stdout);
  return {};
}

void SetupMetadata(CLI::App& app, Context& ctx) {
  auto opts = std::make_shared<MetadataOptions>();
  CLI::App* cmd = app.add_subcommand(
      "metadata", "read and update publish-metadata.json (locked, group-writable, atomic)");
  cmd->require_subcommand(1);

  CLI::App* set = cmd->add_subcommand("set",
                                      "set KEY=VALUE pairs (dotted keys; VALUE is JSON "
                                      "when it parses as JSON, else a string)");
  set->add_option("file", opts->file, "metadata file")->required();
  set->add_option("assignments", opts->assignments, "KEY=VALUE...")->required();
  AddGroupFlag(set, *opts);
  set->callback([&ctx, opts] { ctx.run = [opts] { return RunSet(*opts); }; });

  CLI::App* append = cmd->add_subcommand("append", "append a JSON value to the array at KEY");
  append->add_option("file", opts->file, "metadata file")->required();
  append->add_option("key", opts->key, "dotted key of the array")->required();
  append->add_option("json", opts->json, "JSON value")->required();
  AddGroupFlag(append, *opts);
  append->callback([&ctx, opts] { ctx.run = [opts] { return RunAppend(*opts); }; });

  CLI::App* get = cmd->add_subcommand(
      "get", "print the value at KEY (strings raw, others as JSON; exit 4 when absent)");
  get->add_option("file", opts->file, "metadata file")->required();
  get->add_option("key", opts->key, "dotted key")->required();
  get->callback([&ctx, opts] { ctx.run = [opts] { return RunGet(*opts); }; });
}

MC_REGISTER_COMMAND(50, SetupMetadata);

}  // namespace
}  // namespace mc::cmd
