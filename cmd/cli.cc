#include "cmd/cli.h"

#include <cctype>

namespace mc::cmd {

std::vector<std::pair<int, SetupFn>>& RegisteredCommands() {
  static std::vector<std::pair<int, SetupFn>> commands;
  return commands;
}

CommandRegistrar::CommandRegistrar(int order, SetupFn fn) {
  RegisteredCommands().emplace_back(order, fn);
}

int ExitCodeFor(oci::ErrorCode code) {
  using oci::ErrorCode;
  switch (code) {
    case ErrorCode::kInvalidInput:
      return 2;
    case ErrorCode::kConflict:
      return 2;
    case ErrorCode::kUnauthorized:
      return 3;
    case ErrorCode::kNotFound:
      return 4;
    case ErrorCode::kVerificationFailed:
      return 5;
    case ErrorCode::kNetwork:
    case ErrorCode::kTransient:
    case ErrorCode::kRangeNotSatisfiable:
      return 6;
    case ErrorCode::kCancelled:
      return 130;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 1;
  }
  return 1;
}

engine::RemoteSettings Remote(const RegistryFlags& f, std::string side, int verbose) {
  engine::RemoteSettings r;
  r.transport.tls.verify = f.tls_verify;
  r.transport.tls.cert_dir = f.cert_dir;
  r.transport.retry_times = f.retry_times;
  r.transport.trace = verbose >= 2;
  r.authfile = f.authfile;
  r.creds = f.creds;
  r.side = std::move(side);
  return r;
}

void AddRegistryFlags(CLI::App* cmd, RegistryFlags& flags, const std::string& prefix) {
  cmd->add_option("--" + prefix + "authfile", flags.authfile,
                  "path of the authentication file (containers auth.json format)");
  cmd->add_option("--" + prefix + "creds", flags.creds,
                  "USERNAME[:PASSWORD] for accessing the registry");
  cmd->add_option("--" + prefix + "tls-verify", flags.tls_verify,
                  "require HTTPS and verify certificates (default true)")
      ->default_str("true");
  cmd->add_option("--" + prefix + "cert-dir", flags.cert_dir,
                  "directory with ca.crt, client.cert and client.key for the registry");
  if (prefix.empty()) {
    InRange(cmd->add_option("--retry-times", flags.retry_times,
                            "number of times to retry a failed network operation")
                ->default_val(3),
            0, kMaxRetryTimes);
  }
}

oci::Result<uint64_t> ParseSize(std::string_view s) {
  auto bad = [&] {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     "invalid size \"" + std::string(s) +
                         "\": use a number with an optional "
                         "suffix K, M, G, T (powers of 1024) or KB, MB, GB, TB (powers of 1000)");
  };
  size_t i = 0;
  uint64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (n > (UINT64_MAX - 9) / 10) return bad();
    n = n * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0) return bad();
  std::string suffix;
  for (; i < s.size(); ++i)
    suffix += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
  uint64_t mult = 1;
  if (suffix.empty() || suffix == "B")
    mult = 1;
  else if (suffix == "K" || suffix == "KI" || suffix == "KIB")
    mult = 1ull << 10;
  else if (suffix == "M" || suffix == "MI" || suffix == "MIB")
    mult = 1ull << 20;
  else if (suffix == "G" || suffix == "GI" || suffix == "GIB")
    mult = 1ull << 30;
  else if (suffix == "T" || suffix == "TI" || suffix == "TIB")
    mult = 1ull << 40;
  else if (suffix == "KB")
    mult = 1000ull;
  else if (suffix == "MB")
    mult = 1000ull * 1000;
  else if (suffix == "GB")
    mult = 1000ull * 1000 * 1000;
  else if (suffix == "TB")
    mult = 1000ull * 1000 * 1000 * 1000;
  else
    return bad();
  if (n != 0 && mult > UINT64_MAX / n) return bad();
  return n * mult;
}

CLI::Option* InRange(CLI::Option* option, int min, int max) {
  return option->check(CLI::Range(min, max));
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kSuffix[] = {"", "K", "M", "G", "T"};
  int i = 0;
  while (i < 4 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++i;
  }
  return std::to_string(bytes) + kSuffix[i];
}

oci::Result<uint64_t> ParseSizeFlag(std::string_view flag, std::string_view value, uint64_t min,
                                    uint64_t max) {
  auto parsed = ParseSize(value);
  if (!parsed) return oci::Wrap(parsed.error(), std::string(flag));
  if (*parsed < min || *parsed > max) {
    std::string range = max == UINT64_MAX
                            ? "at least " + FormatSize(min)
                            : "between " + FormatSize(min) + " and " + FormatSize(max);
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     std::string(flag) + " must be " + range + ", got " + std::string(value));
  }
  return *parsed;
}

}  // namespace mc::cmd
