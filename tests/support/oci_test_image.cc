#include "tests/support/oci_test_image.h"

#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "tests/support/paths.h"

namespace mc::testing {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string Random(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

struct Blob {
  std::string digest;
  size_t size = 0;
};

// Stores bytes under blobs/sha256/.
Blob Store(const fs::path& dir, const std::string& bytes) {
  oci::Digest d = oci::Digest::Of(bytes);
  WriteFile(dir / "blobs/sha256" / d.hex(), bytes);
  return {d.String(), bytes.size()};
}

// A gzip tar of `root` made by GNU tar and gzip; returns {blob, diff_id}.
bool Layer(const fs::path& dir, const fs::path& root, Blob* blob, std::string* diff_id,
           std::string* error) {
  fs::path tar = root.string() + ".tar";
  std::string out;
  std::string cmd = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C " +
                    Quote(root.string()) + " -cf " + Quote(tar.string()) + " . && gzip -n -k -f " +
                    Quote(tar.string());
  if (Run(cmd, &out) != 0) {
    *error = "tar/gzip failed: " + out;
    return false;
  }
  *diff_id = oci::Digest::Of(ReadFile(tar)).String();
  *blob = Store(dir, ReadFile(tar.string() + ".gz"));
  return true;
}

json Desc(const std::string& media_type, const Blob& b) {
  return {{"mediaType", media_type}, {"digest", b.digest}, {"size", b.size}};
}

}  // namespace

bool WriteTwoPlatformLayout(const fs::path& dir, const std::string& tag, size_t model_bytes,
                            TestImage* image, std::string* error) {
  fs::path work = dir.string() + ".work";
  fs::create_directories(dir / "blobs/sha256");
  image->model_files = {{"models/weights.bin", Random(model_bytes, 42)},
                        {"models/config.json", "{\"model_type\": \"test\"}\n"}};
  for (const auto& [path, content] : image->model_files) WriteFile(work / "model" / path, content);
  Blob model;
  std::string model_diff;
  if (!Layer(dir, work / "model", &model, &model_diff, error)) return false;
  image->shared_layer = model.digest;

  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", json::array()}};
  for (const std::string arch : {"amd64", "arm64"}) {
    WriteFile(work / arch / "etc/arch", arch + "\n");
    Blob base;
    std::string base_diff;
    if (!Layer(dir, work / arch, &base, &base_diff, error)) return false;
    json config = {{"architecture", arch},
                   {"os", "linux"},
                   {"config", {{"User", "1001"}}},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", {base_diff, model_diff}}}}};
    Blob cfg = Store(dir, config.dump());
    json manifest = {{"schemaVersion", 2},
                     {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config", Desc("application/vnd.oci.image.config.v1+json", cfg)},
                     {"layers",
                      {Desc("application/vnd.oci.image.layer.v1.tar+gzip", base),
                       Desc("application/vnd.oci.image.layer.v1.tar+gzip", model)}}};
    Blob m = Store(dir, manifest.dump(2));
    image->children[arch] = m.digest;
    json d = Desc("application/vnd.oci.image.manifest.v1+json", m);
    d["platform"] = {{"os", "linux"}, {"architecture", arch}};
    index["manifests"].push_back(d);
  }
  Blob idx = Store(dir, index.dump());
  image->index_digest = idx.digest;
  json top = {{"schemaVersion", 2},
              {"manifests",
               {{{"mediaType", "application/vnd.oci.image.index.v1+json"},
                 {"digest", idx.digest},
                 {"size", idx.size},
                 {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}}}};
  WriteFile(dir / "index.json", top.dump());
  WriteFile(dir / "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
  std::error_code ec;
  fs::remove_all(work, ec);
  return true;
}

bool UnpackSkopeoDir(const fs::path& dir, const fs::path& out, std::string* error) {
  json manifest = json::parse(ReadFile(dir / "manifest.json"), nullptr, false);
  if (manifest.is_discarded() || !manifest.contains("layers")) {
    *error = "no manifest.json in " + dir.string();
    return false;
  }
  fs::create_directories(out);
  for (const auto& l : manifest["layers"]) {
    std::string hex = l["digest"].get<std::string>().substr(7);
    std::string log;
    if (Run("tar -xzf " + Quote((dir / hex).string()) + " -C " + Quote(out.string()), &log) != 0) {
      *error = "GNU tar could not unpack layer " + hex + ": " + log;
      return false;
    }
  }
  return true;
}

}  // namespace mc::testing
