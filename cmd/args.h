// Command-line habits of skopeo users, applied before CLI11 parses: unknown
// flags named as such, global flags before the subcommand, Go durations.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "oci/error.h"

namespace mc::cmd {

// Flags given before the subcommand that belong to it when it has them
// (`mc-engine --tls-verify=false copy …`): moved after the subcommand name.
inline constexpr std::string_view kHoistedFlags[] = {"--tls-verify"};

// Checks every flag of `args` (args[0] is the program) against the options of
// `app` and of the subcommands it selects, and moves kHoistedFlags given
// before the subcommand to just after it. kInvalidInput "unknown flag --x"
// for a flag no level knows (CLI11 would take it, or its value, for a
// positional and complain about the count), and "--tls-verify does not apply
// to 'metadata'" for a hoisted flag the subcommand lacks. Stops at "--".
oci::Result<std::vector<std::string>> PrepareArgs(CLI::App& app, std::vector<std::string> args);

// A Go duration as skopeo's flags take it ("2s", "500ms", "1m30s", "1.5h";
// units ns us µs ms s m h; a bare "0" is zero). kInvalidInput naming `flag`.
oci::Result<std::chrono::milliseconds> ParseGoDuration(std::string_view flag,
                                                       std::string_view value);

}  // namespace mc::cmd
