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

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/download.h"
#include "oci/digest.h"
#include "oci/io.h"

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

Manifest LoadManifest(const std::filesystem::path& path) {
  Manifest m;
  auto text = oci::ReadFileToString(path);
  if (!text) return m;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return m;
  try {
    m.source = j.value("source", "");
    m.commit = j.value("commit", "");
    m.boot_id = j.value("bootId", "");
    if (auto files = j.find("files"); files != j.end() && files->is_object()) {
      for (const auto& [name, f] : files->items()) {
        m.files[name] = VerifiedFile{f.at("size").get<uint64_t>(), f.at("oid").get<std::string>()};
      }
    }
  } catch (const nlohmann::json::exception&) {
    return Manifest{};
  }
  return m;
}

oci::Result<void> SaveManifest(const std::filesystem::path& path, const Manifest& m) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [name, f] : m.files) files[name] = {{"size", f.size}, {"oid", f.oid}};
  nlohmann::json j = {{"version", 1},
                      {"source", m.source},
                      {"commit", m.commit},
                      {"bootId", m.boot_id},
                      {"files", files}};
  return oci::WriteFileAtomic(path, j.dump(1) + "\n");
}

std::optional<PartState> LoadPartState(const std::filesystem::path& path, const HfFile& file) {
  auto text = oci::ReadFileToString(path);
  if (!text) return std::nullopt;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    PartState s;
    s.path = j.at("path").get<std::string>();
    s.size = j.at("size").get<uint64_t>();
    s.oid = j.at("oid").get<std::string>();
    s.segment_size = j.at("segmentSize").get<uint64_t>();
    s.done = j.at("done").get<std::vector<uint64_t>>();
    if (s.path != file.path || s.size != file.size || s.oid != FileOid(file) ||
        s.segment_size == 0 || s.done.size() != (s.size + s.segment_size - 1) / s.segment_size) {
      return std::nullopt;
    }
    for (size_t i = 0; i < s.done.size(); ++i) {
      uint64_t len = std::min(s.segment_size, s.size - i * s.segment_size);
      if (s.done[i] > len) return std::nullopt;
    }
    return s;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

oci::Result<void> SavePartState(const std::filesystem::path& path, const PartState& s) {
  nlohmann::json j = {{"path", s.path},
                      {"size", s.size},
                      {"oid", s.oid},
                      {"segmentSize", s.segment_size},
                      {"done", s.done}};
  // No fsync: this is a hint. A state that claims bytes the disk lost shows
  // up as a hash mismatch on resume, never as a wrong final file.
  std::string tmp = path.string() + "." +
                    std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id())) +
                    ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out.flush()) return Fail(ErrorCode::kIo, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot rename " + tmp + ": " + ec.message());
  return {};
}

}  // namespace download_internal
}  // namespace mc::engine
