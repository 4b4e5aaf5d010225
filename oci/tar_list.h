// Reading the names in a layer tar (gzip, zstd or plain), for checks such as
// "does the base image have /bin/sh". libarchive detects the compression.
#pragma once

#include <functional>
#include <string>

#include "oci/error.h"
#include "oci/io.h"

namespace mc::oci {

struct TarListEntry {
  std::string name;  // as stored, without a leading "./" or "/"
  bool is_dir = false;
  bool is_symlink = false;
  std::string link_target;  // symlinks and hard links
};

// Calls `visit` for every entry of the (possibly compressed) tar stream.
// kInvalidInput when the stream is not a readable tar.
Result<void> ListTar(Reader& in, const std::function<void(const TarListEntry&)>& visit);

}  // namespace mc::oci
