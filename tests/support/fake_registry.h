// An in-memory model of a registry's blob-upload endpoints for unit tests,
// with distribution's or Quay's semantics (protocols.md 1.8) and faults:
//   distribution: Location carries `_state=<offset>`; a request whose state
//     offset differs from the stored size gets 404 BLOB_UPLOAD_INVALID and
//     cancels the session (registry/handlers/app.go); PATCH start must equal
//     the stored size (else 416); status Range is "0-<last index>".
//   quay: UUID-only URLs; PATCH start > count → 416, start < count skips the
//     overlap; status Range is "bytes=0-<count>" without Location.
// Used as a FakeTransport handler.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "oci/digest.h"
#include "tests/support/fake_transport.h"

namespace mc::testing {

class FakeRegistry {
 public:
  enum class Flavor { kDistribution, kQuay };
  explicit FakeRegistry(Flavor flavor) : flavor_(flavor) {}

  // Faults, counted over PATCH requests (1-based; 0 = never).
  int cut_patch = 0;  // this PATCH stores cut_keep bytes, then the connection resets
  size_t cut_keep = 0;
  int lose_patch_response = 0;  // this PATCH is stored whole, then the response is lost
  int fail_patch_503 = 0;       // this PATCH answers 503 + Retry-After: 0 without storing
  size_t max_patch = 0;         // PATCH bodies over this get 413 (0 = no limit)
  bool relative_locations = false;
  bool quay_range_without_prefix = false;  // status Range "0-<count>" (ambiguous)
  bool wrong_digest = false;               // closing PUT computes another digest

  FakeResponse Handle(const RecordedRequest& r);
  FakeTransport::Handler handler() {
    return [this](const RecordedRequest& r) { return Handle(r); };
  }

  std::map<std::string, std::string> blobs;    // digest → bytes
  std::map<std::string, std::string> uploads;  // uuid → bytes so far
  int patches = 0;

 private:
  std::string Location(const std::string& uuid) const;
  FakeResponse Post();
  FakeResponse Patch(const std::string& uuid, const RecordedRequest& r);
  FakeResponse Status(const std::string& uuid);
  FakeResponse Put(const std::string& uuid, const RecordedRequest& r);

  Flavor flavor_;
  int next_uuid_ = 1;
};

}  // namespace mc::testing
