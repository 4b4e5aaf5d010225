// The built-in base image (builtin_base.h): a static busybox and its links,
// made into a layer by the same pipeline as the model's, then a config and a
// manifest, all held in memory and served as an ImageSource, so that the build
// treats it as any other base (contract check, copy to the destination).
#include "engine/builtin_base.h"

#include <filesystem>
#include <map>
#include <mutex>

#include "engine/build.h"
#include "oci/io.h"
#include "oci/media_types.h"

namespace mc::engine {
namespace {

using nlohmann::json;
using oci::ErrorCode;
using oci::Result;

// A busybox is 1-3 MiB; anything far larger is not one.
constexpr size_t kMaxBusyboxSize = 64 << 20;

uint64_t ReadUint(std::string_view b, size_t offset, size_t width, bool little_endian) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) {
    uint64_t byte = static_cast<unsigned char>(b[offset + (little_endian ? i : width - 1 - i)]);
    v |= byte << (8 * i);
  }
  return v;
}

// ELF e_machine → OCI architecture (the GOARCH names).
std::string Architecture(uint64_t machine, bool is64, bool little_endian) {
  switch (machine) {
    case 62:  // EM_X86_64
      return is64 ? "amd64" : "";
    case 3:  // EM_386
      return "386";
    case 183:  // EM_AARCH64
      return is64 ? "arm64" : "";
    case 40:  // EM_ARM
      return "arm";
    case 21:  // EM_PPC64
      return is64 && little_endian ? "ppc64le" : "";
    case 22:  // EM_S390
      return is64 ? "s390x" : "";
    case 243:  // EM_RISCV
      return is64 ? "riscv64" : "";
    default:
      return "";
  }
}

std::string BusyboxVersion(std::string_view bytes) {
  constexpr std::string_view kMark = "BusyBox v";
  size_t at = bytes.find(kMark);
  if (at == std::string_view::npos) return "";
  size_t start = at + kMark.size();
  size_t end = start;
  while (end < bytes.size() && end - start < 32 &&
         ((bytes[end] >= '0' && bytes[end] <= '9') || bytes[end] == '.')) {
    ++end;
  }
  return std::string(bytes.substr(start, end - start));
}

// Holds a built image and serves it.
class BuiltinSource final : public oci::ImageSource {
 public:
  BuiltinSource(oci::RawManifest manifest, std::map<oci::Digest, std::string> blobs)
      : manifest_(std::move(manifest)), blobs_(std::move(blobs)) {}

  Result<oci::RawManifest> GetManifest(const std::string& tag_or_digest) override {
    if (!tag_or_digest.empty() && tag_or_digest.starts_with("sha256:") &&
        tag_or_digest != manifest_.digest.String()) {
      return oci::Fail(ErrorCode::kNotFound, "the built-in base has no manifest " + tag_or_digest);
    }
    return manifest_;
  }

  Result<std::unique_ptr<oci::Reader>> OpenBlob(const oci::Descriptor& desc) override {
    MC_ASSIGN_OR_RETURN(const std::string* blob, Find(desc));
    return std::make_unique<oci::SpanReader>(oci::AsBytes(*blob));
  }

  Result<std::unique_ptr<oci::Reader>> OpenBlobRange(const oci::Descriptor& desc, uint64_t offset,
                                                     uint64_t length) override {
    MC_ASSIGN_OR_RETURN(const std::string* blob, Find(desc));
    if (offset > blob->size() || length > blob->size() - offset) {
      return oci::Fail(ErrorCode::kRangeNotSatisfiable,
                       "range beyond the end of built-in blob " + desc.digest.Short());
    }
    return std::make_unique<oci::SpanReader>(oci::AsBytes(*blob).subspan(offset, length));
  }

  std::string Describe() const override { return "the built-in base"; }

 private:
  Result<const std::string*> Find(const oci::Descriptor& desc) const {
    auto it = blobs_.find(desc.digest);
    if (it == blobs_.end()) {
      return oci::Fail(ErrorCode::kNotFound,
                       "the built-in base has no blob " + desc.digest.Short());
    }
    return &it->second;
  }

  const oci::RawManifest manifest_;
  const std::map<oci::Digest, std::string> blobs_;  // never changed after construction
};

// Collects one blob in memory.
class MemorySink final : public oci::BlobSink {
 public:
  Result<bool> Exists(const oci::Digest&) override { return false; }
  Result<std::unique_ptr<oci::BlobWriter>> Begin(const oci::BlobHint&) override {
    return std::make_unique<Writer>(this);
  }
  std::string Take() {
    std::lock_guard lock(mu_);
    return std::move(blob_);
  }

 private:
  class Writer final : public oci::BlobWriter {
   public:
    explicit Writer(MemorySink* sink) : sink_(sink) {}
    Result<void> Write(std::span<const std::byte> data) override {
      bytes_.append(oci::AsString(data));
      return {};
    }
    Result<void> Commit(const oci::Digest& digest, uint64_t size) override {
      if (size != bytes_.size() || oci::Digest::Of(bytes_) != digest) {
        return oci::Fail(ErrorCode::kInternal, "the built-in base layer does not match its digest");
      }
      std::lock_guard lock(sink_->mu_);
      sink_->blob_ = std::move(bytes_);
      return {};
    }
    void Abort() override { bytes_.clear(); }

   private:
    MemorySink* sink_;
    std::string bytes_;
  };

  std::mutex mu_;
  std::string blob_;  // guarded by mu_
};

Result<std::string> FindBusybox(const std::string& given) {
  if (!given.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(given, ec)) {
      return oci::Fail(ErrorCode::kNotFound,
                       "--builtin-busybox " + given +
                           ": no such file; give the path of a static busybox (Debian/Ubuntu: "
                           "apt-get install busybox-static, then /bin/busybox)");
    }
    return given;
  }
  std::string tried;
  for (std::string_view p : kBusyboxPaths) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(p, ec)) return std::string(p);
    tried += (tried.empty() ? "" : ", ") + std::string(p);
  }
  return oci::Fail(ErrorCode::kNotFound,
                   "the built-in base needs a static busybox and there is none at " + tried +
                       ": install one (Debian/Ubuntu: apt-get install busybox-static), give its "
                       "path with --builtin-busybox PATH, or choose another base (--base "
                       "docker://registry.access.redhat.com/ubi9/ubi-micro, or --base scratch)");
}

}  // namespace

Result<BusyboxInfo> InspectBusybox(std::string_view b, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return oci::Fail(ErrorCode::kInvalidInput,
                     "the built-in base's busybox " + path + " " + why +
                         "; give a static busybox with --builtin-busybox PATH (Debian/Ubuntu: "
                         "apt-get install busybox-static) or choose another --base");
  };
  if (b.size() < 64 || !b.starts_with("\x7f"
                                      "ELF")) {
    return bad("is not an ELF executable");
  }
  const bool is64 = b[4] == 2;
  const bool le = b[5] == 1;
  if ((b[4] != 1 && b[4] != 2) || (b[5] != 1 && b[5] != 2)) return bad("has a bad ELF header");
  const uint64_t type = ReadUint(b, 16, 2, le);
  const uint64_t machine = ReadUint(b, 18, 2, le);
  const uint64_t phoff = is64 ? ReadUint(b, 32, 8, le) : ReadUint(b, 28, 4, le);
  const uint64_t phentsize = ReadUint(b, is64 ? 54 : 42, 2, le);
  const uint64_t phnum = ReadUint(b, is64 ? 56 : 44, 2, le);
  if (type != 2 && type != 3) return bad("is not an ELF executable");  // ET_EXEC, ET_DYN
  if (phentsize < 4 || phnum == 0 || phoff >= b.size() || phnum > (b.size() - phoff) / phentsize) {
    return bad("has a bad ELF program header table");
  }
  for (uint64_t i = 0; i < phnum; ++i) {
    if (ReadUint(b, phoff + i * phentsize, 4, le) == 3) {  // PT_INTERP
      return bad("is dynamically linked (it needs a loader and libraries the image does not have)");
    }
  }
  BusyboxInfo info;
  info.platform.os = "linux";
  info.platform.architecture = Architecture(machine, is64, le);
  if (info.platform.architecture.empty()) {
    return bad("is for ELF machine " + std::to_string(machine) +
               ", which has no OCI architecture name here");
  }
  if (b.find("BusyBox v") == std::string_view::npos) return bad("is not BusyBox");
  info.version = BusyboxVersion(b);
  return info;
}

std::vector<oci::TarEntry> BuiltinBaseEntries(uint64_t busybox_size) {
  using Type = oci::TarEntry::Type;
  std::vector<oci::TarEntry> e;
  auto dir = [&](std::string name, uint32_t mode) {
    e.push_back(oci::TarEntry{Type::kDirectory, std::move(name), {}, 0, mode, {}});
  };
  auto file = [&](std::string name, uint64_t size, uint32_t mode) {
    e.push_back(oci::TarEntry{Type::kFile, std::move(name), {}, size, mode, {}});
  };
  dir("bin", 0755);
  file("bin/busybox", busybox_size, 0755);
  for (std::string_view tool : kBuiltinTools) {
    e.push_back(oci::TarEntry{Type::kSymlink, "bin/" + std::string(tool), {}, 0, 0777, "busybox"});
  }
  dir("etc", 0755);
  file("etc/group", BuiltinGroup().size(), 0644);
  file("etc/passwd", BuiltinPasswd().size(), 0644);
  dir("tmp", 01777);
  oci::SortTarEntries(e);
  return e;
}

std::string BuiltinPasswd() {
  return "root:x:0:0:root:/root:/bin/sh\n"
         "modelcar:x:" +
         std::string(kDefaultUser) + ":0:modelcar:/tmp:/bin/sh\n";
}

std::string BuiltinGroup() {
  return "root:x:0:\n"
         "modelcar:x:" +
         std::string(kDefaultUser) + ":\n";
}

Result<std::unique_ptr<oci::ImageSource>> OpenBuiltinBase(const BuiltinBaseOptions& o) {
  MC_ASSIGN_OR_RETURN(std::string path, FindBusybox(o.busybox));
  auto read = oci::ReadFileToString(path, kMaxBusyboxSize);
  if (!read) {
    return std::unexpected(read.error().Wrap("reading the built-in base's busybox " + path));
  }
  const std::string busybox = std::move(*read);
  MC_ASSIGN_OR_RETURN(BusyboxInfo info, InspectBusybox(busybox, path));
  if (!o.platform.Matches(info.platform)) {
    return oci::Fail(ErrorCode::kInvalidInput,
                     "the built-in base's busybox " + path + " is for " + info.platform.String() +
                         ", not the requested " + o.platform.String() +
                         ": give a static busybox for " + o.platform.String() +
                         " with --builtin-busybox PATH, or choose a --base for that platform");
  }
  oci::Platform platform = info.platform;
  platform.variant = o.platform.variant;

  const std::string passwd = BuiltinPasswd();
  const std::string group = BuiltinGroup();
  LayerBuildOptions lo;
  lo.compression = o.compression;
  lo.compression_level = o.compression_level;
  lo.jobs = 1;  // a few MiB; the bytes do not depend on it
  lo.mtime = o.mtime;
  lo.content = [&](const oci::TarEntry& e) -> Result<std::unique_ptr<oci::Reader>> {
    const std::string* bytes = e.name == "bin/busybox"  ? &busybox
                               : e.name == "etc/passwd" ? &passwd
                               : e.name == "etc/group"  ? &group
                                                        : nullptr;
    if (!bytes) return oci::Fail(ErrorCode::kInternal, "no content for built-in " + e.name);
    return std::make_unique<oci::SpanReader>(oci::AsBytes(*bytes));
  };
  MemorySink sink;
  auto built = BuildLayer(BuiltinBaseEntries(busybox.size()), lo, sink);
  if (!built) return std::unexpected(built.error().Wrap("writing the built-in base layer"));
  std::string layer = sink.Take();

  const std::string created = oci::Rfc3339(o.mtime);
  std::string tools;
  for (std::string_view t : kBuiltinTools) tools += " " + std::string(t);
  json cfg = {{"architecture", platform.architecture},
              {"os", platform.os},
              {"created", created},
              {"config", {{"Env", {std::string(kBuiltinPath)}}}},
              {"rootfs", {{"type", "layers"}, {"diff_ids", {built->diff_id.String()}}}},
              {"history",
               {{{"created", created},
                 {"created_by", "mc-engine built-in base: static BusyBox" +
                                    (info.version.empty() ? "" : " " + info.version) + " (" +
                                    tools.substr(1) + "), /etc/passwd, /etc/group, /tmp"},
                 {"comment", "base"}}}}};
  if (!platform.variant.empty()) cfg["variant"] = platform.variant;
  std::string cfg_bytes = oci::CanonicalJson(cfg);

  oci::Manifest m;
  m.config.media_type = std::string(oci::media::kOciConfig);
  m.config.digest = oci::Digest::Of(cfg_bytes);
  m.config.size = static_cast<int64_t>(cfg_bytes.size());
  m.layers.push_back(built->descriptor);
  std::map<oci::Digest, std::string> blobs;
  blobs[m.config.digest] = std::move(cfg_bytes);
  blobs[built->descriptor.digest] = std::move(layer);
  return std::make_unique<BuiltinSource>(
      oci::RawManifest::FromBytes(oci::SerializeManifest(m), std::string(oci::media::kOciManifest)),
      std::move(blobs));
}

}  // namespace mc::engine
