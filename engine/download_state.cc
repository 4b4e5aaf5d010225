// Resume state and verification hashes of `download` (see download.h).
//
// We keep resume state small and explicit rather than inferring it from the
// part files: a part file's length says nothing about which of its parallel
// segments are complete, and a re-run must never trust bytes it cannot
// account for. Completed bytes are rehashed from disk on resume, so a state
// file that claims more than was written shows up as a digest mismatch, never
// as a wrong final file.
#include "engine/download_state.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "engine/download.h"
#include "oci/digest.h"
#include "oci/io.h"
#include "registry/log.h"

namespace mc::engine {

using oci::ErrorCode;
using oci::Fail;

struct FileHasher::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

FileHasher::FileHasher(const HfFile& file) : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (file.is_lfs()) {
    EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
    expected_ = file.lfs_sha256;
  } else {
    // git blob id: sha1("blob <size>\0" + content)
    EVP_DigestInit_ex(ctx_->md, EVP_sha1(), nullptr);
    std::string header = "blob " + std::to_string(file.size);
    EVP_DigestUpdate(ctx_->md, header.data(), header.size() + 1);  // with the NUL
    expected_ = file.git_oid;
  }
}

FileHasher::~FileHasher() = default;

void FileHasher::Update(std::span<const std::byte> data) {
  EVP_DigestUpdate(ctx_->md, data.data(), data.size());
}

std::string FileHasher::HexDigest() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, ctx_->md);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, out, &len);
  EVP_MD_CTX_free(copy);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kHex[out[i] >> 4]);
    hex.push_back(kHex[out[i] & 15]);
  }
  return hex;
}

namespace {

class HfVerifyingReader final : public oci::Reader {
 public:
  HfVerifyingReader(std::unique_ptr<oci::Reader> inner, const HfFile& file, std::string what)
      : inner_(std::move(inner)), hasher_(file), size_(file.size), what_(std::move(what)) {}

  oci::Result<size_t> Read(std::span<std::byte> out) override {
    MC_ASSIGN_OR_RETURN(size_t n, inner_->Read(out));
    if (n > 0) {
      hasher_.Update(out.first(n));
      bytes_ += n;
      if (bytes_ > size_) {
        return Fail(ErrorCode::kVerificationFailed,
                    what_ + ": more than the listed " + std::to_string(size_) + " bytes");
      }
      // Checked on the last byte, not only at end of stream: a consumer that
      // reads exactly `size` bytes (the tar writer) never asks for the end.
      if (bytes_ == size_) MC_RETURN_IF_ERROR(Verify());
      return n;
    }
    if (bytes_ != size_) {
      return Fail(ErrorCode::kVerificationFailed, what_ + ": got " + std::to_string(bytes_) +
                                                      " bytes, the listing says " +
                                                      std::to_string(size_));
    }
    MC_RETURN_IF_ERROR(Verify());
    return 0;
  }

 private:
  oci::Result<void> Verify() const {
    if (!hasher_.expected().empty() && hasher_.HexDigest() != hasher_.expected()) {
      return Fail(ErrorCode::kVerificationFailed,
                  what_ + ": content does not match its listed hash " + hasher_.expected());
    }
    return {};
  }

  std::unique_ptr<oci::Reader> inner_;
  FileHasher hasher_;
  uint64_t size_;
  uint64_t bytes_ = 0;
  std::string what_;
};

}  // namespace

std::unique_ptr<oci::Reader> NewHfVerifyingReader(std::unique_ptr<oci::Reader> inner,
                                                  const HfFile& file, std::string what) {
  return std::make_unique<HfVerifyingReader>(std::move(inner), file, std::move(what));
}

namespace download_internal {

std::string FileOid(const HfFile& file) { return file.is_lfs() ? file.lfs_sha256 : file.git_oid; }

std::string StateKey(const std::string& repo_path) {
  return oci::Digest::Of(repo_path).hex().substr(0, 32);
}

std::string CurrentBootId() {
  auto text = oci::ReadFileToString("/proc/sys/kernel/random/boot_id");
  if (!text) return "";
  std::string id = *text;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

namespace {

using nlohmann::json;

// Checked reads of untrusted JSON: false (and nothing assigned) when the key
// is missing or of another type.
bool GetString(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  out = it->get_ref<const std::string&>();
  return true;
}

bool GetUint(const json& j, const char* key, uint64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return false;
  out = it->get<uint64_t>();
  return true;
}

void WarnIgnored(const DirFd& dir, const std::string& name, const std::string& why) {
  registry::Log()->warn("ignoring the download state file {}: {}; it will be rewritten",
                        dir.Child(name), why);
}

// The shape of manifest.json; "" when it holds, else what is wrong.
std::string ParseManifest(const json& j, Manifest& m) {
  if (!j.is_object()) return "not a JSON object";
  if (!GetString(j, "source", m.source) || !GetString(j, "commit", m.commit) ||
      !GetString(j, "bootId", m.boot_id)) {
    return "\"source\", \"commit\" or \"bootId\" is missing or not a string";
  }
  auto files = j.find("files");
  if (files == j.end() || !files->is_object()) return "\"files\" is missing or not an object";
  for (const auto& [name, f] : files->items()) {
    VerifiedFile v;
    if (!f.is_object() || !GetUint(f, "size", v.size) || !GetString(f, "oid", v.oid)) {
      return "the entry of \"" + name + "\" has no unsigned \"size\" and string \"oid\"";
    }
    m.files[name] = std::move(v);
  }
  return "";
}

}  // namespace

Manifest LoadManifest(const DirFd& dir) {
  auto text = ReadFileAt(dir, kManifestName, 256 << 20);
  if (!text) {
    if (text.error().code != ErrorCode::kNotFound) {
      WarnIgnored(dir, kManifestName, text.error().message);
    }
    return Manifest{};
  }
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    WarnIgnored(dir, kManifestName, "not valid JSON");
    return Manifest{};
  }
  Manifest m;
  if (std::string why = ParseManifest(j, m); !why.empty()) {
    WarnIgnored(dir, kManifestName, why);
    return Manifest{};
  }
  return m;
}

oci::Result<void> SaveManifest(const DirFd& dir, const Manifest& m) {
  json files = json::object();
  for (const auto& [name, f] : m.files) files[name] = {{"size", f.size}, {"oid", f.oid}};
  json j = {{"version", 1},
            {"source", m.source},
            {"commit", m.commit},
            {"bootId", m.boot_id},
            {"files", files}};
  // Paths come from the Hub: invalid UTF-8 is replaced rather than thrown on.
  return WriteFileAtomicAt(dir, kManifestName,
                           j.dump(1, ' ', false, json::error_handler_t::replace) + "\n");
}

std::optional<PartState> LoadPartState(const DirFd& dir, const std::string& name,
                                       const HfFile& file) {
  auto text = ReadFileAt(dir, name, 64 << 20);
  if (!text) {
    if (text.error().code != ErrorCode::kNotFound) WarnIgnored(dir, name, text.error().message);
    return std::nullopt;
  }
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    WarnIgnored(dir, name, "not a JSON object");
    return std::nullopt;
  }
  PartState s;
  auto done = j.find("done");
  if (!GetString(j, "path", s.path) || !GetUint(j, "size", s.size) || !GetString(j, "oid", s.oid) ||
      !GetUint(j, "segmentSize", s.segment_size) || done == j.end() || !done->is_array()) {
    WarnIgnored(dir, name, "a field is missing or of the wrong type");
    return std::nullopt;
  }
  for (const auto& d : *done) {
    if (!d.is_number_unsigned()) {
      WarnIgnored(dir, name, "\"done\" holds something other than byte counts");
      return std::nullopt;
    }
    s.done.push_back(d.get<uint64_t>());
  }
  // Another version of the file (or another segment size): stale, not broken.
  if (s.path != file.path || s.size != file.size || s.oid != FileOid(file)) return std::nullopt;
  if (s.segment_size == 0 || s.done.size() != (s.size + s.segment_size - 1) / s.segment_size) {
    WarnIgnored(dir, name, "its segments do not add up to the file");
    return std::nullopt;
  }
  for (size_t i = 0; i < s.done.size(); ++i) {
    uint64_t len = std::min(s.segment_size, s.size - i * s.segment_size);
    if (s.done[i] > len) {
      WarnIgnored(dir, name, "a segment claims more bytes than it has");
      return std::nullopt;
    }
  }
  return s;
}

oci::Result<void> SavePartState(const DirFd& dir, const std::string& name, const PartState& s) {
  json j = {{"path", s.path},
            {"size", s.size},
            {"oid", s.oid},
            {"segmentSize", s.segment_size},
            {"done", s.done}};
  // No fsync: this is a hint. A state that claims bytes the disk lost shows
  // up as a hash mismatch on resume, never as a wrong final file.
  return WriteFileAtomicAt(dir, name, j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                           /*sync=*/false);
}

}  // namespace download_internal
}  // namespace mc::engine
