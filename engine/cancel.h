// Process-wide cancellation: SIGINT/SIGTERM set the flag (cmd/ installs the
// handlers); long loops in engine/ poll it and stop with kCancelled, keeping
// their resume state.
#pragma once

#include <atomic>

#include "oci/error.h"

namespace mc::engine {

inline std::atomic<bool>& CancelFlag() {
  static std::atomic<bool> flag{false};
  return flag;
}
inline bool Cancelled() { return CancelFlag().load(std::memory_order_relaxed); }
inline oci::Result<void> CheckCancelled() {
  if (Cancelled()) return oci::Fail(oci::ErrorCode::kCancelled, "interrupted");
  return {};
}

}  // namespace mc::engine
