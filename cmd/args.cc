#include "cmd/args.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <utility>

namespace mc::cmd {
namespace {

CLI::App* FindSubcommand(CLI::App* app, const std::string& name) {
  for (CLI::App* s : app->get_subcommands([](CLI::App*) { return true; })) {
    if (s->check_name(name)) return s;
  }
  return nullptr;
}

// Innermost level first: a flag after a subcommand is its own, or falls
// through to the levels above (main.cc sets app.fallthrough()).
const CLI::Option* FindOption(const std::vector<CLI::App*>& chain, const std::string& name) {
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (const CLI::Option* o = (*it)->get_option_no_throw(name)) return o;
  }
  return nullptr;
}

bool TakesValue(const CLI::Option* o) { return o->get_expected_min() > 0; }

bool IsHoisted(std::string_view name) {
  return std::ranges::find(kHoistedFlags, name) != std::end(kHoistedFlags);
}

std::unexpected<oci::Error> Unknown(const std::string& name) {
  return oci::Fail(oci::ErrorCode::kInvalidInput,
                   "unknown flag " + name + " (run 'mc-engine --help' for usage)");
}

}  // namespace

oci::Result<std::vector<std::string>> PrepareArgs(CLI::App& app, std::vector<std::string> args) {
  std::vector<std::string> out;
  if (args.empty()) return out;
  out.push_back(args[0]);
  std::vector<CLI::App*> chain{&app};
  // Flags (and their separate values) to move after the subcommand name.
  std::vector<std::string> hoisted;
  std::vector<std::string> hoisted_names;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (a.size() > 2 && a.starts_with("--")) {
      std::string name = a.substr(0, a.find('='));
      const CLI::Option* o = FindOption(chain, name);
      if (o == nullptr) return Unknown(name);
      bool hoist = chain.size() == 1 && IsHoisted(name);
      std::vector<std::string>& to = hoist ? hoisted : out;
      if (hoist) hoisted_names.push_back(name);
      to.push_back(a);
      if (a.find('=') == std::string::npos && TakesValue(o) && i + 1 < args.size()) {
        to.push_back(args[++i]);
      }
      continue;
    }
    if (a.size() > 1 && a[0] == '-' && !std::isdigit(static_cast<unsigned char>(a[1]))) {
      // A cluster of short flags (-vv); one taking a value ends it (-jN, -j N).
      out.push_back(a);
      for (size_t j = 1; j < a.size(); ++j) {
        std::string name{'-', a[j]};
        const CLI::Option* o = FindOption(chain, name);
        if (o == nullptr) return Unknown(name);
        if (TakesValue(o)) {
          if (j + 1 == a.size() && i + 1 < args.size()) out.push_back(args[++i]);
          break;
        }
      }
      continue;
    }
    out.push_back(a);
    if (CLI::App* sub = FindSubcommand(chain.back(), a)) {
      chain.push_back(sub);
      if (chain.size() == 2) {
        for (const std::string& name : hoisted_names) {
          if (sub->get_option_no_throw(name) == nullptr) {
            return oci::Fail(oci::ErrorCode::kInvalidInput,
                             name + " does not apply to '" + sub->get_name() + "'");
          }
        }
        out.insert(out.end(), hoisted.begin(), hoisted.end());
        hoisted.clear();
      }
    }
  }
  // No subcommand: leave them for CLI11 to report what is missing.
  out.insert(out.end(), hoisted.begin(), hoisted.end());
  return out;
}

oci::Result<std::chrono::milliseconds> ParseGoDuration(std::string_view flag,
                                                       std::string_view value) {
  auto bad = [&] {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     std::string(flag) + ": invalid duration \"" + std::string(value) +
                         "\": use a number with a unit ns, us, ms, s, m or h, as in 2s, 500ms "
                         "or 1m30s");
  };
  if (value == "0") return std::chrono::milliseconds(0);
  if (value.empty()) return bad();
  double total_ns = 0;
  size_t i = 0;
  while (i < value.size()) {
    size_t start = i;
    while (i < value.size() &&
           (std::isdigit(static_cast<unsigned char>(value[i])) || value[i] == '.')) {
      ++i;
    }
    if (start == i) return bad();
    double n = 0;
    auto [end, ec] = std::from_chars(value.data() + start, value.data() + i, n);
    if (ec != std::errc() || end != value.data() + i) return bad();
    size_t unit_start = i;
    while (i < value.size() && !std::isdigit(static_cast<unsigned char>(value[i])) &&
           value[i] != '.') {
      ++i;
    }
    std::string_view unit = value.substr(unit_start, i - unit_start);
    double mult = 0;
    if (unit == "ns") {
      mult = 1;
    } else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") {
      mult = 1e3;
    } else if (unit == "ms") {
      mult = 1e6;
    } else if (unit == "s") {
      mult = 1e9;
    } else if (unit == "m") {
      mult = 60e9;
    } else if (unit == "h") {
      mult = 3600e9;
    } else {
      return bad();
    }
    total_ns += n * mult;
  }
  if (!std::isfinite(total_ns) || total_ns > 3600e9) {
    return oci::Fail(oci::ErrorCode::kInvalidInput,
                     std::string(flag) + " must be at most 1h, got " + std::string(value));
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ns / 1e6));
}

}  // namespace mc::cmd
