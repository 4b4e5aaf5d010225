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
#include <string_view>

#include "oci/store.h"

namespace mc::engine {

class FileResumeSlot final : public oci::ResumeSlot {
 public:
  explicit FileResumeSlot(std::filesystem::path path) : path_(std::move(path)) {}
  std::optional<std::string> Load() override;
  void Save(std::string_view state) override;
  void Clear() override;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// `<cache_dir>/uploads/<name>.json`; null when cache_dir is empty (no resume).
// `name` is made file-name safe (anything but [A-Za-z0-9._-] becomes '_').
std::shared_ptr<oci::ResumeSlot> UploadResumeSlot(const std::filesystem::path& cache_dir,
                                                  std::string_view name);

}  // namespace mc::engine
