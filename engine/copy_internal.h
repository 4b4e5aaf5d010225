// Pieces of the copy engine shared by copy.cc and copy_range.cc.
#pragma once

#include <memory>

#include "oci/store.h"

namespace mc::engine {

// kTransient and kNetwork: a new attempt may succeed.
bool IsRetryable(const oci::Error& e);
// 100 ms × 2^attempt, capped at 3.2 s.
void SleepBackoff(int attempt);

// One sequential stream of a whole blob that, when the stream breaks with a
// retryable error, continues with a ranged read from the byte it reached (up
// to `retry_times` times). Sources without ranges report the original error.
// One thread at a time.
class ResumingReader final : public oci::Reader {
 public:
  ResumingReader(oci::ImageSource& src, oci::Descriptor desc, int retry_times,
                 std::unique_ptr<oci::Reader> first);
  oci::Result<size_t> Read(std::span<std::byte> out) override;

 private:
  oci::ImageSource& src_;
  const oci::Descriptor desc_;
  const int retry_times_;
  std::unique_ptr<oci::Reader> r_;
  uint64_t pos_ = 0;
  int attempts_ = 0;
  oci::Error last_;
};

}  // namespace mc::engine
