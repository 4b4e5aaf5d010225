// Resume slots on disk: where an interrupted blob upload keeps what the next
// run needs (oci/store.h ResumeSlot), one small JSON file per blob under
// `<cache-dir>/uploads/`.
//
// The files are advisory: a missing, truncated or foreign file reads as
// "nothing saved" (the writer validates what it loads), and the registry is
// asked for the real state before anything is trusted. A slot is cleared when
// its blob is committed or abandoned; SIGINT/SIGTERM and kill -9 leave it for
// the next run. Files are written atomically (temp + rename), mode 0600: the
// upload URL may carry a registry's session token.
//
// Thread guarantee: one slot per blob, used by one writer at a time; slots
// for different blobs may be used concurrently.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "engine/beneath.h"
#include "oci/store.h"

namespace mc::engine {

// `<cache_dir>/uploads/<name>`. The cache directory itself may be reached
// through links (the user chose it); below it nothing is followed
// (beneath.h): an `uploads` that is a symlink, or a link at the file, is
// never read through or written through (a warning; the slot stays empty).
class FileResumeSlot final : public oci::ResumeSlot {
 public:
  FileResumeSlot(StateDir cache_dir, std::string name)
      : cache_dir_(std::move(cache_dir)), name_(std::move(name)) {}
  std::optional<std::string> Load() override;
  void Save(std::string_view state) override;
  void Clear() override;
  std::filesystem::path path() const { return cache_dir_.path() / kDir / name_; }

  static constexpr const char* kDir = "uploads";

 private:
  StateDir cache_dir_;
  std::string name_;
};

// `<cache_dir>/uploads/<name>.json`; null when cache_dir is empty (no resume).
// `name` is made file-name safe (anything but [A-Za-z0-9._-] becomes '_').
std::shared_ptr<oci::ResumeSlot> UploadResumeSlot(const StateDir& cache_dir, std::string_view name);

}  // namespace mc::engine
