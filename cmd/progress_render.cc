#include "cmd/progress_render.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

namespace mc::cmd {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

ProgressRenderer::ProgressRenderer(const engine::Progress& progress, std::string mode, bool json)
    : progress_(progress), json_(json), start_(Now()) {
  bool tty = ::isatty(STDERR_FILENO) != 0;
  if (mode == "none")
    enabled_ = false;
  else if (mode == "bar")
    bar_ = true;
  else if (mode == "lines")
    bar_ = false;
  else
    bar_ = tty;
  if (json_) bar_ = false;
  if (enabled_) thread_ = std::thread([this] { Loop(); });
}

ProgressRenderer::~ProgressRenderer() { Stop(); }

void ProgressRenderer::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_.exchange(true)) return;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (enabled_ && bar_) std::fputc('\n', stderr);
}

void ProgressRenderer::Loop() {
  const double interval = bar_ ? 0.2 : 5.0;
  double next = Now() + interval;
  std::unique_lock lock(mu_);
  while (!stop_.load()) {
    cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop_.load(); });
    if (stop_.load()) break;
    if (Now() >= next) {
      Render(false);
      next = Now() + interval;
    }
  }
}

void ProgressRenderer::Render(bool /*final_line*/) {
  // Aggregate by stage: tasks of one stage (e.g. parallel layer uploads) sum up.
  struct Agg {
    uint64_t done = 0, total = 0;
    int active = 0;
  };
  std::map<std::string, Agg> stages;
  for (const auto& t : progress_.Snapshot()) {
    Agg& a = stages[t->stage()];
    a.done += t->done();
    a.total += t->total();
    if (!t->finished()) ++a.active;
  }
  if (stages.empty()) return;
  double elapsed = std::max(Now() - start_, 1e-3);
  std::string line;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [stage, a] : stages) {
    double rate = static_cast<double>(a.done) / elapsed;
    if (json_) {
      j[stage] = {{"done", a.done}, {"total", a.total}, {"bytesPerSecond", rate}};
      continue;
    }
    if (!line.empty()) line += " | ";
    line += stage + " " + HumanBytes(static_cast<double>(a.done));
    if (a.total > 0) {
      int pct =
          static_cast<int>(100.0 * static_cast<double>(a.done) / static_cast<double>(a.total));
      line += "/" + HumanBytes(static_cast<double>(a.total)) + " (" + std::to_string(pct) + "%)";
      if (rate > 0 && a.done < a.total) {
        line += " ETA " +
                std::to_string(static_cast<int>(static_cast<double>(a.total - a.done) / rate)) +
                "s";
      }
    }
    line += " " + HumanBytes(rate) + "/s";
  }
  if (json_) {
    std::fprintf(stderr, "%s\n", nlohmann::json{{"progress", j}}.dump().c_str());
  } else if (bar_) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(stderr, "progress: %s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace mc::cmd
