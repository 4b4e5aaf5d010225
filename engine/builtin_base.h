// The built-in base image: what `mc-engine build` puts under the model by
// default, so that KServe's modelcar containers (`sh -c 'mkdir -p …; ln -s …;
// sleep infinity'` and `[ -d /models ] && [ "$(ls -A /models)" ]`) can start.
//
// One layer, written here from a static busybox found on the build machine
// (Debian's busybox-static installs /bin/busybox), nothing pulled:
//
//   bin/            0755
//   bin/busybox     0755  the binary, as it is
//   bin/[ bin/cat bin/echo bin/ln bin/ls bin/mkdir bin/sh bin/sleep bin/test
//                   symlinks to "busybox" (busybox picks the applet by argv[0])
//   etc/            0755
//   etc/group       0644  root (0) and the default user's group
//   etc/passwd      0644  root (0) and the default user (kDefaultUser, group 0)
//   tmp/            1777
//
// Deterministic: uid/gid 0, mtime = the build's (SOURCE_DATE_EPOCH or 0), fixed
// modes, sorted, so the same busybox file and options give the same layer,
// config and manifest digests everywhere. The config sets a PATH Env and
// nothing else (no User: the build's default applies; no Entrypoint, no Cmd:
// KServe passes the command).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "oci/compress.h"
#include "oci/image.h"
#include "oci/store.h"
#include "oci/tar.h"

namespace mc::engine {

// What `--base` names the built-in base with (and its default).
inline constexpr std::string_view kBuiltinBaseName = "builtin";
// Where the busybox is looked for when --builtin-busybox is not given, in order.
inline constexpr std::array<std::string_view, 3> kBusyboxPaths = {
    "/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox"};
// The applets linked under bin/ (KServe's commands, plus `test`, the other
// spelling of `[`). Sorted by TarNameLess.
inline constexpr std::array<std::string_view, 9> kBuiltinTools = {
    "[", "cat", "echo", "ln", "ls", "mkdir", "sh", "sleep", "test"};
// config.Env of the built-in base.
inline constexpr std::string_view kBuiltinPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// config.User of an image whose base sets none (numeric, non-root, so that
// Kubernetes' runAsNonRoot can verify it). /etc/passwd of the built-in base
// names it, with group 0 (OpenShift's arbitrary UIDs run in group 0).
inline constexpr std::string_view kDefaultUser = "1001";

// What the busybox file is.
struct BusyboxInfo {
  oci::Platform platform;  // from the ELF header (os linux)
  std::string version;     // "1.35.0", "" when the binary does not say
};

// Checks that `bytes` is a statically linked ELF executable of BusyBox and
// tells which platform it is for. kInvalidInput naming `path` when it is not
// ELF, is dynamically linked (it would not run in an image without its
// libraries), is not BusyBox, or is for a machine without an OCI name.
oci::Result<BusyboxInfo> InspectBusybox(std::string_view bytes, const std::string& path);

// The layer's entries for a busybox of `busybox_size` bytes, sorted; the two
// /etc files and the busybox have no `source` (BuiltinBase streams them).
std::vector<oci::TarEntry> BuiltinBaseEntries(uint64_t busybox_size);
std::string BuiltinPasswd();
std::string BuiltinGroup();

struct BuiltinBaseOptions {
  // The busybox to use; "" = the first of kBusyboxPaths that exists.
  std::string busybox;
  // The platform asked for: the busybox must be for it.
  oci::Platform platform;
  // The layer is compressed like the model's.
  oci::Compression compression = oci::Compression::kGzip;
  int compression_level = -1;
  int64_t mtime = 0;
};

// The built-in base as an image source holding one manifest (GetManifest of
// any reference), its config and its layer, all in memory (a busybox is a few
// MiB). Errors (one line, saying how to fix it):
//  - kNotFound: no busybox at the given path or at any of kBusyboxPaths
//    (install busybox-static, give --builtin-busybox PATH, or pick another --base);
//  - kInvalidInput: InspectBusybox refuses the file, or it is for another
//    platform than options.platform.
oci::Result<std::unique_ptr<oci::ImageSource>> OpenBuiltinBase(const BuiltinBaseOptions& options);

}  // namespace mc::engine
