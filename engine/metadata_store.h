// publish-metadata.json: the one record of what a pipeline run did (design.md
// "publish-metadata.json"), shared by tasks that run as different UIDs.
//
// Every writer goes through MetadataStore::Update, which
//  - creates the file's directory with mode 2775 (setgid, group-writable)
//    whatever the umask, and with group --group when one is given; missing
//    parents above it are created with the default mode (the umask applies:
//    in a pipeline they are the workspace, which exists already);
//  - takes an exclusive flock on "<dir>/.<file name>.lock" (0664, same group,
//    left in place: it is the rendezvous of every writer, not a temp file);
//  - reads the document, lets the caller change it, and writes it back to a
//    temp file in the same directory (mode 0664, group = --group or the
//    directory's group, fsync) renamed over the old one, so readers never see
//    half a file and fields other writers own are kept;
//  - refuses, with kInvalidInput and the file untouched, a document that is
//    not a JSON object or has a schemaVersion newer than kMetadataSchemaVersion.
// No temp file survives any error path.
//
// Thread guarantee: safe for concurrent use by threads and processes (each
// Update opens its own lock descriptor, and flock excludes per descriptor).
// Calls block while another writer holds the lock.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "oci/error.h"

namespace mc::engine {

inline constexpr int kMetadataSchemaVersion = 1;

// The file name in the pipeline's workspace, relative to the workspace root.
inline constexpr std::string_view kDefaultMetadataPath = ".pipeline-metadata/publish-metadata.json";

class MetadataStore {
 public:
  using Mutator = std::function<oci::Result<void>(nlohmann::json& doc)>;

  // Names the file; touches nothing on disk. `group`: the GID given to the
  // directory (when created here) and to the file; default: the directory's
  // own group. kInvalidInput for an empty path.
  static oci::Result<MetadataStore> Open(std::filesystem::path file,
                                         std::optional<gid_t> group = std::nullopt);

  const std::filesystem::path& path() const { return file_; }

  // Reads the current document without locking (writes are atomic renames).
  // kNotFound when the file does not exist; kInvalidInput when it is not a
  // JSON object or its schemaVersion is newer than ours; kIo otherwise.
  oci::Result<nlohmann::json> Get() const;

  // Locked read-modify-write. A missing file starts as {"schemaVersion": 1}.
  // When `mutate` fails, nothing is written and its error is returned.
  // Returns the document as written. Errors: kInvalidInput (bad document),
  // kIo (directory, lock, write, or the group cannot be set).
  oci::Result<nlohmann::json> Update(const Mutator& mutate);

  // Conveniences over Update. SetSection replaces doc[key]; MergeSection
  // merges an object into doc[key] (keys not in `value` are kept); Append
  // adds `value` to the array doc[key] (created if missing; kInvalidInput if
  // doc[key] exists and is not an array). `key` is a dotted path (see SetPath).
  oci::Result<void> SetSection(std::string_view key, nlohmann::json value);
  oci::Result<void> MergeSection(std::string_view key, const nlohmann::json& value);
  oci::Result<void> Append(std::string_view key, nlohmann::json value);

 private:
  MetadataStore(std::filesystem::path file, std::optional<gid_t> group)
      : file_(std::move(file)), group_(group) {}

  std::filesystem::path file_;
  std::optional<gid_t> group_;
};

// Dotted paths into a document: "image.digest", "mirrors.0.digest" (a
// number segment indexes an array; GetPath also takes "-1" for the last
// element). Keys that contain '.' cannot be named.
//
// GetPath: nullptr when any segment is absent.
const nlohmann::json* GetPath(const nlohmann::json& doc, std::string_view key);
// SetPath creates missing objects on the way; kInvalidInput when a segment
// runs into a non-object (or an array index out of range) or the key is empty.
oci::Result<void> SetPath(nlohmann::json& doc, std::string_view key, nlohmann::json value);
// Appends to the array at `key`, creating it when missing.
oci::Result<void> AppendPath(nlohmann::json& doc, std::string_view key, nlohmann::json value);

// "VALUE" as the metadata command reads it: JSON when it parses as JSON,
// otherwise the string itself ("1.0" → 1.0, "true" → true, "abc" → "abc").
nlohmann::json ParseLooseValue(std::string_view value);

// Current UTC time as RFC 3339 ("2026-11-28T20:34:10Z"), for *At fields.
std::string NowRfc3339();

}  // namespace mc::engine
