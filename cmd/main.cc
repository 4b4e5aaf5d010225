// mc-engine: the command line. Parses flags, installs logging, progress and
// signal handlers, runs the chosen command and maps its error to an exit code
// (design.md "Exit codes"): one line on stderr, nothing else.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "cmd/args.h"
#include "cmd/cli.h"
#include "cmd/progress_render.h"
#include "engine/cancel.h"
#include "registry/log.h"

namespace mc::cmd {
namespace {

// One JSON object per line, for --log-format json.
class JsonSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::time_t t = std::chrono::system_clock::to_time_t(msg.time);
    char ts[32];
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    nlohmann::json j = {{"time", ts},
                        {"level", spdlog::level::to_string_view(msg.level).data()},
                        {"msg", std::string(msg.payload.data(), msg.payload.size())}};
    std::fprintf(stderr, "%s\n",
                 j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  void flush_() override { std::fflush(stderr); }
};

void InstallLogger(const GlobalOptions& g, bool quiet) {
  spdlog::sink_ptr sink;
  if (g.log_format == "json") {
    sink = std::make_shared<JsonSink>();
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_pattern("mc-engine: %^%l%$: %v");
  }
  auto logger = std::make_shared<spdlog::logger>("mc", sink);
  logger->set_level(g.verbose >= 2   ? spdlog::level::trace
                    : g.verbose == 1 ? spdlog::level::debug
                    : quiet          ? spdlog::level::warn
                                     : spdlog::level::info);
  registry::SetLogger(logger);
}

std::atomic<int> g_signal{0};

extern "C" void OnSignal(int sig) {
  g_signal.store(sig);
  // Second signal: give up at once.
  if (engine::CancelFlag().exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

void PrintError(const GlobalOptions& g, const std::string& message) {
  if (g.log_format == "json") {
    std::fprintf(stderr, "%s\n",
                 nlohmann::json{{"level", "error"}, {"msg", message}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                     .c_str());
  } else {
    std::fprintf(stderr, "mc-engine: error: %s\n", message.c_str());
  }
}

int Main(int argc, char** argv) {
  Context ctx;
  CLI::App app{"mc-engine: package ML models as modelcar OCI images and publish them"};
  app.name("mc-engine");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("mc-engine ") + MC_VERSION);
  app.add_option("--log-format", ctx.global.log_format, "log format: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--progress", ctx.global.progress, "progress display: auto, bar, lines, none")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  app.add_flag("-v,--verbose", ctx.global.verbose, "more logging (repeat for HTTP tracing)");
  // Taken before the subcommand as skopeo does; PrepareArgs moves it after the
  // subcommand name, whose own --tls-verify then gets it.
  std::optional<bool> tls_verify_before_command;
  app.add_option("--tls-verify", tls_verify_before_command,
                 "require HTTPS and verify certificates (also accepted before the command)");
  app.fallthrough();

  auto& commands = RegisteredCommands();
  std::sort(commands.begin(), commands.end());
  for (const auto& [order, setup] : commands) setup(app, ctx);

  auto args = PrepareArgs(app, std::vector<std::string>(argv, argv + argc));
  if (!args) {
    PrintError(ctx.global, args.error().message);
    return 2;
  }
  try {
    std::vector<std::string> reversed(args->rbegin(), args->rend() - 1);
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    PrintError(ctx.global, std::string(e.what()) + " (run 'mc-engine --help' for usage)");
    return 2;
  }
  if (!ctx.run) {
    PrintError(ctx.global, "no command given (run 'mc-engine --help' for usage)");
    return 2;
  }

  InstallLogger(ctx.global, ctx.quiet);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);

  oci::Result<void> result;
  {
    ProgressRenderer renderer(ctx.progress, ctx.quiet ? "none" : ctx.global.progress,
                              ctx.global.log_format == "json");
    result = ctx.run();
  }
  if (!result) {
    PrintError(ctx.global, result.error().message);
    if (result.error().code == oci::ErrorCode::kCancelled) {
      return engine::Cancelled() ? 128 + (g_signal.load() ? g_signal.load() : SIGINT) : 1;
    }
    return ExitCodeFor(result.error().code);
  }
  return 0;
}

}  // namespace
}  // namespace mc::cmd

int main(int argc, char** argv) {
  // Big buffers (download segments, upload chunks) are allocated and freed on
  // many threads; with glibc's sliding mmap threshold they end up in per-thread
  // arenas that keep the memory. A fixed 8 MiB threshold gives them back on
  // free (4 MiB pipeline shards stay below it and are reused).
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  try {
    return mc::cmd::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mc-engine: error: internal error: %s\n", e.what());
    return 1;
  }
}
