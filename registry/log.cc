#include "registry/log.h"

#include <atomic>
#include <mutex>

#include <spdlog/sinks/null_sink.h>

namespace mc::registry {
namespace {

std::mutex g_mu;
std::shared_ptr<spdlog::logger> g_logger;

}  // namespace

std::shared_ptr<spdlog::logger> Log() {
  std::lock_guard lock(g_mu);
  if (!g_logger) {
    g_logger =
        std::make_shared<spdlog::logger>("mc", std::make_shared<spdlog::sinks::null_sink_mt>());
  }
  return g_logger;
}

void SetLogger(std::shared_ptr<spdlog::logger> logger) {
  std::lock_guard lock(g_mu);
  g_logger = std::move(logger);
}

std::string RedactUrl(std::string_view url) {
  std::string out(url);
  size_t scheme = out.find("://");
  size_t host_start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t path_start = out.find('/', host_start);
  size_t at = out.find('@', host_start);
  if (at != std::string::npos && (path_start == std::string::npos || at < path_start)) {
    out.erase(host_start, at + 1 - host_start);
  }
  size_t q = out.find('?');
  if (q != std::string::npos) out = out.substr(0, q) + "?…";
  return out;
}

}  // namespace mc::registry
