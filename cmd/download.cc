// `mc-engine download hf://ORG/NAME[@REVISION] DIR`: a verified, resumable
// snapshot of a Hugging Face model repository (design.md, engine/download.h).
#include <cstdio>

#include "cmd/cli.h"
#include "engine/cancel.h"
#include "engine/download.h"
#include "engine/metadata_store.h"
#include "registry/curl_transport.h"
#include "registry/log.h"

namespace mc::cmd {
namespace {

struct DownloadFlags {
  std::string source;
  std::string dir;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  int jobs = 8;
  std::string segment_size = "64M";
  std::string token_file;
  std::string metadata;
  bool tls_verify = true;
  std::string cert_dir;
  int retry_times = 5;
};

// Segments are fetched whole into the part file; each worker holds one.
constexpr uint64_t kMinSegmentSize = 64 << 10;
constexpr uint64_t kMaxSegmentSize = 1ull << 40;

oci::Result<void> RecordMetadata(const std::string& file, const engine::DownloadResult& r) {
  MC_ASSIGN_OR_RETURN(auto store, engine::MetadataStore::Open(file));
  return store.SetSection(
      "model",
      {{"source", r.source}, {"revision", r.commit}, {"files", r.files}, {"bytes", r.bytes}});
}

oci::Result<void> RunDownload(const DownloadFlags& f, Context& ctx) {
  engine::DownloadOptions opts;
  opts.source = f.source;
  opts.dir = f.dir;
  opts.include = f.include;
  opts.exclude = f.exclude;
  opts.jobs = f.jobs;  // range-checked by the parser
  MC_ASSIGN_OR_RETURN(opts.segment_size, ParseSizeFlag("--segment-size", f.segment_size,
                                                       kMinSegmentSize, kMaxSegmentSize));
  opts.hub.token = engine::HfTokenFromEnv();
  if (!f.token_file.empty()) {
    MC_ASSIGN_OR_RETURN(opts.hub.token, engine::ReadTokenFile(f.token_file));
  }
  opts.hub.retry_times = f.retry_times;

  registry::TransportOptions topts;
  topts.tls.verify = f.tls_verify;
  topts.tls.cert_dir = f.cert_dir;
  topts.retry_times = 0;  // the Hub client retries itself
  topts.trace = ctx.global.verbose >= 2;
  topts.cancelled = engine::Cancelled;  // SIGINT/SIGTERM end a stalled fetch too
  auto transport = registry::NewCurlTransport(topts);

  MC_ASSIGN_OR_RETURN(engine::DownloadResult r, engine::Download(transport, opts, &ctx.progress));
  registry::Log()->info("{}@{}: {} files, {} bytes in {} ({} fetched, {} files already there)",
                        r.source, r.commit, r.files, r.bytes, f.dir, r.bytes_transferred,
                        r.files_skipped);
  if (!f.metadata.empty()) MC_RETURN_IF_ERROR(RecordMetadata(f.metadata, r));
  std::printf("%s\n", r.commit.c_str());
  return {};
}

void SetupDownload(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<DownloadFlags>();
  CLI::App* cmd = app.add_subcommand(
      "download", "download a Hugging Face model snapshot, verified and resumable");
  cmd->add_option("SOURCE", flags->source, "hf://ORG/NAME[@REVISION]")->required();
  cmd->add_option("DIR", flags->dir, "directory to write the model into")->required();
  cmd->add_option("--include", flags->include,
                  "only files matching GLOB (repeatable; huggingface_hub semantics: '*' "
                  "matches '/', 'DIR/' means the directory)");
  cmd->add_option("--exclude", flags->exclude, "skip files matching GLOB (repeatable)");
  InRange(cmd->add_option("-j,--jobs", flags->jobs,
                          "parallel transfers, 1.." + std::to_string(kMaxJobs))
              ->default_val(8),
          1, kMaxJobs);
  cmd->add_option("--segment-size", flags->segment_size,
                  "size of the ranged segments large files are fetched in (at least 64K)")
      ->default_val("64M");
  cmd->add_option("--token-file", flags->token_file,
                  "file holding the Hugging Face token (default: $HF_TOKEN)");
  cmd->add_option("--metadata", flags->metadata,
                  "publish-metadata.json to record the model source and commit in");
  cmd->add_option("--tls-verify", flags->tls_verify, "verify the endpoint's certificate")
      ->default_str("true");
  cmd->add_option("--cert-dir", flags->cert_dir, "directory with extra CA certificates (*.crt)");
  InRange(cmd->add_option(
                 "--retry-times", flags->retry_times,
                 "retries of a failed request or segment, 0.." + std::to_string(kMaxRetryTimes))
              ->default_val(5),
          0, kMaxRetryTimes);
  cmd->footer(
      "Endpoint from HF_ENDPOINT (default https://huggingface.co). Prints the resolved "
      "commit. Re-running resumes: verified files are skipped, partial files continue.");
  cmd->callback([flags, &ctx] { ctx.run = [flags, &ctx] { return RunDownload(*flags, ctx); }; });
}

MC_REGISTER_COMMAND(10, SetupDownload);

}  // namespace
}  // namespace mc::cmd
