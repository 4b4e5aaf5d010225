// Resume slots on disk (resume_slot.h). Failures to save are logged, not
// returned: losing a slot costs a re-upload on the next run, never this run.
#include "engine/resume_slot.h"

#include <unistd.h>

#include <system_error>

#include "engine/beneath.h"
#include "oci/io.h"
#include "registry/log.h"

namespace mc::engine {

std::optional<std::string> FileResumeSlot::Load() {
  auto root = cache_dir_.Open(/*create=*/false);
  if (!root) {
    if (root.error().code != oci::ErrorCode::kNotFound) {
      registry::Log()->warn("ignoring upload state {}: {}", path().string(), root.error().message);
    }
    return std::nullopt;
  }
  auto dir = OpenBeneath(*root, kDir, /*create=*/false);
  oci::Result<std::string> text =
      dir ? ReadFileAt(*dir, name_, 64 << 10) : std::unexpected(dir.error());
  if (!text) {
    if (text.error().code != oci::ErrorCode::kNotFound) {
      registry::Log()->warn("ignoring upload state {}: {}", path().string(), text.error().message);
    }
    return std::nullopt;
  }
  return std::move(*text);
}

void FileResumeSlot::Save(std::string_view state) {
  auto root = cache_dir_.Open(/*create=*/true);
  auto dir = root ? OpenBeneath(*root, kDir, /*create=*/true) : std::unexpected(root.error());
  auto r = dir ? WriteFileAtomicAt(*dir, name_, state, /*sync=*/true, 0600)
               : oci::Result<void>(std::unexpected(dir.error()));
  if (!r) {
    registry::Log()->warn("cannot save upload state {}: {}", path().string(), r.error().message);
  }
}

void FileResumeSlot::Clear() {
  auto root = cache_dir_.Open(/*create=*/false);
  if (!root) return;
  auto dir = OpenBeneath(*root, kDir, /*create=*/false);
  if (dir) ::unlinkat(dir->get(), name_.c_str(), 0);  // a link there is removed, not followed
}

std::shared_ptr<oci::ResumeSlot> UploadResumeSlot(const StateDir& cache_dir,
                                                  std::string_view name) {
  if (cache_dir.root.empty()) return nullptr;
  std::string safe(name);
  for (char& c : safe) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return std::make_shared<FileResumeSlot>(cache_dir, safe + ".json");
}

}  // namespace mc::engine
