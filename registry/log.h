// The library logger. Libraries log through it; it discards everything until
// cmd/ installs sinks (text or JSON on stderr). Secrets never reach it:
// callers redact URLs and headers first (see RedactUrl).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace mc::registry {

std::shared_ptr<spdlog::logger> Log();
void SetLogger(std::shared_ptr<spdlog::logger> logger);

// Drops userinfo and the query string of a URL ("https://u:p@h/x?sig=..." →
// "https://h/x?…"): signed storage URLs carry credentials in their query.
std::string RedactUrl(std::string_view url);

}  // namespace mc::registry
