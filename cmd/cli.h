// Shared pieces of the command line: command registration, common options,
// exit codes. Each subcommand lives in its own file and registers itself with
// MC_REGISTER_COMMAND, so adding a command touches no other file.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/image_ref.h"
#include "engine/progress.h"
#include "oci/error.h"

namespace mc::cmd {

// Options every subcommand sees.
struct GlobalOptions {
  std::string log_format = "text";  // text|json
  std::string progress = "auto";    // auto|bar|lines|none
  int verbose = 0;
};

struct Context {
  GlobalOptions global;
  engine::Progress progress;
  // Set by a subcommand's -q/--quiet: no progress display, warnings and errors only.
  bool quiet = false;
  // Set by the chosen subcommand's callback; run after parsing.
  std::function<oci::Result<void>()> run;
};

using SetupFn = void (*)(CLI::App& app, Context& ctx);

struct CommandRegistrar {
  CommandRegistrar(int order, SetupFn fn);
};
std::vector<std::pair<int, SetupFn>>& RegisteredCommands();

#define MC_REGISTER_COMMAND(order, fn) \
  static const ::mc::cmd::CommandRegistrar MC_CONCAT_(mc_registrar_, __LINE__)(order, fn)

// Exit codes of design.md.
int ExitCodeFor(oci::ErrorCode code);

// Registry connection flags shared by build, copy and inspect (skopeo names).
struct RegistryFlags {
  std::string authfile;
  std::string creds;
  bool tls_verify = true;
  std::string cert_dir;
  int retry_times = 3;
};
void AddRegistryFlags(CLI::App* cmd, RegistryFlags& flags, const std::string& prefix = "");
// The engine's settings for one side ("source"/"destination") from those flags.
engine::RemoteSettings Remote(const RegistryFlags& f, std::string side, int verbose);

// Parses "SIZE" with optional K/M/G/T (binary) or KB/MB/GB/TB (decimal) suffix.
oci::Result<uint64_t> ParseSize(std::string_view s);

// The ranges of numeric flags (docs/safety.md lists them). A value outside is
// a usage error (exit 2) whose message gives the range.
inline constexpr int kMaxJobs = 256;
inline constexpr int kMaxRetryTimes = 100;
// Adds the range check to an integer option ("--jobs: Value 0 not in range 1 to 256").
CLI::Option* InRange(CLI::Option* option, int min, int max);
// ParseSize of a size flag, then min <= size <= max; kInvalidInput naming the
// flag and the range otherwise ("--chunk-size must be between 256K and 2G, got 1K").
oci::Result<uint64_t> ParseSizeFlag(std::string_view flag, std::string_view value, uint64_t min,
                                    uint64_t max);
// "256K", "2G", "1" for a size that is a whole number of K/M/G/T.
std::string FormatSize(uint64_t bytes);

}  // namespace mc::cmd
