#include "engine/progress.h"

namespace mc::engine {

std::shared_ptr<ProgressTask> Progress::Start(std::string stage, std::string item,
                                              uint64_t total) {
  auto t = std::make_shared<ProgressTask>(std::move(stage), std::move(item), total);
  std::lock_guard lock(mu_);
  tasks_.push_back(t);
  return t;
}

std::vector<std::shared_ptr<ProgressTask>> Progress::Snapshot() const {
  std::lock_guard lock(mu_);
  return tasks_;
}

}  // namespace mc::engine
