// Resume slots on disk (resume_slot.h). Failures to save are logged, not
// returned: losing a slot costs a re-upload on the next run, never this run.
#include "engine/resume_slot.h"

#include <system_error>

#include "oci/io.h"
#include "registry/log.h"

namespace mc::engine {

std::optional<std::string> FileResumeSlot::Load() {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return std::nullopt;
  auto text = oci::ReadFileToString(path_, 64 << 10);
  if (!text) {
    registry::Log()->warn("ignoring upload state {}: {}", path_.string(), text.error().message);
    return std::nullopt;
  }
  return std::move(*text);
}

void FileResumeSlot::Save(std::string_view state) {
  std::error_code ec;
  std::filesystem::create_directories(path_.parent_path(), ec);
  if (auto r = oci::WriteFileAtomic(path_, state, 0600); !r) {
    registry::Log()->warn("cannot save upload state {}: {}", path_.string(), r.error().message);
  }
}

void FileResumeSlot::Clear() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

std::shared_ptr<oci::ResumeSlot> UploadResumeSlot(const std::filesystem::path& cache_dir,
                                                  std::string_view name) {
  if (cache_dir.empty()) return nullptr;
  std::string safe(name);
  for (char& c : safe) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return std::make_shared<FileResumeSlot>(cache_dir / "uploads" / (safe + ".json"));
}

}  // namespace mc::engine
