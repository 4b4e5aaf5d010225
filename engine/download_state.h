// Resume state of `download` (internal to engine/download*.cc).
//
// manifest.json: {"version":1,"source":…,"commit":…,"bootId":…,"files":{path:{"size","oid"}}}
// <key>.json:    {"path","size","oid","segmentSize","done":[bytes per segment]}
// Both are written atomically (temp + rename) inside the state directory,
// opened beneath DIR (engine/beneath.h). Both are advisory: a file that is
// missing, not JSON, or of the wrong shape is ignored (with a warning naming
// it) and rewritten; its files are then fetched or rehashed again. Every
// field is read with checked accessors, so no JSON exception can come out of
// a bad file. One thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/beneath.h"
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

inline constexpr const char* kManifestName = "manifest.json";

// dir/manifest.json; a missing, unreadable or malformed one is an empty one
// (the files get re-verified), malformed ones with a warning.
Manifest LoadManifest(const DirFd& dir);
oci::Result<void> SaveManifest(const DirFd& dir, const Manifest& m);

struct PartState {
  std::string path;
  uint64_t size = 0;
  std::string oid;
  uint64_t segment_size = 0;
  std::vector<uint64_t> done;  // bytes done from the start of each segment
};

// dir/name; nullopt when missing, unreadable, malformed (with a warning) or
// for another file version.
std::optional<PartState> LoadPartState(const DirFd& dir, const std::string& name,
                                       const HfFile& file);
// Not synced: a hint (see download_state.cc).
oci::Result<void> SavePartState(const DirFd& dir, const std::string& name, const PartState& s);

// /proc/sys/kernel/random/boot_id, "" when unavailable.
std::string CurrentBootId();

// The oid a file is verified against: its LFS sha256, else its git blob sha1.
std::string FileOid(const HfFile& file);
// File name stem for a repo path inside .mc-download (hash of the path).
std::string StateKey(const std::string& repo_path);

}  // namespace mc::engine::download_internal
