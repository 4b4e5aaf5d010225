// End-to-end: `mc-engine build DIR oci:LAYOUT`, verified only with independent
// tools: skopeo (inspect, copy to dir:), gzip/zstd -t, GNU tar extraction
// compared byte for byte with the model, and sha256sum of the decompressed
// layers against the config's diff_ids.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/paths.h"

namespace mc::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Engine() { return Quote(EngineBinary()); }
std::string oci_hex(const std::string& bytes) {
  std::string out;
  WriteFile("/tmp/.mc-hex-" + std::to_string(::getpid()), bytes);
  mc::testing::Run("sha256sum /tmp/.mc-hex-" + std::to_string(::getpid()), &out, false);
  std::filesystem::remove("/tmp/.mc-hex-" + std::to_string(::getpid()));
  return out.substr(0, 64);
}
int Sh(const std::string& cmd, std::string* out = nullptr, bool merge = true) {
  return mc::testing::Run(cmd, out, merge);
}

void MakeModel(const fs::path& m) {
  WriteFile(m / "config.json", R"({"architectures":["LlamaForCausalLM"]})");
  WriteFile(m / "tokenizer.json", std::string(100000, 't'));
  std::string weights(3 << 20, '\0');
  for (size_t i = 0; i < weights.size(); ++i)
    weights[i] = static_cast<char>((i * 2654435761u) >> 13);
  WriteFile(m / "model-00001-of-00002.safetensors", weights);
  WriteFile(m / "nested/deeper/model-00002-of-00002.safetensors", weights.substr(1000));
  WriteFile(m / "empty.txt", "");
  fs::create_directories(m / "empty_dir");
  WriteFile(m / "run.sh", "#!/bin/sh\necho hi\n");
  fs::permissions(m / "run.sh", fs::perms(0700));
  WriteFile(m / "private.bin", "secret-ish but must be world readable in the image");
  fs::permissions(m / "private.bin", fs::perms(0600));
  fs::create_symlink("config.json", m / "config-link.json");
}

struct Image {
  json manifest;
  json config;
  fs::path dir;  // skopeo dir: copy
};

Image CopyOut(const std::string& ref, const fs::path& to) {
  std::string out;
  EXPECT_EQ(Sh("skopeo copy --quiet " + Quote(ref) + " dir:" + Quote(to.string()), &out), 0) << out;
  Image img;
  img.dir = to;
  img.manifest = json::parse(ReadFile(to / "manifest.json"));
  std::string cfg_hex = img.manifest["config"]["digest"].get<std::string>().substr(7);
  img.config = json::parse(ReadFile(to / cfg_hex));
  return img;
}

std::string Sha256OfCommand(const std::string& cmd) {
  std::string out;
  EXPECT_EQ(Sh(cmd + " | sha256sum", &out, false), 0);
  return "sha256:" + out.substr(0, 64);
}

std::string BuildImage(const fs::path& model, const std::string& dest,
                       const std::string& extra = "", std::string* output = nullptr) {
  std::string out;
  int rc = Sh(Engine() + " --progress none build " + Quote(model.string()) + " " + Quote(dest) +
                  " " + extra,
              &out, false);
  if (output) *output = out;
  EXPECT_EQ(rc, 0) << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class BuildOciTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeModel(tmp_ / "model"); }
  TempDir tmp_;
};

TEST_F(BuildOciTest, GzipLayerVerifiedByIndependentTools) {
  std::string digest = BuildImage(tmp_ / "model", "oci:" + (tmp_ / "layout").string() + ":v1");
  ASSERT_TRUE(digest.starts_with("sha256:")) << digest;

  std::string out;
  ASSERT_EQ(Sh("skopeo inspect oci:" + Quote((tmp_ / "layout").string()) + ":v1", &out, false), 0)
      << out;
  json inspect = json::parse(out);
  EXPECT_EQ(inspect["Digest"], digest);
  // The built-in base's layer, then the model's.
  EXPECT_EQ(inspect["Layers"].size(), 2u);

  Image img = CopyOut("oci:" + (tmp_ / "layout").string() + ":v1", tmp_ / "copied");
  ASSERT_EQ(img.manifest["layers"].size(), 2u);
  auto layer = img.manifest["layers"][1];
  EXPECT_EQ(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
  fs::path blob = img.dir / layer["digest"].get<std::string>().substr(7);
  EXPECT_EQ(Sh("gzip -t " + Quote(blob.string())), 0);
  EXPECT_EQ(Sh("pigz -t " + Quote(blob.string())), 0);
  EXPECT_EQ(Sha256OfCommand("gzip -dc " + Quote(blob.string())),
            img.config["rootfs"]["diff_ids"][1]);
  EXPECT_EQ(img.config["architecture"], "amd64");
  EXPECT_EQ(img.config["os"], "linux");
  EXPECT_EQ(img.config["history"].size(), 2u);
  EXPECT_FALSE(img.config["config"].contains("Entrypoint"));

  // GNU tar extracts exactly the model under models/.
  fs::create_directories(tmp_ / "x");
  ASSERT_EQ(Sh("tar -xzf " + Quote(blob.string()) + " -C " + Quote((tmp_ / "x").string()), &out), 0)
      << out;
  EXPECT_EQ(Sh("diff -r --no-dereference " + Quote((tmp_ / "model").string()) + " " +
                   Quote((tmp_ / "x/models").string()),
               &out),
            0)
      << out;
  EXPECT_TRUE(fs::is_symlink(tmp_ / "x/models/config-link.json"));
  EXPECT_TRUE(fs::is_directory(tmp_ / "x/models/empty_dir"));
  // Listing: normalised modes and owners, mtime 0.
  out.clear();
  ASSERT_EQ(Sh("tar --numeric-owner -tvzf " + Quote(blob.string()), &out, false), 0);
  EXPECT_NE(out.find("-rwxr-xr-x 0/0"), std::string::npos) << out;
  EXPECT_NE(out.find("-rw-r--r-- 0/0              50 1970-01-01 00:00 models/private.bin\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("rw-------"), std::string::npos) << out;
  EXPECT_TRUE(out.starts_with("drwxr-xr-x 0/0               0 1970-01-01 00:00 models/\n")) << out;
}

TEST_F(BuildOciTest, DeterministicAcrossRunsAndJobs) {
  std::string a = BuildImage(tmp_ / "model", "oci:" + (tmp_ / "a").string() + ":t", "--jobs 1");
  std::string b = BuildImage(tmp_ / "model", "oci:" + (tmp_ / "b").string() + ":t", "--jobs 2");
  std::string c =
      BuildImage(tmp_ / "model", "oci:" + (tmp_ / "c").string() + ":t", "--jobs 8 --no-cache");
  EXPECT_EQ(a, b);
  EXPECT_EQ(b, c);
  std::string d = BuildImage(tmp_ / "model", "oci:" + (tmp_ / "d").string() + ":t", "", nullptr);
  EXPECT_EQ(a, d);
  // SOURCE_DATE_EPOCH changes the digest (mtimes and created).
  std::string out;
  ASSERT_EQ(Sh("SOURCE_DATE_EPOCH=1700000000 " + Engine() + " --progress none build " +
                   Quote((tmp_ / "model").string()) + " oci:" + Quote((tmp_ / "e").string()),
               &out, false),
            0);
  EXPECT_NE(out.substr(0, 71), a);
}

TEST_F(BuildOciTest, ZstdAndNoneLayers) {
  BuildImage(tmp_ / "model", "oci:" + (tmp_ / "z").string() + ":z", "--compression zstd");
  Image z = CopyOut("oci:" + (tmp_ / "z").string() + ":z", tmp_ / "zc");
  auto zl = z.manifest["layers"].back();
  EXPECT_EQ(zl["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
  fs::path zb = z.dir / zl["digest"].get<std::string>().substr(7);
  EXPECT_EQ(Sh("zstd -q -t " + Quote(zb.string())), 0);
  EXPECT_EQ(Sha256OfCommand("zstd -q -dc " + Quote(zb.string())),
            z.config["rootfs"]["diff_ids"].back());

  BuildImage(tmp_ / "model", "oci:" + (tmp_ / "n").string() + ":n", "--compression none");
  Image n = CopyOut("oci:" + (tmp_ / "n").string() + ":n", tmp_ / "nc");
  auto nl = n.manifest["layers"].back();
  EXPECT_EQ(nl["mediaType"], "application/vnd.oci.image.layer.v1.tar");
  EXPECT_EQ(nl["digest"], n.config["rootfs"]["diff_ids"].back());
  std::string out;
  EXPECT_EQ(
      Sh("tar -tf " + Quote((n.dir / nl["digest"].get<std::string>().substr(7)).string()), &out), 0)
      << out;
}

TEST_F(BuildOciTest, SplitLayersAndBaseFromLayout) {
  // --max-layer-size: each layer within the limit, config/diff_ids consistent.
  BuildImage(tmp_ / "model", "oci:" + (tmp_ / "s").string() + ":s", "--max-layer-size 4M");
  Image s = CopyOut("oci:" + (tmp_ / "s").string() + ":s", tmp_ / "sc");
  ASSERT_GE(s.manifest["layers"].size(), 2u);
  ASSERT_EQ(s.config["rootfs"]["diff_ids"].size(), s.manifest["layers"].size());
  ASSERT_EQ(s.config["history"].size(), s.manifest["layers"].size());
  for (size_t i = 0; i < s.manifest["layers"].size(); ++i) {
    fs::path blob = s.dir / s.manifest["layers"][i]["digest"].get<std::string>().substr(7);
    EXPECT_EQ(Sha256OfCommand("gzip -dc " + Quote(blob.string())),
              s.config["rootfs"]["diff_ids"][i]);
    ASSERT_EQ(
        Sh("tar -xzf " + Quote(blob.string()) + " -C " + Quote(tmp_.path().string()) +
           "/sx 2>/dev/null || (mkdir -p " + Quote(tmp_.path().string()) + "/sx && tar -xzf " +
           Quote(blob.string()) + " -C " + Quote(tmp_.path().string()) + "/sx)"),
        0);
  }
  std::string out;
  EXPECT_EQ(Sh("diff -r --no-dereference " + Quote((tmp_ / "model").string()) + " " +
                   Quote((tmp_ / "sx/models").string()),
               &out),
            0)
      << out;

  // The split image as the base of another build: its layers are kept as they are.
  BuildImage(tmp_ / "model", "oci:" + (tmp_ / "on-base").string() + ":x",
             "--base oci:" + (tmp_ / "s").string() + ":s --prefix /models");
  Image b = CopyOut("oci:" + (tmp_ / "on-base").string() + ":x", tmp_ / "bc");
  ASSERT_EQ(b.manifest["layers"].size(), s.manifest["layers"].size() + 1);
  for (size_t i = 0; i < s.manifest["layers"].size(); ++i) {
    EXPECT_EQ(b.manifest["layers"][i]["digest"], s.manifest["layers"][i]["digest"]);
  }
  // A local base leaves no path in the image: its digest only.
  EXPECT_FALSE(b.manifest["annotations"].contains("org.opencontainers.image.base.name"));
  EXPECT_TRUE(b.manifest["annotations"].contains("org.opencontainers.image.base.digest"));
}

TEST_F(BuildOciTest, BadInputGivesOneLineErrorsAndExitCodes) {
  std::string out;
  auto Sh = [&out](const std::string& cmd, std::string* o, bool merge = true) {
    out.clear();
    return mc::testing::Run(cmd, o, merge);
  };
  std::string layout = "oci:" + (tmp_ / "bad").string() + ":t";
  EXPECT_EQ(Sh(Engine() + " build " + Quote((tmp_ / "missing").string()) + " " + layout, &out), 4)
      << out;
  EXPECT_NE(out.find("missing"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;

  EXPECT_EQ(Sh(Engine() + " build " + Quote((tmp_ / "model").string()) + " " + layout +
                   " --compression brotli",
               &out),
            2)
      << out;
  EXPECT_NE(out.find("brotli"), std::string::npos) << out;
  EXPECT_EQ(Sh(Engine() + " build " + Quote((tmp_ / "model").string()) + " nowhere:x", &out), 2)
      << out;
  EXPECT_EQ(Sh(Engine() + " build " + Quote((tmp_ / "model").string()) + " " + layout +
                   " --max-layer-size 12Q",
               &out),
            2)
      << out;

  fs::create_symlink("does-not-exist", tmp_ / "model/dangling");
  EXPECT_EQ(Sh(Engine() + " build " + Quote((tmp_ / "model").string()) + " " + layout, &out), 2)
      << out;
  EXPECT_NE(out.find("dangling"), std::string::npos) << out;
  fs::remove(tmp_ / "model/dangling");

  ASSERT_EQ(::mkfifo((tmp_ / "model/fifo").c_str(), 0644), 0);
  EXPECT_EQ(Sh(Engine() + " build " + Quote((tmp_ / "model").string()) + " " + layout, &out), 2)
      << out;
  EXPECT_NE(out.find("fifo"), std::string::npos) << out;
  fs::remove(tmp_ / "model/fifo");

  // An unreadable file, for a user who cannot read it.
  if (::geteuid() == 0) {
    fs::permissions(tmp_.path(), fs::perms(0755));
    fs::permissions(tmp_ / "model/private.bin", fs::perms(0600));
    EXPECT_EQ(Sh("setpriv --reuid=65534 --regid=65534 --clear-groups " + Engine() + " build " +
                     Quote((tmp_ / "model").string()) + " oci:/tmp/mc-unreadable-" +
                     std::to_string(::getpid()),
                 &out),
              2)
        << out;
    EXPECT_NE(out.find("is not readable by this user"), std::string::npos) << out;
    fs::remove_all("/tmp/mc-unreadable-" + std::to_string(::getpid()));
  }
  // Nothing that looks complete was left behind.
  if (fs::exists(tmp_ / "bad/index.json")) {
    EXPECT_EQ(json::parse(ReadFile(tmp_ / "bad/index.json"))["manifests"].size(), 0u);
  }
}

TEST_F(BuildOciTest, FullFilesystemLeavesNoHalfImage) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  fs::path mnt = tmp_ / "small";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount tmpfs here";
  }
  std::string out;
  int rc = Sh(Engine() + " --progress none build " + Quote((tmp_ / "model").string()) +
                  " oci:" + Quote((mnt / "layout").string()) + ":t --compression none",
              &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("No space left"), std::string::npos) << out;
  json index = json::parse(ReadFile(mnt / "layout/index.json"));
  EXPECT_EQ(index["manifests"].size(), 0u);
  out.clear();
  Sh("ls -a " + Quote((mnt / "layout/blobs/sha256").string()), &out);
  EXPECT_EQ(out.find(".tmp"), std::string::npos) << out;
  ::umount(mnt.c_str());
}

}  // namespace
}  // namespace mc::testing

namespace mc::testing {
namespace {

// A one-layer OCI layout written with GNU tar and hand-made JSON (not by
// mc-engine): `tools` become symlinks to a busybox binary under bin/ (or,
// merged_usr, under usr/bin/ with bin a symlink to it, as UBI and Debian do).
void WriteBaseLayout(const fs::path& dir, const std::vector<std::string>& tools,
                     bool merged_usr = false) {
  fs::path root = dir / "rootfs";
  fs::path bin = root / (merged_usr ? "usr/bin" : "bin");
  fs::create_directories(bin);
  if (merged_usr) fs::create_directory_symlink("usr/bin", root / "bin");
  WriteFile(bin / "busybox", "not really busybox\n");
  for (const auto& t : tools) fs::create_symlink("busybox", bin / t);
  fs::create_directories(dir / "layout/blobs/sha256");
  auto put = [&](const std::string& bytes) {
    std::string hex = oci_hex(bytes);
    WriteFile(dir / "layout/blobs/sha256" / hex, bytes);
    return "sha256:" + hex;
  };
  std::string out;
  ASSERT_EQ(Sh("tar --sort=name --mtime=@0 --owner=0 --group=0 -C " + Quote(root.string()) +
                   " -cf - . | gzip -n > " + Quote((dir / "layer.tgz").string()),
               &out),
            0)
      << out;
  std::string layer = ReadFile(dir / "layer.tgz");
  Sh("gzip -dc " + Quote((dir / "layer.tgz").string()) + " | sha256sum", &out, false);
  json cfg = {{"architecture", "amd64"},
              {"os", "linux"},
              {"config", json::object()},
              {"rootfs", {{"type", "layers"}, {"diff_ids", {"sha256:" + out.substr(0, 64)}}}},
              {"history", {{{"created_by", "test base"}}}}};
  std::string cb = cfg.dump();
  json man = {{"schemaVersion", 2},
              {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
              {"config",
               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                {"digest", put(cb)},
                {"size", cb.size()}}},
              {"layers",
               {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                 {"digest", put(layer)},
                 {"size", layer.size()}}}}};
  std::string mb = man.dump();
  json index = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", put(mb)},
                   {"size", mb.size()},
                   {"annotations", {{"org.opencontainers.image.ref.name", "base"}}}}}}};
  WriteFile(dir / "layout/index.json", index.dump());
  WriteFile(dir / "layout/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
}

TEST_F(BuildOciTest, StrictModelcarContractChecksTheBaseTools) {
  WriteBaseLayout(tmp_ / "good", {"sh", "ln", "sleep", "ls", "mkdir"});
  WriteBaseLayout(tmp_ / "poor", {"sh"});
  WriteBaseLayout(tmp_ / "nomkdir", {"sh", "ln", "sleep", "ls"});
  WriteBaseLayout(tmp_ / "merged", {"sh", "ln", "sleep", "ls", "mkdir"}, /*merged_usr=*/true);
  WriteBaseLayout(tmp_ / "merged-poor", {"sh", "ls"}, /*merged_usr=*/true);
  std::string out;
  // Builds the model into oci:tmp_/OUT with FLAGS on BASE's layout ("" = scratch).
  auto build = [&](const std::string& base, const std::string& dest, const std::string& flags) {
    std::string base_flag =
        base.empty() ? " --base scratch"
                     : " --base oci:" + Quote((tmp_ / base / "layout").string()) + ":base";
    return Sh(Engine() + " --progress none build " + Quote((tmp_ / "model").string()) +
                  " oci:" + Quote((tmp_ / dest).string()) + ":t " + flags + base_flag,
              &out);
  };
  for (const char* good : {"good", "merged"}) {
    EXPECT_EQ(build(good, "o1-" + std::string(good), "--strict"), 0) << good << ": " << out;
    EXPECT_EQ(out.find("warning"), std::string::npos) << good << ": " << out;
  }
  EXPECT_EQ(build("merged-poor", "o1-mp", "--strict"), 2) << out;
  EXPECT_NE(out.find("lacks ln, sleep, mkdir"), std::string::npos) << out;
  EXPECT_EQ(build("poor", "o2", "--strict"), 2) << out;
  EXPECT_NE(out.find("lacks ln, sleep, ls, mkdir"), std::string::npos) << out;
  // KServe runs mkdir -p before ln for a model path other than the default.
  EXPECT_EQ(build("nomkdir", "o2m", "--strict"), 2) << out;
  EXPECT_NE(out.find("lacks mkdir"), std::string::npos) << out;
  // Without --strict it is a warning and the image is built.
  EXPECT_EQ(build("poor", "o3", ""), 0) << out;
  EXPECT_NE(out.find("warning: the base image"), std::string::npos) << out;
  EXPECT_EQ(build("", "o4", "--strict"), 2) << out;
  EXPECT_NE(out.find("scratch"), std::string::npos) << out;
  // The default (built-in) base meets the contract: --strict passes, no warning.
  out.clear();
  EXPECT_EQ(Sh(Engine() + " --progress none build " + Quote((tmp_ / "model").string()) +
                   " oci:" + Quote((tmp_ / "o5").string()) + ":t --strict",
               &out),
            0)
      << out;
  EXPECT_EQ(out.find("warning"), std::string::npos) << out;
}

}  // namespace
}  // namespace mc::testing
