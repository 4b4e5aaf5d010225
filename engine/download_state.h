// Resume state of `download` (internal to engine/download*.cc).
//
// manifest.json: {"version":1,"source":…,"commit":…,"bootId":…,"files":{path:{"size","oid"}}}
// <key>.json:    {"path","size","oid","segmentSize","done":[bytes per segment]}
// Both are written atomically (temp + fsync + rename). One thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/hf_hub.h"
#include "oci/error.h"

namespace mc::engine::download_internal {

struct VerifiedFile {
  uint64_t size = 0;
  std::string oid;  // sha256 (LFS) or git sha1; what the file was verified against
};

struct Manifest {
  std::string source;
  std::string commit;
  // The kernel boot the entries were verified in. Verified files are renamed
  // into place without fsync: only a kernel crash or reboot can lose page
  // cache, so entries from another boot are re-hashed before they are
  // trusted (see download.cc).
  std::string boot_id;
  std::map<std::string, VerifiedFile> files;
};

// A missing or unreadable manifest is an empty one (the files get re-fetched).
Manifest LoadManifest(const std::filesystem::path& path);
oci::Result<void> SaveManifest(const std::filesystem::path& path, const Manifest& m);

struct PartState {
  std::string path;
  uint64_t size = 0;
  std::string oid;
  uint64_t segment_size = 0;
  std::vector<uint64_t> done;  // bytes done from the start of each segment
};

// nullopt when missing, unreadable, or for another file version.
std::optional<PartState> LoadPartState(const std::filesystem::path& path, const HfFile& file);
oci::Result<void> SavePartState(const std::filesystem::path& path, const PartState& s);

// /proc/sys/kernel/random/boot_id, "" when unavailable.
std::string CurrentBootId();

// The oid a file is verified against: its LFS sha256, else its git blob sha1.
std::string FileOid(const HfFile& file);
// File name stem for a repo path inside .mc-download (hash of the path).
std::string StateKey(const std::string& repo_path);

}  // namespace mc::engine::download_internal
