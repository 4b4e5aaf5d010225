// Renders engine::Progress on stderr: a live bar on a TTY, a line every few
// seconds otherwise (Tekton logs), or JSON objects with --log-format json.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "engine/progress.h"

namespace mc::cmd {

class ProgressRenderer {
 public:
  // mode: auto|bar|lines|none; json: emit JSON lines instead of text.
  ProgressRenderer(const engine::Progress& progress, std::string mode, bool json);
  ~ProgressRenderer();  // stops the thread and prints a final state
  void Stop();

 private:
  void Loop();
  void Render(bool final_line);

  const engine::Progress& progress_;
  bool bar_ = false;
  bool json_ = false;
  bool enabled_ = true;
  std::atomic<bool> stop_{false};
  std::mutex mu_;               // with cv_: Stop() wakes the loop at once
  std::condition_variable cv_;  // (a short command must not wait for a tick)
  std::thread thread_;
  double start_ = 0;
};

std::string HumanBytes(double bytes);

}  // namespace mc::cmd
